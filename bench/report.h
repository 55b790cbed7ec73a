// bench/report.h
//
// compare_allocators' output, all from the same results:
//   - the full Markdown report: one table per workload (rows = allocators,
//     columns = parameters; the median with its min and max, the ratio to
//     the syncpool row and the fastest row in bold), one-thread times apart
//     from multi-thread aggregate throughput, the memory tables, and the
//     columns where syncpool::pool_resource is not the fastest row of all;
//   - summary.md, the README's results section: a few columns of the above,
//     the goals with their status computed from this run;
//   - a CSV with one row per result, and a PNG chart per workload.
// A --quick run is a smoke test: every output says its timings mean
// nothing, and none ranks anything.

#ifndef SYNCPOOL_BENCH_REPORT_H_
#define SYNCPOOL_BENCH_REPORT_H_

#include <string>
#include <vector>

#include "bench/results.h"

namespace syncpool_bench {

// The words every output of a --quick run opens with.
extern const char* const kSmokeTestWarning;

// Where a workload sits in the report (its index in the report's order),
// so that the driver can run benchmarks in that order; unknown ones last.
int workload_rank(const std::string& workload);

std::string markdown_report(const std::vector<result>& results, const run_info& info);

// The README's results section (the driver writes it as summary.md).
std::string summary_markdown(const std::vector<result>& results, const run_info& info);

// The lines that open and close the README's generated results block.
extern const char* const kResultsBegin;
extern const char* const kResultsEnd;

// `readme` with the lines between its kResultsBegin line and its
// kResultsEnd line replaced by `summary`; "" (and `*error`) if either is
// missing, or they come in the wrong order.
std::string splice_results(const std::string& readme, const std::string& summary,
                           std::string* error);

// One line per result, with a header line.
std::string csv_report(const std::vector<result>& results);

// Writes `out_dir`/<workload>.png for each timed workload, memory.png and
// resources.png with gnuplot, keeping its data and script in `scratch_dir`
// (which the caller removes). False (and `*error`) on failure.
bool write_charts(const std::string& out_dir, const std::string& scratch_dir,
                  const std::vector<result>& results, const run_info& info, std::string* error);

// How a row is drawn: the malloc families each have a colour of their own,
// and a row going through new_delete_resource (or a variant of another
// row) is drawn dashed in its family's colour.
struct row_style {
  std::string color;  // "#rrggbb"
  bool dashed = false;
};
row_style style_of(const std::string& allocator);

// Every allocator id the report knows, in report order.
std::vector<std::string> known_allocators();

// Whether two "#rrggbb" colours are told apart at a glance in a chart
// legend: two saturated ones need hues at least 20 degrees apart in CIE
// LCh (red #d62728 and pink #ff9896 are 9 apart: no); a grey or black one
// needs a CIE76 colour difference of at least 25.
bool distinguishable(const std::string& a, const std::string& b);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_REPORT_H_
