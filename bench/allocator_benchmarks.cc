// The one benchmark source of compare_allocators, compiled into one binary
// per malloc because jemalloc, tcmalloc and Debian's libmimalloc replace
// malloc for the whole process. Each binary registers only the rows that
// belong to its malloc (compare_allocators runs them all and merges them):
//
//   SYNCPOOL_BENCH_GLIBC     pool_resource, the std::pmr pool resources,
//                            new_delete_resource on glibc, pool<T> reuse
//   SYNCPOOL_BENCH_MIMALLOC  pool_resource on mimalloc_resource, mimalloc_resource
//   SYNCPOOL_BENCH_JEMALLOC  new_delete_resource on jemalloc
//   SYNCPOOL_BENCH_TCMALLOC  new_delete_resource on gperftools tcmalloc
//
// Besides Google Benchmark's flags it takes --threads=N (the largest thread
// count of the threaded workloads; see default_thread_counts()).

#include <benchmark/benchmark.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "bench/counting_resource.h"
#include "bench/workloads.h"
#include "syncpool/pool_resource.h"

#if defined(SYNCPOOL_BENCH_MIMALLOC)
#include "syncpool/mimalloc_resource.h"
#endif

namespace syncpool_bench {
namespace {

#if defined(SYNCPOOL_BENCH_GLIBC)
constexpr const char* kMalloc = "glibc";
#elif defined(SYNCPOOL_BENCH_MIMALLOC)
constexpr const char* kMalloc = "mimalloc";
constexpr const char* kMallocSymbol = "mi_malloc";
#elif defined(SYNCPOOL_BENCH_JEMALLOC)
constexpr const char* kMalloc = "jemalloc";
constexpr const char* kMallocSymbol = "mallctl";
#elif defined(SYNCPOOL_BENCH_TCMALLOC)
constexpr const char* kMalloc = "tcmalloc";
constexpr const char* kMallocSymbol = "tc_malloc";
#else
#error "define one of SYNCPOOL_BENCH_{GLIBC,MIMALLOC,JEMALLOC,TCMALLOC}"
#endif

// syncpool::pool_resource; its stats() say what it holds from upstream.
class pool_resource_row final : public bench_resource {
 public:
  explicit pool_resource_row(std::pmr::memory_resource* upstream) : pool_(upstream) {}
  std::pmr::memory_resource* get() override { return &pool_; }
  std::optional<std::size_t> upstream_bytes() const override {
    return pool_.stats().total.upstream_bytes;
  }

 private:
  syncpool::pool_resource pool_;
};

// A standard resource on a counting new_delete_resource upstream.
template <class Resource>
class std_resource_row final : public bench_resource {
 public:
  std::pmr::memory_resource* get() override { return &resource_; }
  std::optional<std::size_t> upstream_bytes() const override {
    return upstream_.bytes_outstanding();
  }
  void drop_all() override {
    if constexpr (std::is_same_v<Resource, std::pmr::monotonic_buffer_resource>) {
      resource_.release();
    }
  }

 private:
  counting_resource upstream_;
  Resource resource_{&upstream_};
};

// A resource that is the malloc itself (nothing in between to count).
class plain_row final : public bench_resource {
 public:
  explicit plain_row(std::pmr::memory_resource* r) : r_(r) {}
  std::pmr::memory_resource* get() override { return r_; }

 private:
  std::pmr::memory_resource* const r_;
};

template <class Row, class... Args>
allocator_row row(std::string id, bool thread_safe, bool frees, Args... args) {
  return allocator_row{std::move(id), thread_safe, frees,
                       [args...] { return std::make_unique<Row>(args...); }};
}

void register_rows(const bench_config& config) {
#if defined(SYNCPOOL_BENCH_GLIBC)
  register_resource_workloads(
      row<pool_resource_row>("pool_resource", true, true, std::pmr::new_delete_resource()),
      config);
  register_resource_workloads(
      row<std_resource_row<std::pmr::synchronized_pool_resource>>("synchronized_pool", true, true),
      config);
  register_resource_workloads(
      row<std_resource_row<std::pmr::unsynchronized_pool_resource>>("unsynchronized_pool", false,
                                                                    true),
      config);
  register_resource_workloads(
      row<std_resource_row<std::pmr::monotonic_buffer_resource>>("monotonic", false, false),
      config);
  register_resource_workloads(row<plain_row>("glibc", true, true, std::pmr::new_delete_resource()),
                              config);
  register_reuse_workloads("glibc", /*with_pools=*/true, config);
#elif defined(SYNCPOOL_BENCH_MIMALLOC)
  std::pmr::memory_resource* const mimalloc = syncpool::mimalloc_resource::get();
  register_resource_workloads(row<pool_resource_row>("pool_resource_mimalloc", true, true, mimalloc),
                              config);
  register_resource_workloads(row<plain_row>("mimalloc", true, true, mimalloc), config);
  register_reuse_workloads("mimalloc", /*with_pools=*/false, config);
#else
  register_resource_workloads(row<plain_row>(kMalloc, true, true, std::pmr::new_delete_resource()),
                              config);
  register_reuse_workloads(kMalloc, /*with_pools=*/false, config);
#endif
}

// Whether the malloc this binary is meant to measure is the one in use.
bool malloc_linked() {
#if defined(SYNCPOOL_BENCH_GLIBC)
  return true;
#else
  return dlsym(RTLD_DEFAULT, kMallocSymbol) != nullptr;
#endif
}

}  // namespace
}  // namespace syncpool_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int max_threads = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0 && std::atoi(argv[i] + 10) > 0) {
      max_threads = std::atoi(argv[i] + 10);
    } else {
      std::fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
      return 2;
    }
  }
  using namespace syncpool_bench;
  benchmark::AddCustomContext("syncpool_bench_malloc", kMalloc);
  benchmark::AddCustomContext("syncpool_bench_malloc_linked", malloc_linked() ? "yes" : "no");
#if defined(NDEBUG) && defined(__OPTIMIZE__)
  benchmark::AddCustomContext("syncpool_bench_build", "opt");
#else
  benchmark::AddCustomContext("syncpool_bench_build", "not optimized (use -c opt)");
#endif
  register_rows(bench_config{default_thread_counts(max_threads)});
  benchmark::RunSpecifiedBenchmarks();
  destroy_leftovers();
  benchmark::Shutdown();
  return 0;
}
