// bench/record_reporter.h
//
// syncpool_bench::record_reporter: a Google Benchmark reporter that writes
// every run, repetitions one by one and errors included, as records (see
// records.h) for compare_allocators, instead of output meant for people.

#ifndef SYNCPOOL_BENCH_RECORD_REPORTER_H_
#define SYNCPOOL_BENCH_RECORD_REPORTER_H_

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace syncpool_bench {

class record_reporter final : public benchmark::BenchmarkReporter {
 public:
  // Appends to `path`; `context` goes into one "context" record first.
  record_reporter(const std::string& path, std::map<std::string, std::string> context);
  ~record_reporter() override;
  record_reporter(const record_reporter&) = delete;
  record_reporter& operator=(const record_reporter&) = delete;

  // False if `path` could not be opened (errno says why).
  bool ok() const { return file_ != nullptr; }

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& runs) override;

 private:
  void write(const std::string& line);

  std::FILE* file_;
  std::map<std::string, std::string> context_;
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_RECORD_REPORTER_H_
