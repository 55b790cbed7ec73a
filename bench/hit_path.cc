// hit_path: a fixed number of cache hits, for instruction counts that do
// not depend on the machine's load (valgrind --tool=callgrind).
//
//   ./bazelw build -c opt //bench:hit_path
//   valgrind --tool=callgrind bazel-bin/bench/hit_path pair64 1000000
//   (instructions per hit = (total with N - total with 0) / N)
//
// Workloads: pair64 (pool_resource allocate + deallocate of 64 bytes, one
// call each through std::pmr::memory_resource), getput (pool<T> get + put).

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <string>

#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"

namespace {

struct buffer {
  char bytes[4096];
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: hit_path pair64|getput ITERATIONS\n");
    return 2;
  }
  const long n = std::atol(argv[2]);
  if (std::strcmp(argv[1], "pair64") == 0) {
    syncpool::pool_resource pool;
    std::pmr::memory_resource* r = &pool;
    r->deallocate(r->allocate(64), 64);  // warm: the thread's cache exists
    for (long i = 0; i < n; ++i) {
      void* p = r->allocate(64);
      asm volatile("" : : "r"(p) : "memory");
      r->deallocate(p, 64);
    }
  } else if (std::strcmp(argv[1], "getput") == 0) {
    syncpool::pool<buffer> p([] { return std::make_unique<buffer>(); });
    p.put(p.get());
    for (long i = 0; i < n; ++i) {
      auto b = p.get();
      asm volatile("" : : "r"(b.get()) : "memory");
      p.put(std::move(b));
    }
  } else {
    std::fprintf(stderr, "hit_path: unknown workload %s\n", argv[1]);
    return 2;
  }
  return 0;
}
