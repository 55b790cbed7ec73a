// bench/report.h
//
// compare_allocators' output: Markdown tables (one per workload, rows =
// allocators, columns = parameters, ns/op with the ratio to the baseline and
// the best of each column in bold, then the memory tables and a list of the
// columns where the baseline was not the fastest), a CSV with one row per
// result, and one PNG chart per workload drawn by gnuplot.

#ifndef SYNCPOOL_BENCH_REPORT_H_
#define SYNCPOOL_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "bench/results.h"

namespace syncpool_bench {

// Where a workload sits in the report (its index in the report's order),
// so that the driver can run benchmarks in that order; unknown ones last.
int workload_rank(const std::string& workload);

std::string markdown_report(const std::vector<result>& results, const run_info& info);

// Writes `path`; false (and `*error`) on failure.
bool write_csv(const std::string& path, const std::vector<result>& results, std::string* error);

// Writes `dir`/<workload>.png and `dir`/memory.png with gnuplot, keeping its
// data and scripts in `dir`/gnuplot/. False (and `*error`) on failure.
bool write_charts(const std::string& dir, const std::vector<result>& results, std::string* error);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_REPORT_H_
