// bench/results.h
//
// What compare_allocators measured: one result per benchmark (allocator x
// workload x parameter), summarized from the runs its binary reported.

#ifndef SYNCPOOL_BENCH_RESULTS_H_
#define SYNCPOOL_BENCH_RESULTS_H_

#include <limits>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace syncpool_bench {

struct result {
  std::string binary;     // the malloc of the binary that ran it: glibc, mimalloc, ...
  std::string name;       // Google Benchmark's name
  std::string workload;   // pair, batch, ...
  std::string allocator;  // pool_resource, malloc_free_glibc, ...
  std::string param;      // the column: 64, lifo, 2 (threads), ...
  int threads = 1;

  // Nanoseconds per operation of the workload, all threads together: the
  // median over the measured repetitions, and their min and max.
  double ns_per_op = std::numeric_limits<double>::quiet_NaN();
  double ns_min = std::numeric_limits<double>::quiet_NaN();
  double ns_max = std::numeric_limits<double>::quiet_NaN();
  int repetitions = 0;      // measured, warm-up excluded
  double iterations = 0;    // of the median repetition
  double real_time_ns = 0;  // per iteration, of the median repetition
  double cpu_time_ns = 0;

  // The memory counters of workloads.h, where reported: medians over the
  // measured repetitions.
  std::optional<double> peak_rss_kib;
  std::optional<double> rss_after_kib;
  std::optional<double> rss_collected_kib;
  std::optional<double> held_bytes;
  std::optional<double> held_collected_bytes;
  std::optional<double> rss_per_resource_kib;
  std::optional<double> upstream_per_resource_bytes;

  std::string error;  // empty if it ran
  // Set with `error` when the allocator cannot run the workload at all (the
  // error began with "limit: "): reported as a finding, not a failure.
  bool limit = false;
  bool ok() const { return error.empty(); }
  bool failed() const { return !error.empty() && !limit; }
};

// What the report says about the run as a whole.
struct run_info {
  bool quick = false;    // a smoke test: no ranking, every timing marked meaningless
  std::string machine;   // CPU, cores, OS, kernel
  std::string settings;  // build, min time, repetitions, threads
  std::string command;   // how to run this again
  std::string commit;    // of the sources measured, where known
  std::vector<std::string> warnings;
  double seconds = 0;  // wall-clock time of all the benchmarks
  // (workload, allocator) pairs the binaries offer, --filter or not: a row
  // missing from a workload is "n/a" if not offered, else "-".
  std::set<std::pair<std::string, std::string>> offered;
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_RESULTS_H_
