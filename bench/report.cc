#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>

#include "bench/subprocess.h"

namespace syncpool_bench {
namespace {

// ---- What the report knows about workloads and allocators.

struct workload_info {
  std::string_view id;
  std::string_view title;
  std::string_view op;        // what one op is; what a column is
  std::string_view baseline;  // allocator id the ratios are against
  std::string_view suffix;    // appended to numeric column names
  bool thread_axis;           // columns are thread counts
};

constexpr workload_info kWorkloads[] = {
    {"pair", "1. pair: allocate + deallocate one size",
     "ns per allocate + deallocate pair; column = block size", "pool_resource", " B", false},
    {"batch", "2. batch: 10,000 mixed sizes (16 B .. 8 KiB, fixed seed), then free them all",
     "ns per block (allocated and freed); column = freeing order; the "
     "monotonic_buffer_resource (on new_delete_resource, no initial buffer) frees nothing "
     "and release()s everything after each batch",
     "pool_resource", "", false},
    {"containers", "3. containers",
     "ns per op; list = push_back + pop_front on a 1,000-element pmr::list; map and "
     "unordered_map = erase + insert among 10,000 keys; vector_string = one pmr::string "
     "(16..128 chars) appended to a pmr::vector that is then dropped (and the "
     "monotonic_buffer_resource release()d)",
     "pool_resource", "", false},
    {"threads", "4. threads: every thread churns on one shared resource",
     "ns per block freed + allocated (window of 256 blocks of 16..512 B per thread), all "
     "threads together, wall-clock; column = threads",
     "pool_resource", " thr", true},
    {"prodcons", "5. producer/consumer: thread 1 frees what thread 0 allocated",
     "ns per block allocated, handed over through a bounded SPSC ring and freed, wall-clock; "
     "column = block size (mixed = 16..1024 B)",
     "pool_resource", " B", false},
    {"server", "6. server (larson): random sizes and lifetimes, blocks freed by other threads",
     "ns per block replaced in 16,384 shared slots (16..1024 B), all threads together, "
     "wall-clock; column = threads",
     "pool_resource", " thr", true},
    {"reuse", "7. object reuse: a 4 KiB buffer object",
     "ns per get + put (or make_unique + delete), all threads together, wall-clock; "
     "column = threads",
     "pool", " thr", true},
};

struct allocator_info {
  std::string_view id;
  std::string_view label;
  std::string_view color;  // in the charts
};

constexpr allocator_info kAllocators[] = {
    {"pool_resource", "syncpool::pool_resource", "#d62728"},
    {"pool_resource_mimalloc", "pool_resource on mimalloc_resource", "#ff9896"},
    {"synchronized_pool", "std::pmr::synchronized_pool_resource", "#1f77b4"},
    {"unsynchronized_pool", "std::pmr::unsynchronized_pool_resource", "#aec7e8"},
    {"monotonic", "std::pmr::monotonic_buffer_resource", "#17becf"},
    {"glibc", "new_delete_resource, glibc malloc", "#7f7f7f"},
    {"mimalloc", "syncpool::mimalloc_resource", "#2ca02c"},
    {"jemalloc", "new_delete_resource, jemalloc", "#9467bd"},
    {"tcmalloc", "new_delete_resource, tcmalloc", "#ff7f0e"},
    {"pool", "syncpool::pool<T> get/put", "#d62728"},
    {"naive_pool", "std::mutex + std::vector free list", "#1f77b4"},
    {"make_unique_glibc", "make_unique/delete, glibc malloc", "#7f7f7f"},
    {"make_unique_mimalloc", "make_unique/delete, mimalloc", "#2ca02c"},
    {"make_unique_jemalloc", "make_unique/delete, jemalloc", "#9467bd"},
    {"make_unique_tcmalloc", "make_unique/delete, tcmalloc", "#ff7f0e"},
};

const workload_info* find_workload(std::string_view id) {
  for (const workload_info& w : kWorkloads) {
    if (w.id == id) return &w;
  }
  return nullptr;
}

int allocator_rank(std::string_view id) {
  for (std::size_t i = 0; i < std::size(kAllocators); ++i) {
    if (kAllocators[i].id == id) return static_cast<int>(i);
  }
  return static_cast<int>(std::size(kAllocators));
}

std::string label(std::string_view id) {
  const int rank = allocator_rank(id);
  return std::string(rank < static_cast<int>(std::size(kAllocators)) ? kAllocators[rank].label
                                                                      : id);
}

std::string color(std::string_view id, std::size_t fallback) {
  static constexpr std::string_view kSpare[] = {"#8c564b", "#e377c2", "#bcbd22", "#393b79"};
  const int rank = allocator_rank(id);
  if (rank < static_cast<int>(std::size(kAllocators))) return std::string(kAllocators[rank].color);
  return std::string(kSpare[fallback % std::size(kSpare)]);
}

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---- One workload's results as a grid.

struct grid {
  const workload_info* info = nullptr;
  std::string workload;
  std::vector<std::string> columns;  // parameters
  std::vector<std::string> rows;     // allocator ids
  std::map<std::pair<std::string, std::string>, const result*> cells;  // (row, column)
  const std::set<std::pair<std::string, std::string>>* offered = nullptr;

