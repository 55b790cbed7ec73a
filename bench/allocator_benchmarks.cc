// The one benchmark source of compare_allocators, compiled into one binary
// per malloc because jemalloc, tcmalloc and Debian's libmimalloc replace
// malloc for the whole process. Each binary registers only the rows that
// belong to its malloc (compare_allocators runs them all and merges them):
//
//   SYNCPOOL_BENCH_GLIBC     pool_resource, the std::pmr resources (the
//                            monotonic one also over a stack buffer), glibc
//                            through new_delete_resource and malloc/free,
//                            pool<T> reuse
//   SYNCPOOL_BENCH_MIMALLOC  pool_resource on syncpool::mimalloc_resource,
//                            mimalloc through malloc/free (mi_malloc,
//                            mi_free_size) and, where it replaces malloc,
//                            through new_delete_resource
//   SYNCPOOL_BENCH_JEMALLOC  jemalloc through new_delete_resource and
//                            malloc/free (sdallocx)
//   SYNCPOOL_BENCH_TCMALLOC  gperftools tcmalloc through new_delete_resource
//                            and malloc/free (tc_free_sized)
//
// Besides Google Benchmark's flags it takes --threads=N (the largest thread
// count of the threaded workloads; see default_thread_counts()),
// --iterations=N (every benchmark runs exactly N iterations: one invocation,
// no estimation runs before it; Google Benchmark then names it
// .../iterations:N/...), --records=FILE (append every run to FILE as
// records.h describes, instead of printing them: how compare_allocators
// reads them) and --cpu=N (run the whole process on CPU N only: on this
// project's VM one vCPU ran the same single-thread benchmark 1.65x slower
// than the other, so compare_allocators runs every one-thread benchmark on
// the same CPU).

#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "bench/counting_resource.h"
#include "bench/malloc_resource.h"
#include "bench/record_reporter.h"
#include "bench/workloads.h"
#include "syncpool/pool_resource.h"

#include <malloc.h>  // malloc_trim

#if defined(SYNCPOOL_BENCH_MIMALLOC)
#include <mimalloc.h>

#include "syncpool/mimalloc_resource.h"
#elif defined(SYNCPOOL_BENCH_JEMALLOC)
#include <jemalloc/jemalloc.h>
#elif defined(SYNCPOOL_BENCH_TCMALLOC)
#include <gperftools/malloc_extension_c.h>
#include <gperftools/tcmalloc.h>
#endif

namespace syncpool_bench {
namespace {

// What each malloc needs: its name, its malloc/free at their best (see
// malloc_resource.h), and whether it is the malloc this process runs on.
#if defined(SYNCPOOL_BENCH_GLIBC)
constexpr const char* kMalloc = "glibc";
using best_malloc = libc_malloc;
bool malloc_linked() { return true; }
#elif defined(SYNCPOOL_BENCH_MIMALLOC)
constexpr const char* kMalloc = "mimalloc";
struct best_malloc {
  static void* allocate(std::size_t bytes) { return mi_malloc(bytes); }
  static void* allocate_aligned(std::size_t bytes, std::size_t alignment) {
    return mi_malloc_aligned(bytes, alignment);
  }
  static void deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    mi_free_size_aligned(p, bytes, alignment);
  }
};
// Debian's libmimalloc replaces malloc; mimalloc built from source for a
// downloading build does not (MI_MALLOC_OVERRIDE=0).
bool malloc_linked() {
  // Zeroed: g++ 12 takes a const void* argument for a read of the block.
  void* p = std::calloc(1, 64);
  const bool mine = p != nullptr && mi_is_in_heap_region(p);
  std::free(p);
  return mine;
}
#elif defined(SYNCPOOL_BENCH_JEMALLOC)
constexpr const char* kMalloc = "jemalloc";
// malloc and aligned_alloc are jemalloc's here; only the free differs.
struct best_malloc : libc_malloc {
  static void deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    sdallocx(p, bytes, alignment <= alignof(std::max_align_t) ? 0 : MALLOCX_ALIGN(alignment));
  }
};
bool malloc_linked() { return dlsym(RTLD_DEFAULT, "mallctl") != nullptr; }
#elif defined(SYNCPOOL_BENCH_TCMALLOC)
constexpr const char* kMalloc = "tcmalloc";
struct best_malloc : libc_malloc {
  static void deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    // gperftools has no sized free for over-aligned blocks in its C API.
    if (alignment <= alignof(std::max_align_t)) {
      tc_free_sized(p, bytes);
    } else {
      std::free(p);
    }
  }
};
bool malloc_linked() { return dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr; }
#else
#error "define one of SYNCPOOL_BENCH_{GLIBC,MIMALLOC,JEMALLOC,TCMALLOC}"
#endif

