#include "bench/measurements.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <optional>
#include <sstream>

namespace syncpool_bench {

bool parse_benchmark_name(const std::string& name, benchmark_id* id) {
  std::vector<std::string> parts;
  std::stringstream in(name);
  for (std::string part; std::getline(in, part, '/');) parts.push_back(part);
  if (parts.size() < 2 || parts[0].empty() || parts[1].empty()) return false;
  *id = benchmark_id{};
  id->name = name;
  id->workload = parts[0];
  id->allocator = parts[1];
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (parts[i].rfind("threads:", 0) == 0) {
      id->threads = std::max(1, std::atoi(parts[i].c_str() + 8));
    } else if (parts[i] != "real_time" && parts[i].rfind("iterations:", 0) != 0) {
      id->param += (id->param.empty() ? "" : "/") + parts[i];
    }
  }
  if (id->param.empty()) id->param = std::to_string(id->threads);
  return true;
}

spread median_min_max(std::vector<double> values) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (values.empty()) return {nan, nan, nan};
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  const double median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {median, values.front(), values.back()};
}

bool runs_on_one_thread(const benchmark_id& id) {
  return id.threads == 1 && id.workload != "churn" && id.workload != "idle" && id.workload != "prodcons";
}

result summarize_runs(const benchmark_id& id, const std::string& binary,
                      const std::vector<record>& records, int warmup) {
  result r;
  r.binary = binary;
  r.name = id.name;
  r.workload = id.workload;
  r.allocator = id.allocator;
  r.param = id.param;
  r.threads = id.threads;

  std::vector<const record*> runs;
  for (const record& rec : records) {
    if (rec.text("kind") != "run" || rec.text("name") != id.name) continue;
    if (const std::string error = rec.text("error"); !error.empty()) {
      r.error = error;
      r.limit = error.rfind("limit: ", 0) == 0;
      return r;
    }
    if (rec.number("repetition").value_or(0) < warmup) continue;
    runs.push_back(&rec);
  }
  if (runs.empty()) {
    r.error = "no run reported";
    return r;
  }
  std::vector<std::pair<double, const record*>> timed;
  for (const record* run : runs) {
    const std::optional<double> items = run->number("counter.items_per_second");
    if (!items || !(*items > 0)) {
      r.error = "a run reported no items_per_second";
      return r;
    }
    timed.emplace_back(1e9 / *items, run);
  }
  std::vector<double> ns;
  for (const auto& [t, run] : timed) ns.push_back(t);
  const spread s = median_min_max(ns);
  r.ns_per_op = s.median;
  r.ns_min = s.min;
  r.ns_max = s.max;
  r.repetitions = static_cast<int>(runs.size());
  // The run nearest the median stands for the per-iteration figures.
  const auto nearest =
      std::min_element(timed.begin(), timed.end(), [&](const auto& a, const auto& b) {
        return std::fabs(a.first - s.median) < std::fabs(b.first - s.median);
      });
  r.iterations = nearest->second->number("iterations").value_or(0);
  r.real_time_ns = nearest->second->number("real_time_ns").value_or(0);
  r.cpu_time_ns = nearest->second->number("cpu_time_ns").value_or(0);

  return r;
}

std::string memory_run_filter(const std::string& name) {
  // Google Benchmark's name order: family/args, then iterations:N, then
  // real_time and threads:N.
  std::vector<std::string> parts;
  std::stringstream in(name);
  for (std::string part; std::getline(in, part, '/');) parts.push_back(part);
  std::string head, tail;
  bool in_tail = false;
  for (const std::string& part : parts) {
    if (part.rfind("iterations:", 0) == 0) {
      in_tail = true;
      continue;
    }
    if (part == "real_time" || part.rfind("threads:", 0) == 0) in_tail = true;
    (in_tail ? tail : head) += (in_tail || !head.empty() ? "/" : "") + part;
  }
  return "^" + head + "/iterations:[0-9]+" + tail + "$";
}

void take_memory_counters(const std::vector<record>& records, result* r) {
  const record* run = nullptr;
  for (const record& rec : records) {
    if (rec.text("kind") == "run") run = &rec;
  }
  if (run == nullptr) {
    r->error = "memory run: no run reported";
    return;
  }
  if (const std::string error = run->text("error"); !error.empty()) {
    r->error = error;
    r->limit = error.rfind("limit: ", 0) == 0;
    if (!r->limit) r->error = "memory run: " + error;
    return;
  }
  const auto counter = [run](const char* name) {
    return run->number(std::string("counter.") + name);
  };
  r->peak_rss_kib = counter("peak_rss_kib");
  r->rss_after_kib = counter("rss_after_kib");
  r->rss_collected_kib = counter("rss_collected_kib");
  r->held_bytes = counter("held_bytes");
  r->held_collected_bytes = counter("held_collected_bytes");
  r->rss_per_resource_kib = counter("rss_per_resource_kib");
  r->upstream_per_resource_bytes = counter("upstream_per_resource_bytes");
}

std::string column_key(const result& r) {
  return r.workload + '/' + r.param + '/' + std::to_string(r.threads);
}

std::map<std::string, long> memory_run_iterations(const std::vector<result>& results) {
  std::map<std::string, std::vector<double>> per_column;
  for (const result& r : results) {
    std::vector<double>& counts = per_column[column_key(r)];
    // (Google Benchmark reports a threaded run's iterations summed over its
    // threads; --iterations gives each thread that many.)
    if (r.ok()) counts.push_back(r.iterations / std::max(1, r.threads));
  }
  std::map<std::string, long> iterations;
  for (const auto& [column, counts] : per_column) {
    const double median = counts.empty() ? 1 : median_min_max(counts).median;
    iterations[column] = std::max(1L, static_cast<long>(median));
  }
  return iterations;
}

double memory_run_seconds(const result& r, long iterations, double min_time_s) {
  const double own = r.iterations / std::max(1, r.threads);
  if (!r.ok() || own <= 0) return 0;
  return min_time_s * static_cast<double>(iterations) / own;
}

}  // namespace syncpool_bench