  // What an empty cell says: n/a where the row does not fit the workload,
  // "-" where it does but did not run (--filter).
  const char* empty_cell(const std::string& row) const {
    return offered != nullptr && offered->count({workload, row}) != 0 ? "-" : "n/a";
  }

  const result* at(const std::string& row, const std::string& column) const {
    const auto it = cells.find({row, column});
    return it != cells.end() ? it->second : nullptr;
  }
  // The fastest time in a column; NaN if none ran.
  double best(const std::string& column) const {
    double best = std::numeric_limits<double>::quiet_NaN();
    for (const std::string& row : rows) {
      const result* r = at(row, column);
      if (r != nullptr && r->ok() && !(r->ns_per_op >= best)) best = r->ns_per_op;
    }
    return best;
  }
  double baseline(const std::string& column) const {
    const result* r = info != nullptr ? at(std::string(info->baseline), column) : nullptr;
    return r != nullptr && r->ok() ? r->ns_per_op : std::numeric_limits<double>::quiet_NaN();
  }
  std::string column_name(const std::string& column) const {
    if (info != nullptr && is_number(column)) return column + std::string(info->suffix);
    return column;
  }
};

bool reuse_kind(const std::string& workload) { return workload == "reuse"; }

// The workloads in report order, each with the rows that ran in it and,
// given `offered`, the rows of its kind that do not fit it (shown as n/a).
std::vector<grid> make_grids(const std::vector<result>& results,
                             const std::set<std::pair<std::string, std::string>>* offered = nullptr) {
  std::vector<std::string> workloads;
  for (const result& r : results) {
    if (std::find(workloads.begin(), workloads.end(), r.workload) == workloads.end()) {
      workloads.push_back(r.workload);
    }
  }
  std::stable_sort(workloads.begin(), workloads.end(), [](const std::string& a, const std::string& b) {
    return workload_rank(a) < workload_rank(b);
  });
  std::vector<grid> grids;
  for (const std::string& workload : workloads) {
    grid g;
    g.workload = workload;
    g.info = find_workload(workload);
    g.offered = offered;
    for (const result& r : results) {
      const bool row = r.workload == workload ||
                       (offered != nullptr && reuse_kind(r.workload) == reuse_kind(workload) &&
                        offered->count({workload, r.allocator}) == 0);
      if (row && std::find(g.rows.begin(), g.rows.end(), r.allocator) == g.rows.end()) {
        g.rows.push_back(r.allocator);
      }
      if (r.workload != workload) continue;
      if (std::find(g.columns.begin(), g.columns.end(), r.param) == g.columns.end()) {
        g.columns.push_back(r.param);
      }
      g.cells[{r.allocator, r.param}] = &r;
    }
    std::stable_sort(g.rows.begin(), g.rows.end(), [](const std::string& a, const std::string& b) {
      return allocator_rank(a) < allocator_rank(b);
    });
    if (g.info != nullptr && g.info->thread_axis &&
        std::all_of(g.columns.begin(), g.columns.end(), is_number)) {
      std::sort(g.columns.begin(), g.columns.end(), [](const std::string& a, const std::string& b) {
        return std::stoi(a) < std::stoi(b);
      });
    }
    grids.push_back(std::move(g));
  }
  return grids;
}

// ---- Formatting.

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string format_ns(double ns) {
  if (!std::isfinite(ns)) return "?";
  if (ns < 10) return format("%.2f", ns);
  if (ns < 100) return format("%.1f", ns);
  return format("%.0f", ns);
}

std::string format_ratio(double ratio) {
  if (!std::isfinite(ratio)) return "";
  return format(ratio < 10 ? "%.2fx" : "%.0fx", ratio);
}

// Thousands separators for KiB/MiB figures.
std::string format_amount(double v, int decimals) {
  if (!std::isfinite(v)) return "?";
  const std::string digits = format(decimals > 0 ? "%.1f" : "%.0f", std::fabs(v));
  std::size_t integer = digits.find('.');
  if (integer == std::string::npos) integer = digits.size();
  std::string out = v < 0 ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && i < integer && (integer - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

void table_header(std::ostringstream& out, const std::vector<std::string>& columns) {
  out << "| allocator |";
  for (const std::string& c : columns) out << ' ' << c << " |";
  out << "\n| :-- |";
  for (std::size_t i = 0; i < columns.size(); ++i) out << " --: |";
  out << '\n';
}

void time_table(std::ostringstream& out, const grid& g) {
  const std::string baseline = g.info != nullptr ? std::string(g.info->baseline) : "";
  out << "### " << (g.info != nullptr ? g.info->title : g.workload) << "\n\n";
  if (g.info != nullptr) out << g.info->op << ". ";
  out << "Lower is better; **bold** = fastest in the column";
  if (!baseline.empty()) out << "; (1.23x) = time relative to `" << label(baseline) << '`';
  out << ".\n\n";
  std::vector<std::string> names;
  for (const std::string& c : g.columns) names.push_back(g.column_name(c));
  table_header(out, names);
  for (const std::string& row : g.rows) {
    out << "| `" << label(row) << "` |";
    for (const std::string& column : g.columns) {
      const result* r = g.at(row, column);
      if (r == nullptr) {
        out << ' ' << g.empty_cell(row) << " |";
        continue;
      }
      if (!r->ok()) {
        out << " failed |";
        continue;
      }
      const std::string ns = format_ns(r->ns_per_op);
      out << ' ' << (r->ns_per_op <= g.best(column) ? "**" + ns + "**" : ns);
      const double base = g.baseline(column);
      if (row != baseline && std::isfinite(base)) out << " (" << format_ratio(r->ns_per_op / base) << ')';
      out << " |";
    }
    out << '\n';
  }
  out << '\n';
}

// The largest value of a memory counter over a workload's columns.
std::optional<double> max_over(const grid& g, const std::string& row,
                               std::optional<double> result::*field) {
  std::optional<double> best;
  for (const std::string& column : g.columns) {
    const result* r = g.at(row, column);
    if (r != nullptr && r->ok() && (r->*field).has_value()) {
      best = std::max(best.value_or(*(r->*field)), *(r->*field));
    }
  }
  return best;
}

void memory_tables(std::ostringstream& out, const std::vector<grid>& grids) {
  std::vector<std::string> rows;
  for (const grid& g : grids) {
    for (const std::string& row : g.rows) {
      if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const std::string& a, const std::string& b) {
    return allocator_rank(a) < allocator_rank(b);
  });
  std::vector<std::string> names;
  for (const grid& g : grids) names.push_back(g.workload);

  out << "### 8. memory\n\n"
      << "Each benchmark runs in a fresh process. Peak RSS growth of that process over its "
         "RSS before the benchmark -> RSS growth left after the work is freed and two "
         "`syncpool::collect()` cycles ran (the resource still alive), MiB; the largest "
         "over the workload's columns. **bold** = smallest peak.\n\n";
  table_header(out, names);
  for (const std::string& row : rows) {
    out << "| `" << label(row) << "` |";
    for (const grid& g : grids) {
      const std::optional<double> peak = max_over(g, row, &result::peak_rss_kib);
      const std::optional<double> left = max_over(g, row, &result::rss_collected_kib);
      if (!peak) {
        out << ' ' << g.empty_cell(row) << " |";
        continue;
      }
      double smallest = std::numeric_limits<double>::infinity();
      for (const std::string& other : g.rows) {
        if (const auto p = max_over(g, other, &result::peak_rss_kib)) smallest = std::min(smallest, *p);
      }
      const std::string text = format_amount(*peak / 1024, 1);
      out << ' ' << (*peak <= smallest ? "**" + text + "**" : text);
      if (left) out << " -> " << format_amount(*left / 1024, 1);
      out << " |";
    }
    out << '\n';
  }
  out << "\nBytes the resource (or object pool) still holds from its upstream once the work "
         "is freed -> after two `syncpool::collect()` cycles, KiB; the largest over the "
         "workload's columns. Only for rows whose upstream can be counted (malloc rows: see "
         "RSS above).\n\n";
  table_header(out, names);
  for (const std::string& row : rows) {
    bool any = false;
    std::ostringstream line;
    line << "| `" << label(row) << "` |";
    for (const grid& g : grids) {
      const std::optional<double> held = max_over(g, row, &result::held_bytes);
      const std::optional<double> left = max_over(g, row, &result::held_collected_bytes);
      if (!held) {
        line << " n/a |";
        continue;
      }
      any = true;
      line << ' ' << format_amount(*held / 1024, 0) << " -> "
           << format_amount(left.value_or(std::nan("")) / 1024, 0) << " |";
    }
    if (any) out << line.str() << '\n';
  }
  out << '\n';
}

// The columns where the baseline lost, slowest first.
void baseline_losses(std::ostringstream& out, const std::vector<grid>& grids) {
  struct loss {
    std::string text;
    double ratio;
  };
  std::vector<loss> losses;
  std::set<std::string> baselines;
  for (const grid& g : grids) {
    if (g.info == nullptr) continue;
    const std::string base_id(g.info->baseline);
    baselines.insert(base_id);
    for (const std::string& column : g.columns) {
      const double base = g.baseline(column);
      if (!std::isfinite(base)) continue;
      const result* winner = nullptr;
      for (const std::string& row : g.rows) {
        // Our own resource on another upstream is not a competitor.
        if (row == base_id || row == "pool_resource_mimalloc") continue;
        const result* r = g.at(row, column);
        if (r != nullptr && r->ok() && (winner == nullptr || r->ns_per_op < winner->ns_per_op)) {
          winner = r;
        }
      }
      if (winner == nullptr || winner->ns_per_op >= base) continue;
      std::ostringstream text;
      text << g.workload << ' ' << g.column_name(column) << ": `" << label(winner->allocator)
           << "` " << format_ns(winner->ns_per_op) << " ns vs `" << label(base_id) << "` "
           << format_ns(base) << " ns (" << format_ratio(base / winner->ns_per_op) << " slower)";
      losses.push_back({text.str(), base / winner->ns_per_op});
    }
  }
  out << "### Where the syncpool rows are not the fastest\n\n";
  if (losses.empty()) {
    out << "Nowhere: the baseline of every table was the fastest in every column.\n\n";
    return;
  }
  std::stable_sort(losses.begin(), losses.end(),
                   [](const loss& a, const loss& b) { return a.ratio > b.ratio; });
  out << "Slowest first. On a shared or busy machine, differences under about 10% are "
         "within run-to-run noise; --repetitions N reports medians.\n\n";
  for (const loss& l : losses) out << "- " << l.text << '\n';
  out << '\n';
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string quoted = "\"";
  for (const char c : s) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  return quoted + '"';
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  return format("%.6g", v);
}

std::string csv_number(const std::optional<double>& v) { return v ? csv_number(*v) : ""; }

// A gnuplot string literal.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// One chart: a data file (a row per column of the table, a column per
// allocator) and the commands that plot it.
void chart(std::ostream& script, const std::string& data_path, const std::string& png_path,
           const std::string& title, const std::string& x_label, const std::string& y_label,
           const std::vector<std::string>& x_names, const std::vector<std::string>& all_rows,
           const std::function<std::optional<double>(std::size_t x, const std::string& row)>& value,
           bool lines, bool log_y) {
  const auto plottable = [&](std::size_t x, const std::string& row) {
    const std::optional<double> v = value(x, row);
    return v && std::isfinite(*v) && (!log_y || *v > 0);
  };
  // Rows with nothing to plot would leave gaps and empty legend entries.
  std::vector<std::string> rows;
  for (const std::string& row : all_rows) {
    for (std::size_t x = 0; x < x_names.size(); ++x) {
      if (plottable(x, row)) {
        rows.push_back(row);
        break;
      }
    }
  }
  if (rows.empty()) return;
  std::ofstream data(data_path);
  data << "# x";
  for (const std::string& row : rows) data << ' ' << row;
  data << '\n';
  for (std::size_t x = 0; x < x_names.size(); ++x) {
    data << '"' << x_names[x] << '"';
    for (const std::string& row : rows) {
      data << ' ' << (plottable(x, row) ? csv_number(*value(x, row)) : "-");
    }
    data << '\n';
  }
  script << "reset\n"
         << "set terminal pngcairo size 1280,640 noenhanced font 'sans,10'\n"
         << "set output " << gp_string(png_path) << '\n'
         << "set title " << gp_string(title) << '\n'
         << "set xlabel " << gp_string(x_label) << '\n'
         << "set ylabel " << gp_string(y_label) << '\n'
         << "set datafile missing '-'\n"
         << "set key outside right top vertical\n"
         << "set grid ytics\n";
  if (log_y) script << "set logscale y\n";
  if (lines) {
    script << "set xtics (";
    for (std::size_t x = 0; x < x_names.size(); ++x) {
      script << (x ? ", " : "") << gp_string(x_names[x]) << ' ' << x;
    }
    script << ")\nset xrange [-0.3:" << (x_names.empty() ? 0.3 : x_names.size() - 0.7) << "]\n";
  } else {
    script << "set style data histograms\n"
           << "set style histogram clustered gap 1\n"
           << "set style fill solid 0.9 border -1\n"
           << "set boxwidth 0.9\n"
           << "set xtics nomirror\n";
  }
  script << "plot ";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) script << ", \\\n     ";
    script << (i == 0 ? gp_string(data_path) : "''");
    if (lines) {
      script << " using 0:" << i + 2 << " with linespoints lw 2 pt 7";
    } else {
      script << " using " << i + 2 << (i == 0 ? ":xtic(1)" : "");
    }
    script << " lc rgb " << gp_string(color(rows[i], i)) << " title " << gp_string(label(rows[i]));
  }
  script << "\n";
}

}  // namespace

int workload_rank(const std::string& workload) {
  for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
    if (kWorkloads[i].id == workload) return static_cast<int>(i);
  }
  return static_cast<int>(std::size(kWorkloads));
}

