// hit_path: a fixed number of cache hits, for instruction counts that do
// not depend on the machine's load (valgrind --tool=callgrind).
//
//   ./bazelw build -c opt //bench:hit_path
//   valgrind --tool=callgrind bazel-bin/bench/hit_path pair64 1000000
//   (instructions per hit = (total with N - total with 0) / N)
//
// Workloads: pair64 (pool_resource allocate + deallocate of 64 bytes, one
// call each through std::pmr::memory_resource), pair32k (the same of 32 KiB:
// a class above the fast path's table), getput (pool<T> get + put),
// lifetime16 (compare_allocators' lifetime/16 request: a pool_resource made,
// a pmr::vector of 15 pmr::strings built in it, both destroyed; "per hit"
// is then per request, and counts the upstream malloc/free it makes;
// lifetime16_std: the same request on std::pmr::unsynchronized_pool_resource),
// lifetime1000 and lifetime1000_std (the lifetime request's shape with 999
// strings, not one of compare_allocators' sizes: a request that outgrows
// pool_resource's young phase, whose classes then set up their thread cache
// and chunks for one request),
// batch (compare_allocators' batch/lifo round on one pool_resource: 10,000
// blocks of 16 B .. 8 KiB allocated, then freed newest first; "per hit" is
// per round, 10,000 allocations and deallocations), window (compare_allocators'
// threads workload on one thread: a window of 256 blocks of 16..512 bytes,
// the oldest replaced; "per hit" is per block freed and allocated).

#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <string>
#include <string_view>
#include <vector>

#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"

namespace {

struct buffer {
  char bytes[4096];
};

// Each workload is a function of its own, kept out of line, so that the
// code of one (and its count) does not change when another is added or
// edited.
// (GCC would still clone one for a constant argument; clang has no such
// attribute and does not.)
#if defined(__clang__)
#define HIT_PATH_WORKLOAD __attribute__((noinline)) void
#else
#define HIT_PATH_WORKLOAD __attribute__((noinline, noclone)) void
#endif

HIT_PATH_WORKLOAD pair(std::size_t size, long n) {
  syncpool::pool_resource pool;
  std::pmr::memory_resource* r = &pool;
  // Warm: past the resource's young phase (256 allocations), so that the
  // thread's cache exists and serves every pair below.
  for (int i = 0; i < 300; ++i) r->deallocate(r->allocate(size), size);
  for (long i = 0; i < n; ++i) {
    void* p = r->allocate(size);
    asm volatile("" : : "r"(p) : "memory");
    r->deallocate(p, size);
  }
}

HIT_PATH_WORKLOAD getput(long n) {
  syncpool::pool<buffer> p([] { return std::make_unique<buffer>(); });
  p.put(p.get());
  for (long i = 0; i < n; ++i) {
    auto b = p.get();
    asm volatile("" : : "r"(b.get()) : "memory");
    p.put(std::move(b));
  }
}

// `n` requests, each on a resource of its own (unsynchronized_pool_resource
// when `standard`): a pmr::vector of pmr::strings of the given lengths,
// reserved at once. Inline in each workload: their code stays their own.
template <std::size_t N>
__attribute__((always_inline)) inline void serve_requests(bool standard, long n, const std::size_t (&lengths)[N]) {
  auto request = [&lengths](std::pmr::memory_resource* r) {
    std::pmr::vector<std::pmr::string> strings(r);
    strings.reserve(N);
    for (const std::size_t length : lengths) strings.emplace_back(length, 'x');
    asm volatile("" : : "r"(strings.data()) : "memory");
  };
  for (long i = 0; i < n; ++i) {
    if (standard) {
      std::pmr::unsynchronized_pool_resource pool;
      request(&pool);
    } else {
      syncpool::pool_resource pool;
      request(&pool);
    }
  }
}

HIT_PATH_WORKLOAD lifetime16(bool standard, long n) {
  // The benchmark's lengths come from its own generator; any 16..128 will
  // do for counting, so these are fixed.
  static constexpr std::size_t kLengths[15] = {17, 90, 33, 128, 64, 16, 101, 47,
                                               77, 20, 115, 58, 36, 83, 122};
  serve_requests(standard, n, kLengths);
}

HIT_PATH_WORKLOAD lifetime1000(bool standard, long n) {
  // Any fixed lengths of 16..128 will do for counting: these come from a
  // generator of their own.
  static std::size_t lengths[999];
  uint64_t x = 1000;
  for (std::size_t& length : lengths) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    length = 16 + (x >> 33) % 113;
  }
  serve_requests(standard, n, lengths);
}

HIT_PATH_WORKLOAD batch(long n) {
  // Sizes log-uniform in [16, 8192), as the benchmark's (its own
  // generator; any fixed one will do for counting).
  std::vector<std::size_t> sizes(10000);
  uint64_t x = 2024;
  for (std::size_t& size : sizes) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    const std::size_t power = std::size_t{16} << ((x >> 33) % 9);
    size = power + (x >> 13) % power;
  }
  std::vector<void*> blocks(sizes.size());
  syncpool::pool_resource pool;
  std::pmr::memory_resource* r = &pool;
  auto round = [&] {
    for (std::size_t i = 0; i < sizes.size(); ++i) blocks[i] = r->allocate(sizes[i]);
    for (std::size_t i = sizes.size(); i-- > 0;) r->deallocate(blocks[i], sizes[i]);
  };
  round();  // warm: past the young phase, the depots filled
  round();
  for (long i = 0; i < n; ++i) round();
}

HIT_PATH_WORKLOAD window(long n) {
  syncpool::pool_resource pool;
  std::pmr::memory_resource* r = &pool;
  constexpr std::size_t kWindow = 256;
  void* window[kWindow] = {};
  std::size_t sizes[kWindow] = {};
  uint64_t x = 100;
  std::size_t next = 0;
  auto step = [&] {
    if (window[next] != nullptr) r->deallocate(window[next], sizes[next]);
    x = x * 6364136223846793005u + 1442695040888963407u;
    sizes[next] = 16 + (x >> 33) % 497;
    window[next] = r->allocate(sizes[next]);
    next = (next + 1) % kWindow;
  };
  for (int i = 0; i < 100000; ++i) step();  // warm: past the young phase, caches in their steady state
  for (long i = 0; i < n; ++i) step();
  for (std::size_t i = 0; i < kWindow; ++i) {
    if (window[i] != nullptr) r->deallocate(window[i], sizes[i]);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: hit_path pair64|pair32k|getput|lifetime16|lifetime16_std|lifetime1000|lifetime1000_std|"
                 "batch|window ITERATIONS\n");
    return 2;
  }
  const long n = std::atol(argv[2]);
  const std::string_view w = argv[1];
  if (w == "pair64") {
    pair(64, n);
  } else if (w == "pair32k") {
    pair(32768, n);
  } else if (w == "getput") {
    getput(n);
  } else if (w == "lifetime16" || w == "lifetime16_std") {
    lifetime16(w == "lifetime16_std", n);
  } else if (w == "lifetime1000" || w == "lifetime1000_std") {
    lifetime1000(w == "lifetime1000_std", n);
  } else if (w == "batch") {
    batch(n);
  } else if (w == "window") {
    window(n);
  } else {
    std::fprintf(stderr, "hit_path: unknown workload %s\n", argv[1]);
    return 2;
  }
  return 0;
}