// Gives the OS back what the malloc holds free, as far as it can be asked
// to: run after a memory run's warm-up (workload_support.h), so that what
// the warm-up freed is not handed back during the run, below the baseline.
void release_free_memory() {
#if defined(SYNCPOOL_BENCH_MIMALLOC)
  mi_collect(/*force=*/true);
#elif defined(SYNCPOOL_BENCH_JEMALLOC)
  mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  const std::string purge = "arena." + std::to_string(MALLCTL_ARENAS_ALL) + ".purge";
  mallctl(purge.c_str(), nullptr, nullptr, nullptr, 0);
#elif defined(SYNCPOOL_BENCH_TCMALLOC)
  MallocExtension_ReleaseFreeMemory();
#endif
  malloc_trim(0);  // glibc's heap, whichever malloc the rows use
}

// A resource (syncpool's or a std::pmr one) on a counting upstream, which
// says what it holds.
template <class Resource>
class counted_row final : public bench_resource {
 public:
  explicit counted_row(std::pmr::memory_resource* upstream) : upstream_(upstream) {}
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
class malloc_row final : public bench_resource {
 public:
  explicit malloc_row(std::pmr::memory_resource* r) : r_(r) {}
  std::pmr::memory_resource* get() override { return r_; }

 private:
  std::pmr::memory_resource* const r_;
};

// A row whose resource is a `Resource` constructed from `args`: made on the
// heap (on a counting upstream) by make(), on the stack by scoped().
template <class Resource, class... Args>
allocator_row resource_row(std::string id, bool thread_safe, bool frees, Args... args) {
  allocator_row row;
  row.id = std::move(id);
  row.thread_safe = thread_safe;
  row.frees = frees;
  row.make = [args...] { return std::make_unique<counted_row<Resource>>(args...); };
  row.scoped = [args...](request_work work, void* context) {
    Resource resource(args...);
    work(&resource, context);
  };
  return row;
}

allocator_row malloc_free_row(std::string id, std::pmr::memory_resource* r) {
  allocator_row row;
  row.id = std::move(id);
  row.is_malloc = true;
  row.make = [r] { return std::make_unique<malloc_row>(r); };
  row.scoped = [r](request_work work, void* context) { work(r, context); };
  return row;
}

#if defined(SYNCPOOL_BENCH_GLIBC)
// One request's worth of stack: 256 requests of the lifetime workload take
// about 27 KiB, so it never reaches upstream.
allocator_row monotonic_stack_row() {
  allocator_row row;
  row.id = "monotonic_stack";
  row.thread_safe = false;
  row.frees = false;
  row.scoped = [](request_work work, void* context) {
    alignas(std::max_align_t) std::byte buffer[32768];
    std::pmr::monotonic_buffer_resource resource(buffer, sizeof buffer);
    work(&resource, context);
  };
  return row;
}
#endif

// The two rows of this binary's malloc: malloc/free at its best, and
// new_delete_resource, what a pmr user gets by default.
void register_malloc_rows(const bench_config& config, bool with_new_delete) {
  register_resource_workloads(malloc_free_row(std::string("malloc_free_") + kMalloc,
                                              malloc_free_resource<best_malloc>::get()),
                              config);
  if (with_new_delete) {
    register_resource_workloads(
        malloc_free_row(std::string("new_delete_") + kMalloc, std::pmr::new_delete_resource()),
        config);
  }
}

void register_rows(const bench_config& config) {
#if defined(SYNCPOOL_BENCH_GLIBC)
  std::pmr::memory_resource* const heap = std::pmr::new_delete_resource();
  register_resource_workloads(
      resource_row<syncpool::pool_resource>("pool_resource", true, true, heap), config);
  register_resource_workloads(
      resource_row<std::pmr::synchronized_pool_resource>("synchronized_pool", true, true, heap),
      config);
  register_resource_workloads(resource_row<std::pmr::unsynchronized_pool_resource>(
                                  "unsynchronized_pool", false, true, heap),
                              config);
  register_resource_workloads(
      resource_row<std::pmr::monotonic_buffer_resource>("monotonic", false, false, heap), config);
  register_resource_workloads(monotonic_stack_row(), config);
  register_malloc_rows(config, /*with_new_delete=*/true);
  register_reuse_workloads(kMalloc, /*with_pools=*/true, config);
#elif defined(SYNCPOOL_BENCH_MIMALLOC)
  std::pmr::memory_resource* const mimalloc = syncpool::mimalloc_resource::get();
  register_resource_workloads(
      resource_row<syncpool::pool_resource>("pool_resource_mimalloc", true, true, mimalloc),
      config);
  // new_delete_resource reaches mimalloc only where mimalloc replaced malloc.
  register_malloc_rows(config, /*with_new_delete=*/malloc_linked());
  if (malloc_linked()) register_reuse_workloads(kMalloc, /*with_pools=*/false, config);
#else
  register_malloc_rows(config, /*with_new_delete=*/true);
  register_reuse_workloads(kMalloc, /*with_pools=*/false, config);
#endif
}

}  // namespace
}  // namespace syncpool_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  int max_threads = 0;
  long iterations = 0;
  std::string records_path;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0 && std::atoi(argv[i] + 10) > 0) {
      max_threads = std::atoi(argv[i] + 10);
    } else if (std::strncmp(argv[i], "--iterations=", 13) == 0 && std::atol(argv[i] + 13) > 0) {
      iterations = std::atol(argv[i] + 13);
    } else if (std::strncmp(argv[i], "--records=", 10) == 0 && argv[i][10] != '\0') {
      records_path = argv[i] + 10;
    } else if (std::strncmp(argv[i], "--cpu=", 6) == 0 && argv[i][6] >= '0' && argv[i][6] <= '9') {
      const int cpu = std::atoi(argv[i] + 6);
      cpu_set_t one;
      CPU_ZERO(&one);
      if (cpu >= CPU_SETSIZE) {
        std::fprintf(stderr, "%s: --cpu=%d: no such CPU\n", argv[0], cpu);
        return 2;
      }
      CPU_SET(cpu, &one);
      if (sched_setaffinity(0, sizeof one, &one) != 0) {
        std::fprintf(stderr, "%s: --cpu=%d: %s\n", argv[0], cpu, std::strerror(errno));
        return 2;
      }
    } else {
      std::fprintf(stderr, "%s: unknown argument %s\n", argv[0], argv[i]);
      return 2;
    }
  }
  using namespace syncpool_bench;
  std::map<std::string, std::string> context = {
    {"malloc", kMalloc},
    {"malloc_linked", malloc_linked() ? "yes" : "no"},
#if defined(NDEBUG) && defined(__OPTIMIZE__)
    {"build", "opt"},
#else
    {"build", "not optimized (use -c opt)"},
#endif
  };
  for (const auto& [key, value] : context)
    benchmark::AddCustomContext("syncpool_bench_" + key, value);
  set_release_free_memory(&release_free_memory);
  register_rows(bench_config{default_thread_counts(max_threads), iterations});
  if (records_path.empty()) {
    benchmark::RunSpecifiedBenchmarks();
  } else {
    record_reporter reporter(records_path, context);
    if (!reporter.ok()) {
      std::fprintf(stderr, "%s: cannot write %s: %s\n", argv[0], records_path.c_str(),
                   std::strerror(errno));
      return 2;
    }
    benchmark::RunSpecifiedBenchmarks(&reporter);
  }
  destroy_leftovers();
  benchmark::Shutdown();
  return 0;
}