std::string markdown_report(const std::vector<result>& results, const run_info& info) {
  std::ostringstream out;
  out << "## Allocator comparison\n\n";
  out << "- Machine: " << info.machine << '\n';
  out << "- Settings: " << info.settings << '\n';
  std::size_t ok = 0;
  for (const result& r : results) ok += r.ok();
  out << "- Ran " << ok << " of " << results.size() << " benchmarks in "
      << format("%.0f", info.seconds) << " s\n";
  for (const std::string& w : info.warnings) out << "- **Warning:** " << w << '\n';
  out << '\n';
  const std::vector<grid> grids = make_grids(results, &info.offered);
  for (const grid& g : grids) time_table(out, g);
  if (!grids.empty()) memory_tables(out, grids);
  baseline_losses(out, grids);
  bool failures = false;
  for (const result& r : results) {
    if (r.ok()) continue;
    if (!failures) out << "### Failures\n\n";
    failures = true;
    out << "- `" << r.name << "` (" << r.binary << "): " << r.error << '\n';
  }
  if (failures) out << '\n';
  return out.str();
}

bool write_csv(const std::string& path, const std::vector<result>& results, std::string* error) {
  std::ofstream out(path);
  if (!out) {
    *error = "cannot write " + path;
    return false;
  }
  out << "workload,allocator,allocator_label,param,threads,binary,benchmark,ns_per_op,"
         "ns_per_op_stddev,baseline,ratio_vs_baseline,best_in_column,iterations,real_time_ns,"
         "cpu_time_ns,repetitions,peak_rss_kib,rss_after_kib,rss_after_collect_kib,held_bytes,"
         "held_after_collect_bytes,error\n";
  const std::vector<grid> grids = make_grids(results);
  for (const grid& g : grids) {
    for (const std::string& row : g.rows) {
      for (const std::string& column : g.columns) {
        const result* r = g.at(row, column);
        if (r == nullptr) continue;
        const double base = g.baseline(column);
        const std::string baseline = g.info != nullptr ? std::string(g.info->baseline) : "";
        out << csv_field(r->workload) << ',' << csv_field(r->allocator) << ','
            << csv_field(label(r->allocator)) << ',' << csv_field(r->param) << ',' << r->threads
            << ',' << csv_field(r->binary) << ',' << csv_field(r->name) << ','
            << csv_number(r->ns_per_op) << ',' << csv_number(r->ns_per_op_stddev) << ','
            << csv_field(baseline) << ',' << csv_number(r->ns_per_op / base) << ','
            << (r->ok() && r->ns_per_op <= g.best(column) ? 1 : 0) << ','
            << csv_number(r->iterations) << ',' << csv_number(r->real_time_ns) << ','
            << csv_number(r->cpu_time_ns) << ',' << r->repetitions << ','
            << csv_number(r->peak_rss_kib) << ',' << csv_number(r->rss_after_kib) << ','
            << csv_number(r->rss_collected_kib) << ',' << csv_number(r->held_bytes) << ','
            << csv_number(r->held_collected_bytes) << ',' << csv_field(r->error) << '\n';
      }
    }
  }
  if (!out.flush()) {
    *error = "cannot write " + path;
    return false;
  }
  return true;
}

