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
// the driver's report for what an operation is) and these counters, set by
// the first thread once the work is done and every block is freed:
//   peak_rss_kib          peak RSS of the run minus the process's RSS
//                         before any benchmark ran
//   rss_after_kib         RSS growth while the resource is still alive
//   rss_collected_kib     the same after two syncpool::collect() cycles
//   held_bytes            bytes the resource still holds from its upstream
//   held_collected_bytes  the same after two syncpool::collect() cycles
// (the last two only where the resource's upstream can be counted).

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

// An allocator row of the comparison.
struct allocator_row {
  std::string id;                // in benchmark names: [a-z0-9_]
  bool thread_safe = true;       // false: single-thread workloads only
  bool frees = true;             // false: never-free model, build-and-drop workloads only
  std::function<std::unique_ptr<bench_resource>()> make;
};

struct bench_config {
  std::vector<int> thread_counts;  // for the workloads that scale over threads
};

// The thread counts by default: 1, 2, 4, ... up to the number of cores,
// then twice the number of cores. With `max_threads` > 0: 1, 2, 4, ... and
// `max_threads`.
std::vector<int> default_thread_counts(int max_threads);

// Registers workloads 1-6 (pair, batch, containers, threads, prodcons,
// server) for `row`, skipping those its model does not fit.
void register_resource_workloads(const allocator_row& row, const bench_config& config);

// Registers workload 7 (reuse of a 4 KiB buffer object) with make_unique +
// delete, as `make_unique_<malloc_id>`, and, if `with_pools`, with
// syncpool::pool<T> (`pool`) and a mutex-guarded free list (`naive_pool`).
void register_reuse_workloads(const std::string& malloc_id, bool with_pools,
                              const bench_config& config);

// Destroys what the last threaded run left for its threads to outlive; call
// after benchmark::RunSpecifiedBenchmarks().
void destroy_leftovers();

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_WORKLOADS_H_
