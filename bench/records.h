// bench/records.h
//
// How a benchmark binary hands its runs to compare_allocators: one line per
// record, tab-separated `key=value` fields. Google Benchmark's reporter API
// gives the binary structured runs (see record_reporter.h), and both ends of
// this format live in this directory, so it stays as small as a format can
// be: flat, no quoting, no escapes. A tab or line break inside a value is
// written as a space, which is all a benchmark name or error message loses.

#ifndef SYNCPOOL_BENCH_RECORDS_H_
#define SYNCPOOL_BENCH_RECORDS_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace syncpool_bench {

// One record; "kind" says what it is ("context" or "run").
class record {
 public:
  void set(const std::string& key, std::string value);
  void set(const std::string& key, double value);

  // "" if absent.
  std::string text(const std::string& key) const;
  // nullopt if absent or not a number.
  std::optional<double> number(const std::string& key) const;
  const std::map<std::string, std::string>& fields() const { return fields_; }

  // One line, without the line break.
  std::string line() const;
  // The record of one line written by line(); fields without '=' are ignored.
  static record from_line(std::string_view line);

 private:
  std::map<std::string, std::string> fields_;
};

// Every record of a file's text, one per non-empty line.
std::vector<record> read_records(std::string_view text);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_RECORDS_H_