bool write_charts(const std::string& dir, const std::vector<result>& results, std::string* error) {
  namespace fs = std::filesystem;
  const fs::path source_dir = fs::path(dir) / "gnuplot";
  std::error_code ec;
  fs::create_directories(source_dir, ec);
  if (ec) {
    *error = "cannot create " + source_dir.string() + ": " + ec.message();
    return false;
  }
  const std::vector<grid> grids = make_grids(results);
  const fs::path script_path = source_dir / "charts.gp";
  std::ofstream script(script_path);
  for (const grid& g : grids) {
    std::vector<std::string> x_names;
    for (const std::string& c : g.columns) x_names.push_back(g.column_name(c));
    const bool lines = g.info != nullptr && g.info->thread_axis;
    chart(script, (source_dir / (g.workload + ".dat")).string(),
          (fs::path(dir) / (g.workload + ".png")).string(),
          g.info != nullptr ? std::string(g.info->title) : g.workload,
          lines ? "threads" : "", "ns per op (log scale, lower is better)", x_names, g.rows,
          [&g](std::size_t x, const std::string& row) -> std::optional<double> {
            const result* r = g.at(row, g.columns[x]);
            if (r == nullptr || !r->ok()) return std::nullopt;
            return r->ns_per_op;
          },
          lines, /*log_y=*/true);
  }
  // Memory: peak RSS growth per workload, the largest over its columns (the
  // allocators' workloads only: object reuse has rows of its own).
  std::vector<std::string> rows;
  std::vector<std::string> workloads;
  std::vector<const grid*> memory_grids;
  for (const grid& g : grids) {
    if (reuse_kind(g.workload)) continue;
    workloads.push_back(g.workload);
    memory_grids.push_back(&g);
    for (const std::string& row : g.rows) {
      if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const std::string& a, const std::string& b) {
    return allocator_rank(a) < allocator_rank(b);
  });
  if (!memory_grids.empty()) {
    chart(script, (source_dir / "memory.dat").string(), (fs::path(dir) / "memory.png").string(),
          "8. memory: peak RSS growth of the benchmark process (largest over each workload's "
          "columns)",
          "", "MiB (lower is better)", workloads, rows,
          [&memory_grids](std::size_t x, const std::string& row) -> std::optional<double> {
            const std::optional<double> kib = max_over(*memory_grids[x], row, &result::peak_rss_kib);
            if (!kib) return std::nullopt;
            return *kib / 1024;
          },
          /*lines=*/false, /*log_y=*/false);
  }
  script.close();
  if (!script) {
    *error = "cannot write " + script_path.string();
    return false;
  }
  const std::string log = (source_dir / "gnuplot.log").string();
  const process_result run = run_process({"gnuplot", script_path.string()},
                                         (source_dir / "gnuplot.out").string(), log, 120);
  if (!run.ok()) {
    *error = "gnuplot " + run.describe() +
             (run.started ? ": " + read_file(log, 2000)
                          : " (install gnuplot, e.g. apt-get install gnuplot-nox)");
    return false;
  }
  return true;
}

}  // namespace syncpool_bench
