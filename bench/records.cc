#include "bench/records.h"

#include <cstdio>
#include <cstdlib>

namespace syncpool_bench {
namespace {

std::string flatten(std::string s) {
  for (char& c : s) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace

void record::set(const std::string& key, std::string value) {
  fields_[flatten(key)] = flatten(std::move(value));
}

void record::set(const std::string& key, double value) {
  // %.17g: a double read back is the double written.
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", value);
  set(key, std::string(buf));
}

std::string record::text(const std::string& key) const {
  const auto it = fields_.find(key);
  return it != fields_.end() ? it->second : std::string();
}

std::optional<double> record::number(const std::string& key) const {
  const auto it = fields_.find(key);
  if (it == fields_.end() || it->second.empty()) return std::nullopt;
  const char* begin = it->second.c_str();
  char* end = nullptr;
  const double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0') return std::nullopt;
  return v;
}

std::string record::line() const {
  std::string out;
  for (const auto& [key, value] : fields_) {
    if (!out.empty()) out += '\t';
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

record record::from_line(std::string_view line) {
  record r;
  while (!line.empty()) {
    const std::size_t tab = line.find('\t');
    const std::string_view field = line.substr(0, tab);
    const std::size_t eq = field.find('=');
    if (eq != std::string_view::npos && eq > 0) {
      r.fields_[std::string(field.substr(0, eq))] = std::string(field.substr(eq + 1));
    }
    if (tab == std::string_view::npos) break;
    line.remove_prefix(tab + 1);
  }
  return r;
}

std::vector<record> read_records(std::string_view text) {
  std::vector<record> records;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    if (!line.empty()) records.push_back(record::from_line(line));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return records;
}

}  // namespace syncpool_bench
