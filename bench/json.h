// bench/json.h
//
// A small JSON reader, enough for Google Benchmark's --benchmark_format=json
// output (no dependency outside the standard library). Numbers are doubles;
// strings are decoded, \uXXXX escapes included.

#ifndef SYNCPOOL_BENCH_JSON_H_
#define SYNCPOOL_BENCH_JSON_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace syncpool_bench::json {

class value;
using array = std::vector<value>;
using object = std::map<std::string, value, std::less<>>;

class value {
 public:
  value() = default;  // null
  explicit value(bool b) : v_(b) {}
  explicit value(double d) : v_(d) {}
  explicit value(std::string s) : v_(std::move(s)) {}
  explicit value(array a) : v_(std::make_shared<array>(std::move(a))) {}
  explicit value(object o) : v_(std::make_shared<object>(std::move(o))) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v_); }
  const bool* boolean() const { return std::get_if<bool>(&v_); }
  const double* number() const { return std::get_if<double>(&v_); }
  const std::string* string() const { return std::get_if<std::string>(&v_); }
  const array* as_array() const;
  const object* as_object() const;

  // Member `key` of an object; nullptr if this is not an object or lacks it.
  const value* find(std::string_view key) const;
  std::optional<double> number_at(std::string_view key) const;
  std::string string_at(std::string_view key) const;  // "" if absent

 private:
  std::variant<std::monostate, bool, double, std::string, std::shared_ptr<array>,
               std::shared_ptr<object>>
      v_;
};

// Parses `text`; on malformed input returns nullopt and sets `*error`.
std::optional<value> parse(std::string_view text, std::string* error);

}  // namespace syncpool_bench::json

#endif  // SYNCPOOL_BENCH_JSON_H_
