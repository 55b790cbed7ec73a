#include "bench/record_reporter.h"

#include "bench/records.h"

namespace syncpool_bench {
namespace {

double ns_per_unit(benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond:
      return 1;
    case benchmark::kMicrosecond:
      return 1e3;
    case benchmark::kMillisecond:
      return 1e6;
    case benchmark::kSecond:
      return 1e9;
  }
  return 1;
}

}  // namespace

record_reporter::record_reporter(const std::string& path,
                                 std::map<std::string, std::string> context)
    : file_(std::fopen(path.c_str(), "a")), context_(std::move(context)) {}

record_reporter::~record_reporter() {
  if (file_ != nullptr) std::fclose(file_);
}

void record_reporter::write(const std::string& line) {
  if (file_ == nullptr) return;
  std::fputs(line.c_str(), file_);
  std::fputc('\n', file_);
  // A run that crashes later must not take the finished runs with it.
  std::fflush(file_);
}

bool record_reporter::ReportContext(const Context& /*context*/) {
  record r;
  r.set("kind", "context");
  for (const auto& [key, value] : context_) r.set(key, value);
  write(r.line());
  return ok();
}

void record_reporter::ReportRuns(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    // Medians, means and the like are computed by compare_allocators.
    if (run.run_type != Run::RT_Iteration) continue;
    record r;
    r.set("kind", "run");
    r.set("name", run.benchmark_name());
    r.set("repetition", static_cast<double>(run.repetition_index));
    r.set("threads", static_cast<double>(run.threads));
    r.set("iterations", static_cast<double>(run.iterations));
    const double scale = ns_per_unit(run.time_unit);
    r.set("real_time_ns", run.GetAdjustedRealTime() * scale);
    r.set("cpu_time_ns", run.GetAdjustedCPUTime() * scale);
    if (run.error_occurred) r.set("error", run.error_message.empty() ? "error" : run.error_message);
    for (const auto& [name, counter] : run.counters) r.set("counter." + name, counter.value);
    write(r.line());
  }
}

}  // namespace syncpool_bench
