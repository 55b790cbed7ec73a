// bench/measurements.h
//
// From the runs a benchmark binary reported (records.h) to one result per
// benchmark: which workload, allocator and column a name stands for, the
// warm-up repetition left out, the median with its min and max.

#ifndef SYNCPOOL_BENCH_MEASUREMENTS_H_
#define SYNCPOOL_BENCH_MEASUREMENTS_H_

#include <map>
#include <string>
#include <vector>

#include "bench/records.h"
#include "bench/results.h"

namespace syncpool_bench {

// What a benchmark's name says: "threads/glibc/real_time/threads:2" is
// workload threads, allocator glibc, column "2", 2 threads.
struct benchmark_id {
  std::string name;
  std::string workload;
  std::string allocator;
  std::string param;
  int threads = 1;
};

// False if `name` has no allocator part.
bool parse_benchmark_name(const std::string& name, benchmark_id* id);

// Whether the benchmark runs on its calling thread alone (compare_allocators
// pins those to one CPU): one thread, and not a workload that starts
// threads of its own (churn, idle) or hands blocks between two (prodcons).
bool runs_on_one_thread(const benchmark_id& id);

struct spread {
  double median;  // the middle value; the mean of the middle two for an even count
  double min;
  double max;
};

// NaN everywhere for no values.
spread median_min_max(std::vector<double> values);

// The timing result of benchmark `id` run by the binary of `binary`, from
// the "run" records of that benchmark (others are ignored), leaving out the
// first `warmup` repetitions. The memory counters are left for
// take_memory_counters().
result summarize_runs(const benchmark_id& id, const std::string& binary,
                      const std::vector<record>& records, int warmup);

// Memory is read from a run of its own: the only invocation in a fresh
// process (allocator_benchmarks --iterations=N), so that nothing a malloc
// kept from an earlier invocation is reused unseen. This is the filter
// that selects benchmark `name` there, where Google Benchmark has put
// "iterations:N" into its name.
std::string memory_run_filter(const std::string& name);

// The column a result belongs to: workload, column (param) and threads,
// as one string.
std::string column_key(const result& r);

// The iterations (per thread) of every column's memory runs, by
// column_key(): the median over the column's rows that ran (r.ok()) of the
// iterations of their median repetition, per thread; at least 1. So every
// row of a column does the same work in its memory run.
std::map<std::string, long> memory_run_iterations(const std::vector<result>& results);

// How long r's memory run of `iterations` (per thread) should take: its
// repetitions ran about `min_time_s` each for r.iterations / r.threads, so a
// row slower than its column's median runs longer in its memory run than in
// its timed runs. 0 when r did not run.
double memory_run_seconds(const result& r, long iterations, double min_time_s);

// Sets the memory counters of `*r` from the records of its memory run (or
// its error, if that run failed).
void take_memory_counters(const std::vector<record>& records, result* r);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_MEASUREMENTS_H_
