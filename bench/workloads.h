// bench/workloads.h
//
// The workloads of compare_allocators, written once against
// std::pmr::memory_resource and registered as Google Benchmark benchmarks
// for every allocator row a benchmark binary offers.
//
// Benchmark names are `<workload>/<allocator>/<parameter>` (Google Benchmark
// appends `/real_time/threads:N` to threaded ones), using only [a-z0-9_/:]
// so that a name is its own --benchmark_filter regex. Every benchmark
// reports items_per_second (one item = one operation of its workload; see
// the driver's report for what an operation is) and these counters, set
// once the work is done and every block is freed, as growth over the RSS at
// the start of the same invocation. They mean most in a fresh process's
// only invocation (bench_config::fixed_iterations): a later invocation
// reuses what the malloc kept from earlier ones.
//   peak_rss_kib          peak RSS during the invocation (sampled every
//                         200 µs, exactly: see process_memory.h)
//   rss_after_kib         RSS while the resource is still alive
//   rss_collected_kib     the same after two syncpool::collect() cycles
//   held_bytes            bytes the resource still holds from its upstream
//   held_collected_bytes  the same after two syncpool::collect() cycles
// (the last two only where the resource's upstream can be counted). The
// `resources` workload adds rss_per_resource_kib and
// upstream_per_resource_bytes; a row that cannot run a workload at all (a
// limit of the allocator, not a bug of the benchmark) fails it with an error
// message that starts with "limit: ".

#ifndef SYNCPOOL_BENCH_WORKLOADS_H_
#define SYNCPOOL_BENCH_WORKLOADS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <memory_resource>
#include <optional>
#include <string>
#include <vector>

namespace syncpool_bench {

// One allocator under test, made fresh for every benchmark run.
class bench_resource {
 public:
  virtual ~bench_resource() = default;
  virtual std::pmr::memory_resource* get() = 0;
  // Bytes held from upstream right now, where that can be known.
  virtual std::optional<std::size_t> upstream_bytes() const { return std::nullopt; }
  // Called after a build-and-drop round: a never-free resource releases here.
  virtual void drop_all() {}
};

// Work done on a resource that exists for it alone (one request of the
// `lifetime` workload).
using request_work = void (*)(std::pmr::memory_resource* resource, void* context);

// An allocator row of the comparison.
struct allocator_row {
  std::string id;           // in benchmark names: [a-z0-9_]
  bool thread_safe = true;  // false: single-thread workloads only
  bool frees = true;        // false: never-free model, build-and-drop workloads only
  bool is_malloc = false;   // one per process, nothing to construct: no `resources`
  // A fresh resource for a benchmark run; empty for a row that only exists
  // for `lifetime` (a monotonic_buffer_resource over a stack buffer).
  std::function<std::unique_ptr<bench_resource>()> make;
  // Constructs a resource (on the stack), runs `work` on it and destroys
  // it: what one request of the `lifetime` workload costs. A malloc row
  // runs `work` on its one resource.
  std::function<void(request_work work, void* context)> scoped;
};

struct bench_config {
  std::vector<int> thread_counts;  // threads, requests, server and reuse
  // > 0: every benchmark runs exactly this many iterations, in one
  // invocation (how compare_allocators measures memory in a fresh process).
  long fixed_iterations = 0;
};

// The thread counts by default (`max_threads` <= 0): 1, 2, 4, ... up to
// `cores`, then those of 8, 16 and 64 above `cores`: oversubscription, as a
// server with more threads than cores has. With `max_threads` > 0: 1, 2,
// 4, ... and `max_threads`.
std::vector<int> thread_counts(int cores, int max_threads);
std::vector<int> default_thread_counts(int max_threads);  // on this machine's cores

// What gives back the memory this process's malloc holds free (malloc_trim,
// mi_collect, ...): the last step of a memory run's warm-up (see
// workload_support.cc). Set it before registering.
void set_release_free_memory(void (*release)());

// Registers the resource workloads for `row`, each only where its model
// fits: pair, batch, containers, lifetime, requests, resources, threads, server,
// churn, prodcons and idle.
void register_resource_workloads(const allocator_row& row, const bench_config& config);

// Registers the object reuse workload with make_unique + delete, as
// `make_unique_<malloc_id>`, and, if `with_pools`, with syncpool::pool<T>
// (`pool`), a mutex-guarded free list (`naive_pool`) and make_unique of a
// zero-filled std::byte[4096] (`make_unique_zeroed_<malloc_id>`).
void register_reuse_workloads(const std::string& malloc_id, bool with_pools,
                              const bench_config& config);

// Destroys what the last threaded run left for its threads to outlive; call
// after benchmark::RunSpecifiedBenchmarks().
void destroy_leftovers();

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_WORKLOADS_H_
