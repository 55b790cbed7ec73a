// bench/results.h
//
// What compare_allocators measured: one result per benchmark (allocator x
// workload x parameter), read from Google Benchmark's JSON output.

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
  std::string allocator;  // pool_resource, glibc, ...
  std::string param;      // the column: 64, lifo, 2 (threads), ...
  int threads = 1;

  // Nanoseconds per operation of the workload, all threads together (the
  // median when repeated), and its standard deviation (NaN if one run).
  double ns_per_op = std::numeric_limits<double>::quiet_NaN();
  double ns_per_op_stddev = std::numeric_limits<double>::quiet_NaN();
  double real_time_ns = 0;  // per iteration, as Google Benchmark reports it
  double cpu_time_ns = 0;
  double iterations = 0;
  int repetitions = 1;

  // The memory counters of workloads.h, where reported.
  std::optional<double> peak_rss_kib;
  std::optional<double> rss_after_kib;
  std::optional<double> rss_collected_kib;
  std::optional<double> held_bytes;
  std::optional<double> held_collected_bytes;

  std::string error;  // empty if it ran
  bool ok() const { return error.empty(); }
};

// What the report says about the run as a whole.
struct run_info {
  std::string machine;      // CPU, cores, OS, kernel
  std::string settings;     // build, min time, repetitions, threads
  std::vector<std::string> warnings;
  double seconds = 0;       // wall-clock time of all the benchmarks
  // (workload, allocator) pairs the binaries offer, --filter or not: a row
  // missing from a workload is "n/a" if not offered, else left out.
  std::set<std::pair<std::string, std::string>> offered;
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_RESULTS_H_
