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

const char* const kSmokeTestWarning = "smoke test: timings are not meaningful";
const char* const kResultsBegin =
    "<!-- compare_allocators results: begin (written by compare_allocators --readme; do not "
    "edit by hand) -->";
const char* const kResultsEnd = "<!-- compare_allocators results: end -->";

namespace {

// ---- What the report knows about workloads and allocators.

enum class timing {
  one_thread,  // ns per operation of one thread
  aggregate,   // wall-clock ns per operation of all threads together
  none,        // memory only
};

struct workload_info {
  std::string_view id;
  std::string_view title;
  std::string_view op;        // what one op is; what a column is
  std::string_view baseline;  // allocator id the ratios are against
  std::string_view suffix;    // appended to numeric column names
  std::string_view x_label;   // of its chart
  timing time;
  bool thread_axis;  // columns are thread counts
};

constexpr workload_info kWorkloads[] = {
    {"pair", "pair: allocate + deallocate one size",
     "ns per allocate + deallocate pair; column = block size", "pool_resource", " B", "block size",
     timing::one_thread, false},
    {"batch", "batch: 10,000 mixed sizes (16 B .. 8 KiB, fixed seed), then free them all",
     "ns per block (allocated and freed); column = freeing order. The "
     "monotonic_buffer_resource frees nothing and release()s everything after each batch",
     "pool_resource", "", "freeing order", timing::one_thread, false},
    {"containers", "containers",
     "ns per op; list = push_back + pop_front on a 1,000-element pmr::list; map and "
     "unordered_map = erase + insert among 10,000 keys; vector_string = one pmr::string "
     "(16..128 chars) appended to a pmr::vector that is then dropped (and the "
     "monotonic_buffer_resource release()d)",
     "pool_resource", "", "container operation", timing::one_thread, false},
    {"lifetime", "lifetime: one resource per request",
     "ns per request: construct the resource, reserve a pmr::vector and fill it with "
     "pmr::strings of 16..128 chars, destroy both; column = allocations per request (the "
     "reserve and one per string). A malloc row constructs nothing: its figure is the "
     "allocations alone. The stack row is a monotonic_buffer_resource over a 32 KiB "
     "buffer on the stack, which these requests never overflow",
     "pool_resource", " allocs", "allocations per request", timing::one_thread, false},
    {"requests", "requests: one resource per request, on every thread at once",
     "wall-clock ns per request (lifetime's request of 16 allocations: construct, fill, "
     "destroy), all threads together, each thread on resources of its own; column = threads",
     "pool_resource", " thr", "threads", timing::aggregate, true},
    {"resources", "resources: many live resources, each holding one 64-byte block",
     "ns per resource constructed, used for one 64-byte block, freed and destroyed; column "
     "= live resources at once. Their memory is under Memory. glibc's automatic heap trimming "
     "is off in these runs (where glibc's malloc is the upstream): with it on, destroying the "
     "resources in the order they were made could hand the heap's top to the kernel every "
     "round, or not, by where glibc's cache held chunks, and that decided the column (the "
     "same pool_resource code took 10-14x as long with it on, at 725cd40; bench/lifetime_workloads.cc)",
     "pool_resource", " live", "live resources", timing::one_thread, false},
    {"threads", "threads: every thread churns on one shared resource",
     "wall-clock ns per block freed + allocated, all threads together (a window of 256 "
     "blocks of 16..512 B per thread); column = threads",
     "pool_resource", " thr", "threads", timing::aggregate, true},
    {"server", "server (larson): random sizes and lifetimes, blocks freed by other threads",
     "wall-clock ns per block replaced in 16,384 shared slots (16..1024 B), all threads "
     "together; column = threads",
     "pool_resource", " thr", "threads", timing::aggregate, true},
    {"churn", "churn: threads start, allocate and free a few hundred blocks, and exit",
     "wall-clock ns per block allocated and freed, all threads together, thread start and "
     "exit included (256 blocks of 16..512 B per thread, 32 alive at a time); column = "
     "threads started at once per wave",
     "pool_resource", " thr/wave", "threads per wave", timing::aggregate, false},
    {"prodcons", "producer/consumer: thread 1 frees what thread 0 allocated",
     "wall-clock ns per block allocated, handed over through a bounded SPSC ring and freed, "
     "both threads together; column = block size (mixed = 16..1024 B)",
     "pool_resource", " B", "block size", timing::aggregate, false},
    {"reuse", "object reuse: a 4 KiB buffer object (not zero-filled, except where labelled)",
     "wall-clock ns per get + put (or make_unique + delete), all threads together; column = "
     "threads",
     "pool", " thr", "threads", timing::aggregate, true},
    {"idle", "idle: 64 threads use every size class, then stay alive and parked",
     "memory only, see Memory", "pool_resource", " thr", "threads", timing::none, false},
};

struct allocator_info {
  std::string_view id;
  std::string_view label;
  std::string_view color;
  bool dashed;
};

// One colour per family, their hues at least 25 degrees apart, syncpool's
// own rows black and grey; the new_delete_resource row of a malloc, and
// other variants of a row, are dashed (or hatched) in the family's colour.
constexpr allocator_info kAllocators[] = {
    {"pool_resource", "syncpool::pool_resource", "#000000", false},
    {"pool_resource_mimalloc", "syncpool::pool_resource on mimalloc_resource", "#999999", false},
    {"synchronized_pool", "std::pmr::synchronized_pool_resource", "#0072b2", false},
    {"unsynchronized_pool", "std::pmr::unsynchronized_pool_resource", "#984ea3", false},
    {"monotonic", "std::pmr::monotonic_buffer_resource", "#8c8c2a", false},
    {"monotonic_stack", "std::pmr::monotonic_buffer_resource, stack buffer", "#8c8c2a", true},
    {"malloc_free_glibc", "glibc malloc/free", "#d62728", false},
    {"new_delete_glibc", "glibc via new_delete_resource", "#d62728", true},
    {"malloc_free_mimalloc", "mimalloc malloc/free", "#009e73", false},
    {"new_delete_mimalloc", "mimalloc via new_delete_resource", "#009e73", true},
    {"malloc_free_jemalloc", "jemalloc malloc/free", "#17becf", false},
    {"new_delete_jemalloc", "jemalloc via new_delete_resource", "#17becf", true},
    {"malloc_free_tcmalloc", "tcmalloc malloc/free", "#e69f00", false},
    {"new_delete_tcmalloc", "tcmalloc via new_delete_resource", "#e69f00", true},
    {"pool", "syncpool::pool<T> get/put", "#000000", false},
    {"naive_pool", "std::mutex + std::vector free list", "#0072b2", false},
    {"make_unique_glibc", "make_unique/delete, glibc", "#d62728", false},
    {"make_unique_zeroed_glibc", "make_unique<std::byte[]>(4096)/delete, zero-filled, glibc",
     "#d62728", true},
    {"make_unique_mimalloc", "make_unique/delete, mimalloc", "#009e73", false},
    {"make_unique_jemalloc", "make_unique/delete, jemalloc", "#17becf", false},
    {"make_unique_tcmalloc", "make_unique/delete, tcmalloc", "#e69f00", false},
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

const allocator_info* find_allocator(std::string_view id) {
  const int rank = allocator_rank(id);
  return rank < static_cast<int>(std::size(kAllocators)) ? &kAllocators[rank] : nullptr;
}

std::string label(std::string_view id) {
  const allocator_info* a = find_allocator(id);
  return std::string(a != nullptr ? a->label : id);
}

bool is_number(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool by_allocator_rank(const std::string& a, const std::string& b) {
  return allocator_rank(a) < allocator_rank(b);
}

// ---- One workload's results as a grid.

struct grid {
  const workload_info* info = nullptr;
  std::string workload;
  std::vector<std::string> columns;                                    // parameters
  std::vector<std::string> rows;                                       // allocator ids
  std::map<std::pair<std::string, std::string>, const result*> cells;  // (row, column)
  const std::set<std::pair<std::string, std::string>>* offered = nullptr;

  timing time() const { return info != nullptr ? info->time : timing::one_thread; }
  std::string baseline_id() const { return info != nullptr ? std::string(info->baseline) : ""; }

  // What an empty cell says: n/a where the row does not fit the workload,
  // "-" where it does but did not run (--filter).
  const char* empty_cell(const std::string& row) const {
    return offered != nullptr && offered->count({workload, row}) != 0 ? "-" : "n/a";
  }

  const result* at(const std::string& row, const std::string& column) const {
    const auto it = cells.find({row, column});
    return it != cells.end() ? it->second : nullptr;
  }
  const result* ran(const std::string& row, const std::string& column) const {
    const result* r = at(row, column);
    return r != nullptr && r->ok() ? r : nullptr;
  }
  // The fastest row of all in a column; nullptr if none ran.
  const result* fastest(const std::string& column) const {
    const result* best = nullptr;
    for (const std::string& row : rows) {
      const result* r = ran(row, column);
      if (r != nullptr && (best == nullptr || r->ns_per_op < best->ns_per_op)) best = r;
    }
    return best;
  }
  double baseline(const std::string& column) const {
    const result* r = ran(baseline_id(), column);
    return r != nullptr ? r->ns_per_op : std::numeric_limits<double>::quiet_NaN();
  }
  std::string column_name(const std::string& column) const {
    if (info != nullptr && is_number(column)) return column + std::string(info->suffix);
    return column;
  }
  // Says in the header what the figure is.
  std::string column_header(const std::string& column) const {
    const std::string name = column_name(column);
    return time() == timing::aggregate ? name + ", aggregate ns/op" : name;
  }
};

bool reuse_kind(const std::string& workload) { return workload == "reuse"; }

// The workloads in report order, each with the rows that ran in it and,
// given `offered`, the rows of its kind that do not fit it (shown as n/a).
std::vector<grid> make_grids(const std::vector<result>& results,
                             const std::set<std::pair<std::string, std::string>>* offered) {
  std::vector<std::string> workloads;
  for (const result& r : results) {
    if (std::find(workloads.begin(), workloads.end(), r.workload) == workloads.end()) {
      workloads.push_back(r.workload);
    }
  }
  std::stable_sort(workloads.begin(), workloads.end(),
                   [](const std::string& a, const std::string& b) {
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
    std::stable_sort(g.rows.begin(), g.rows.end(), by_allocator_rank);
    if (std::all_of(g.columns.begin(), g.columns.end(), is_number)) {
      std::sort(g.columns.begin(), g.columns.end(), [](const std::string& a, const std::string& b) {
        return std::stoll(a) < std::stoll(b);
      });
    }
    grids.push_back(std::move(g));
  }
  return grids;
}

const grid* find_grid(const std::vector<grid>& grids, std::string_view workload) {
  for (const grid& g : grids) {
    if (g.workload == workload) return &g;
  }
  return nullptr;
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
  if (!std::isfinite(ratio)) return "?";
  if (ratio < 10) return format("%.2fx", ratio);
  return format("%.0fx", ratio);
}

// How far apart a row's repetitions lay: slowest over fastest (1 for a
// single repetition or unknown bounds).
double repetition_spread(const result& r) {
  if (r.repetitions < 2 || !(r.ns_min > 0) || !std::isfinite(r.ns_max)) return 1;
  return r.ns_max / r.ns_min;
}

// A goal with a margin (0.75x) is not judged on a column whose rows'
// repetitions lie further apart than this.
constexpr double kJudgeableSpread = 2.0;

// With thousands separators: "12,345.6".
std::string format_amount(double v, int decimals) {
  if (!std::isfinite(v)) return "?";
  const std::string digits = format(decimals > 0 ? "%.1f" : "%.0f", std::fabs(v));
  std::size_t integer = digits.find('.');
  if (integer == std::string::npos) integer = digits.size();
  std::string out = v < 0 && digits.find_first_not_of("0.") != std::string::npos ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && i < integer && (integer - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string mib(double kib) { return format_amount(kib / 1024, 1); }

// "300 vs 96 KiB" when both fit under a MiB, where "0.3 vs 0.1 MiB" would hide
// the ratio; "480.0 vs 100.0 MiB" otherwise.
std::string kib_or_mib_pair(double a_kib, double b_kib) {
  if (std::max(a_kib, b_kib) < 1024) {
    return format_amount(a_kib, 0) + " vs " + format_amount(b_kib, 0) + " KiB";
  }
  return mib(a_kib) + " vs " + mib(b_kib) + " MiB";
}

void table_header(std::ostringstream& out, const std::string& first,
                  const std::vector<std::string>& columns) {
  out << "| " << first << " |";
  for (const std::string& c : columns) out << ' ' << c << " |";
  out << "\n| :-- |";
  for (std::size_t i = 0; i < columns.size(); ++i) out << " --: |";
  out << '\n';
}

std::string bold_if(bool bold, const std::string& text) { return bold ? "**" + text + "**" : text; }

// ---- The syncpool row against the fastest row of all.

struct loss {
  std::string workload;
  std::string column;  // as the table names it
  std::string winner;  // allocator id
  double winner_ns;
  std::string baseline;
  double baseline_ns;
  double ratio() const { return baseline_ns / winner_ns; }
};

struct ranking {
  int columns = 0;           // columns where the baseline ran
  int fastest = 0;           // of which the baseline was the fastest row
  std::vector<loss> losses;  // slowest first
};

ranking rank_baselines(const std::vector<grid>& grids) {
  ranking rk;
  for (const grid& g : grids) {
    if (g.info == nullptr || g.time() == timing::none) continue;
    for (const std::string& column : g.columns) {
      const double base = g.baseline(column);
      const result* best = g.fastest(column);
      if (!std::isfinite(base) || best == nullptr) continue;
      ++rk.columns;
      if (best->allocator == g.baseline_id() || best->ns_per_op >= base) {
        ++rk.fastest;
        continue;
      }
      rk.losses.push_back({g.workload, g.column_header(column), best->allocator, best->ns_per_op,
                           g.baseline_id(), base});
    }
  }
  std::stable_sort(rk.losses.begin(), rk.losses.end(),
                   [](const loss& a, const loss& b) { return a.ratio() > b.ratio(); });
  return rk;
}

std::string describe(const loss& l) {
  return l.workload + " " + l.column + ": `" + label(l.winner) + "` " + format_ns(l.winner_ns) +
         " ns vs `" + label(l.baseline) + "` " + format_ns(l.baseline_ns) + " ns (" +
         format_ratio(l.ratio()) + " slower)";
}

// ---- The full report's tables.

std::string time_cell(const grid& g, const std::string& row, const std::string& column,
                      bool quick) {
  const result* r = g.at(row, column);
  if (r == nullptr) return g.empty_cell(row);
  if (r->limit) return "limit";
  if (!r->ok()) return "failed";
  std::string text = format_ns(r->ns_per_op);
  if (!quick) {
    const result* best = g.fastest(column);
    text = bold_if(best != nullptr && r->ns_per_op <= best->ns_per_op, text);
    if (r->repetitions > 1) text += " [" + format_ns(r->ns_min) + "–" + format_ns(r->ns_max) + "]";
  }
  const double base = g.baseline(column);
  if (row != g.baseline_id() && std::isfinite(base)) {
    text += " (" + format_ratio(r->ns_per_op / base) + ")";
  }
  return text;
}

void time_table(std::ostringstream& out, const grid& g, bool quick) {
  out << "#### " << (g.info != nullptr ? g.info->title : g.workload) << "\n\n";
  if (g.info != nullptr) out << g.info->op << ". ";
  out << "Lower is better";
  if (!quick) out << "; **bold** = fastest row; [min–max] over the repetitions";
  const std::string baseline = g.baseline_id();
  if (!baseline.empty()) out << "; (1.23x) = time relative to `" << label(baseline) << '`';
  out << ".\n\n";
  std::vector<std::string> headers;
  for (const std::string& c : g.columns) headers.push_back(g.column_header(c));
  table_header(out, "allocator", headers);
  for (const std::string& row : g.rows) {
    out << "| `" << label(row) << "` |";
    for (const std::string& column : g.columns)
      out << ' ' << time_cell(g, row, column, quick) << " |";
    out << '\n';
  }
  out << '\n';
}

// The largest value of a memory counter over a workload's columns.
std::optional<double> max_over(const grid& g, const std::string& row,
                               std::optional<double> result::*field) {
  std::optional<double> most;
  for (const std::string& column : g.columns) {
    const result* r = g.ran(row, column);
    if (r != nullptr && (r->*field).has_value())
      most = std::max(most.value_or(*(r->*field)), *(r->*field));
  }
  return most;
}

bool ran_every_column(const grid& g, const std::string& row) {
  return std::all_of(g.columns.begin(), g.columns.end(),
                     [&](const std::string& column) { return g.ran(row, column) != nullptr; });
}

std::vector<std::string> all_rows(const std::vector<const grid*>& grids) {
  std::vector<std::string> rows;
  for (const grid* g : grids) {
    for (const std::string& row : g->rows) {
      if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), by_allocator_rank);
  return rows;
}

void resources_table(std::ostringstream& out, const grid& g) {
  out << "#### Memory per live resource (resources)\n\n"
         "RSS growth while all of them live, divided by their number, KiB per resource; then "
         "what each holds from its upstream (counted), KiB. \"limit\" = the allocator could not "
         "have that many alive (see Limits).\n\n";
  std::vector<std::string> headers;
  for (const std::string& c : g.columns)
    headers.push_back(format_amount(std::stod(c), 0) + " live");
  table_header(out, "resource", headers);
  for (const std::string& row : g.rows) {
    out << "| `" << label(row) << "` |";
    for (const std::string& column : g.columns) {
      const result* r = g.at(row, column);
      if (r == nullptr) {
        out << ' ' << g.empty_cell(row) << " |";
      } else if (r->limit) {
        out << " limit |";
      } else if (!r->ok() || !r->rss_per_resource_kib) {
        out << " failed |";
      } else {
        out << ' ' << format_amount(*r->rss_per_resource_kib, 1) << " RSS";
        if (r->upstream_per_resource_bytes) {
          out << ", " << format_amount(*r->upstream_per_resource_bytes / 1024, 1) << " upstream";
        }
        out << " |";
      }
    }
    out << '\n';
  }
  out << '\n';
}

void idle_table(std::ostringstream& out, const grid& g) {
  out << "#### Idle threads (idle)\n\n"
         "64 threads each allocated and freed blocks of every size class, then stayed alive "
         "and parked, without flushing any cache, while this was read (MiB): bytes held from "
         "upstream (counted rows only; a malloc's is in its RSS), and the RSS growth, each "
         "before and after two `syncpool::collect()` cycles.\n\n";
  table_header(out, "allocator",
               {"held from upstream", "after two collects", "RSS", "RSS after two collects"});
  const auto cell = [](const std::optional<double>& v, double per_mib) {
    return v ? format_amount(*v / per_mib, 1) : std::string("n/a");
  };
  for (const std::string& row : g.rows) {
    const result* r = g.columns.empty() ? nullptr : g.at(row, g.columns.front());
    out << "| `" << label(row) << "` |";
    if (r == nullptr || !r->ok()) {
      const std::string text = r == nullptr ? g.empty_cell(row) : (r->limit ? "limit" : "failed");
      for (int i = 0; i < 4; ++i) out << ' ' << text << " |";
    } else {
      out << ' ' << cell(r->held_bytes, 1 << 20) << " | " << cell(r->held_collected_bytes, 1 << 20)
          << " | " << cell(r->rss_after_kib, 1024) << " | " << cell(r->rss_collected_kib, 1024)
          << " |";
    }
    out << '\n';
  }
  out << '\n';
}

void memory_tables(std::ostringstream& out, const std::vector<grid>& grids, bool quick) {
  std::vector<const grid*> shown;
  for (const grid& g : grids) shown.push_back(&g);
  const std::vector<std::string> rows = all_rows(shown);
  std::vector<std::string> names;
  for (const grid* g : shown) names.push_back(g->workload);

  out << "#### Peak and after two collects, every workload\n\n"
         "Per benchmark invocation, in a process of its own, running as many iterations as "
         "every other row of its column (the median of their timed runs' counts), once the "
         "row ran through every size on a resource it then destroyed and every page of the "
         "process's files was read (so that code pages are not counted as memory): "
         "peak RSS growth over the RSS at the start (exact RSS sampled every 200 µs) -> RSS "
         "growth left once the work is freed "
         "and two `syncpool::collect()` cycles ran (the resource still alive), MiB; the "
         "largest over the workload's columns";
  if (!quick) out << "; **bold** = smallest peak of the rows that ran every column";
  out << ".\n\n";
  table_header(out, "allocator", names);
  for (const std::string& row : rows) {
    out << "| `" << label(row) << "` |";
    for (const grid* g : shown) {
      const std::optional<double> peak = max_over(*g, row, &result::peak_rss_kib);
      const std::optional<double> left = max_over(*g, row, &result::rss_collected_kib);
      if (!peak) {
        out << ' ' << g->empty_cell(row) << " |";
        continue;
      }
      // Among the rows that ran every column: a row that stopped at a limit
      // has a smaller largest figure without being smaller.
      double smallest = std::numeric_limits<double>::infinity();
      for (const std::string& other : g->rows) {
        if (!ran_every_column(*g, other)) continue;
        if (const auto p = max_over(*g, other, &result::peak_rss_kib)) {
          smallest = std::min(smallest, *p);
        }
      }
      out << ' ' << bold_if(!quick && ran_every_column(*g, row) && *peak <= smallest, mib(*peak));
      if (left) out << " -> " << mib(*left);
      out << " |";
    }
    out << '\n';
  }
  out << "\nBytes the resource (or object pool) holds from its upstream once the work is "
         "freed -> after two `syncpool::collect()` cycles, KiB; the largest over the "
         "workload's columns. Only where the upstream is counted (malloc rows: see RSS "
         "above).\n\n";
  table_header(out, "allocator", names);
  for (const std::string& row : rows) {
    bool any = false;
    std::ostringstream line;
    line << "| `" << label(row) << "` |";
    for (const grid* g : shown) {
      const std::optional<double> held = max_over(*g, row, &result::held_bytes);
      const std::optional<double> left = max_over(*g, row, &result::held_collected_bytes);
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

void ranking_section(std::ostringstream& out, const std::vector<grid>& grids) {
  const ranking rk = rank_baselines(grids);
  out << "### Where the syncpool row is not the fastest\n\n"
      << "Against the fastest row of all, every allocator and both ways into each malloc. "
         "The syncpool row (`syncpool::pool_resource`; `syncpool::pool<T>` for object reuse) "
         "is the fastest in "
      << rk.fastest << " of " << rk.columns << " columns.";
  if (rk.losses.empty()) {
    out << "\n\n";
    return;
  }
  out << " The others, largest gap first (on a shared or busy machine, gaps under about "
         "10% are within run-to-run noise):\n\n";
  for (const loss& l : rk.losses) out << "- " << describe(l) << '\n';
  out << '\n';
}

void run_lines(std::ostringstream& out, const std::vector<result>& results, const run_info& info) {
  out << "- Machine: " << info.machine << '\n';
  if (!info.command.empty()) out << "- Command: `" << info.command << "`\n";
  if (!info.commit.empty()) out << "- Commit: " << info.commit << '\n';
  out << "- Settings: " << info.settings << '\n';
  std::size_t ok = 0, limits = 0;
  for (const result& r : results) {
    ok += r.ok();
    limits += r.limit;
  }
  out << "- Ran " << ok << " of " << results.size() << " benchmarks";
  if (limits > 0) out << " (" << limits << " hit a limit of the allocator)";
  out << " in " << format("%.0f", info.seconds) << " s (" << format("%.1f", info.seconds / 60)
      << " min)\n";
  for (const std::string& w : info.warnings) out << "- **Warning:** " << w << '\n';
  out << '\n';
}

// ---- Charts.

// A gnuplot string literal.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  return format("%.6g", v);
}

std::string csv_number(const std::optional<double>& v) { return v ? csv_number(*v) : ""; }

using value_fn = std::function<std::optional<double>(std::size_t x, const std::string& row)>;

struct panel {
  std::string title;
  std::string y_label;
  value_fn value;
  bool log_y;
};

// One chart (one panel, or several stacked): a data file per panel (a line
// per x, a column per row) and the commands that plot it.
void chart(std::ostream& script, const std::string& data_stem, const std::string& png_path,
           const std::string& x_label, const std::vector<std::string>& x_names,
           const std::vector<std::string>& all_rows, const std::vector<panel>& panels, bool lines) {
  // Rows with nothing to plot would leave empty legend entries.
  std::vector<std::string> rows;
  for (const std::string& row : all_rows) {
    bool any = false;
    for (const panel& p : panels) {
      for (std::size_t x = 0; x < x_names.size() && !any; ++x) {
        const std::optional<double> v = p.value(x, row);
        any = v && std::isfinite(*v) && (!p.log_y || *v > 0);
      }
    }
    if (any) rows.push_back(row);
  }
  if (rows.empty()) return;
  script << "reset\n"
         << "set terminal pngcairo size 1280," << 160 + 600 * panels.size()
         << " noenhanced font 'sans,10'\n"
         << "set output " << gp_string(png_path) << '\n';
  if (panels.size() > 1) script << "set multiplot layout " << panels.size() << ",1\n";
  for (std::size_t pi = 0; pi < panels.size(); ++pi) {
    const panel& p = panels[pi];
    const std::string data_path = data_stem + "." + std::to_string(pi) + ".dat";
    std::ofstream data(data_path);
    data << "# x";
    for (const std::string& row : rows) data << ' ' << row;
    data << '\n';
    for (std::size_t x = 0; x < x_names.size(); ++x) {
      data << '"' << x_names[x] << '"';
      for (const std::string& row : rows) {
        const std::optional<double> v = p.value(x, row);
        const bool plottable = v && std::isfinite(*v) && (!p.log_y || *v > 0);
        data << ' ' << (plottable ? csv_number(*v) : "-");
      }
      data << '\n';
    }
    script << "unset logscale\n"
           << "set title " << gp_string(p.title) << '\n'
           << "set xlabel " << gp_string(x_label) << '\n'
           << "set ylabel " << gp_string(p.y_label) << '\n'
           << "set datafile missing '-'\n"
           << "set key outside below center horizontal maxcols 3\n"
           << "set grid ytics\n"
           << "set yrange [" << (p.log_y ? "*" : "0") << ":*]\n";
    if (p.log_y) script << "set logscale y\n";
    if (lines) {
      script << "set xtics (";
      for (std::size_t x = 0; x < x_names.size(); ++x) {
        script << (x ? ", " : "") << gp_string(x_names[x]) << ' ' << x;
      }
      script << ")\nset xrange [-0.3:" << (x_names.size() - 0.7) << "]\n";
    } else {
      script << "set style data histograms\n"
             << "set style histogram clustered gap 1\n"
             << "set boxwidth 0.9\n"
             << "set xtics nomirror\n"
             << "set xrange [*:*]\n";
    }
    script << "plot ";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const row_style st = style_of(rows[i]);
      if (i) script << ", \\\n     ";
      script << (i == 0 ? gp_string(data_path) : "''");
      if (lines) {
        script << " using 0:" << i + 2 << " with linespoints lw 2 pt " << (st.dashed ? 6 : 7)
               << " dt " << (st.dashed ? 2 : 1);
      } else {
        // Boxes take their fill from fc, their border from lc.
        script << " using " << i + 2 << (i == 0 ? ":xtic(1)" : "")
               << (st.dashed ? " fs pattern 4 border" : " fs solid 0.85 border") << " fc rgb "
               << gp_string(st.color);
      }
      script << " lc rgb " << gp_string(st.color) << " title " << gp_string(label(rows[i]));
    }
    script << "\n";
  }
  if (panels.size() > 1) script << "unset multiplot\n";
}

std::string chart_title(const std::string& title, const run_info& info) {
  return info.quick ? title + " (" + kSmokeTestWarning + ")" : title;
}

// ---- README summary.

struct pick {
  std::string_view workload;
  std::string param;  // "" = see below
};

// The thread-count columns the summary shows: the smallest above one and
// the largest.
std::vector<std::string> thread_columns(const grid* g) {
  std::vector<std::string> picked;
  if (g == nullptr || g->columns.empty()) return picked;
  for (const std::string& c : g->columns) {
    if (is_number(c) && std::stoi(c) > 1) {
      picked.push_back(c);
      break;
    }
  }
  if (std::find(picked.begin(), picked.end(), g->columns.back()) == picked.end()) {
    picked.push_back(g->columns.back());
  }
  return picked;
}

// A table of picked columns from several workloads: rows = allocators.
void picked_table(std::ostringstream& out, const std::vector<grid>& grids,
                  const std::vector<pick>& picks, bool quick) {
  std::vector<std::pair<const grid*, std::string>> columns;
  for (const pick& p : picks) {
    const grid* g = find_grid(grids, p.workload);
    if (g == nullptr) continue;
    if (!p.param.empty()) {
      if (std::find(g->columns.begin(), g->columns.end(), p.param) != g->columns.end()) {
        columns.emplace_back(g, p.param);
      }
      continue;
    }
    for (const std::string& c : thread_columns(g)) columns.emplace_back(g, c);
  }
  if (columns.empty()) return;
  std::vector<const grid*> grid_list;
  std::vector<std::string> headers;
  for (const auto& [g, c] : columns) {
    grid_list.push_back(g);
    headers.push_back(g->workload + " " + g->column_name(c));
  }
  table_header(out, "allocator", headers);
  for (const std::string& row : all_rows(grid_list)) {
    out << "| `" << label(row) << "` |";
    for (const auto& [g, c] : columns) {
      const result* r = g->at(row, c);
      std::string text;
      if (r == nullptr) {
        text = g->empty_cell(row);
      } else if (!r->ok()) {
        text = r->limit ? "limit" : "failed";
      } else {
        const result* best = g->fastest(c);
        text = bold_if(!quick && best != nullptr && r->ns_per_op <= best->ns_per_op,
                       format_ns(r->ns_per_op));
        const double base = g->baseline(c);
        if (row != g->baseline_id() && std::isfinite(base)) {
          text += " (" + format_ratio(r->ns_per_op / base) + ")";
        }
      }
      out << ' ' << text << " |";
    }
    out << '\n';
  }
  out << '\n';
}

void summary_memory_table(std::ostringstream& out, const std::vector<grid>& grids) {
  const grid* resources = find_grid(grids, "resources");
  const grid* idle = find_grid(grids, "idle");
  const grid* batch = find_grid(grids, "batch");
  std::vector<const grid*> present;
  for (const grid* g : {resources, idle, batch}) {
    if (g != nullptr) present.push_back(g);
  }
  if (present.empty()) return;
  std::vector<std::string> headers;
  if (resources != nullptr) {
    for (const std::string& c : resources->columns) {
      headers.push_back("KiB RSS per resource, " + format_amount(std::stod(c), 0) + " live");
    }
  }
  if (idle != nullptr) {
    headers.push_back("idle: MiB held upstream after two collects");
    headers.push_back("idle: MiB RSS after two collects");
  }
  if (batch != nullptr) headers.push_back("batch: MiB peak RSS -> after two collects");
  table_header(out, "allocator", headers);
  for (const std::string& row : all_rows(present)) {
    out << "| `" << label(row) << "` |";
    if (resources != nullptr) {
      for (const std::string& c : resources->columns) {
        const result* r = resources->at(row, c);
        if (r == nullptr) {
          out << ' ' << resources->empty_cell(row) << " |";
        } else if (!r->ok() || !r->rss_per_resource_kib) {
          out << ' ' << (r->limit ? "limit" : "failed") << " |";
        } else {
          out << ' ' << format_amount(*r->rss_per_resource_kib, 1) << " |";
        }
      }
    }
    if (idle != nullptr) {
      const result* r = idle->columns.empty() ? nullptr : idle->ran(row, idle->columns.front());
      const auto cell = [r](std::optional<double> result::*field, double per_mib) {
        if (r == nullptr) return std::string("n/a");
        return (r->*field) ? format_amount(*(r->*field) / per_mib, 1) : std::string("n/a");
      };
      out << ' ' << cell(&result::held_collected_bytes, 1 << 20) << " | "
          << cell(&result::rss_collected_kib, 1024) << " |";
    }
    if (batch != nullptr) {
      const std::optional<double> peak = max_over(*batch, row, &result::peak_rss_kib);
      const std::optional<double> left = max_over(*batch, row, &result::rss_collected_kib);
      if (peak) {
        out << ' ' << mib(*peak) << " -> " << (left ? mib(*left) : "?") << " |";
      } else {
        out << ' ' << batch->empty_cell(row) << " |";
      }
    }
    out << '\n';
  }
  out << '\n';
}

// ---- Goals, each judged on this run.

struct goal {
  std::string text;
  std::string status;
};

std::string met(bool yes) { return yes ? "**met**" : "**not met**"; }

std::vector<goal> judge_goals(const std::vector<grid>& grids) {
  std::vector<goal> goals;
  if (const grid* pair = find_grid(grids, "pair")) {
    const result* ours = pair->ran("pool_resource", "64");
    const result* theirs = pair->ran("unsynchronized_pool", "64");
    if (ours != nullptr && theirs != nullptr) {
      const double ratio = ours->ns_per_op / theirs->ns_per_op;
      goals.push_back({"64-byte pair at most half of `unsynchronized_pool_resource`",
                       met(ratio <= 0.5) + ": " + format_ns(ours->ns_per_op) + " vs " +
                           format_ns(theirs->ns_per_op) + " ns (" + format_ratio(ratio) + ")"});
    }
  }
  if (const grid* reuse = find_grid(grids, "reuse")) {
    const result* ours = reuse->ran("pool", "1");
    const result* best = nullptr;
    for (const std::string& row : reuse->rows) {
      if (row.rfind("make_unique_", 0) != 0 || row.find("zeroed") != std::string::npos) continue;
      const result* r = reuse->ran(row, "1");
      if (r != nullptr && (best == nullptr || r->ns_per_op < best->ns_per_op)) best = r;
    }
    if (ours != nullptr && best != nullptr) {
      const double ratio = ours->ns_per_op / best->ns_per_op;
      goals.push_back(
          {"`pool<T>` get+put at most 1/5 of the fastest make_unique + delete "
           "(4 KiB, not zero-filled, one thread)",
           met(ratio <= 0.2) + ": " + format_ns(ours->ns_per_op) + " vs " +
               format_ns(best->ns_per_op) + " ns for `" + label(best->allocator) + "` (1/" +
               format("%.1f", 1 / ratio) + ")"});
    }
  }
  const ranking rk = rank_baselines(grids);
  if (rk.columns > 0) {
    std::string status = met(rk.losses.empty()) + ": the syncpool row is the fastest in " +
                         std::to_string(rk.fastest) + " of " + std::to_string(rk.columns) +
                         " columns";
    if (!rk.losses.empty()) status += "; largest gap: " + describe(rk.losses.front());
    goals.push_back(
        {"syncpool no slower than the fastest row of all on every workload column", status});
  }
  {
    // Against the peers only: every row but syncpool's own and the
    // monotonic_buffer_resource ones, which free nothing.
    const auto is_peer = [](const std::string& row) {
      return row != "pool_resource" && row != "pool_resource_mimalloc" && row != "pool" &&
             row.rfind("monotonic", 0) != 0;
    };
    const auto in_scope = [](const grid& g, const std::string& column) {
      const double n = std::strtod(column.c_str(), nullptr);
      if (g.workload == "pair") return n >= 16 && n <= 4096;
      if (g.workload == "threads") return n >= 1 && n <= 4;
      return g.workload == "batch" || g.workload == "containers" || g.workload == "server" ||
             g.workload == "prodcons";
    };
    struct gap {
      double ratio;
      std::string text;
    };
    std::vector<gap> over;
    std::vector<gap> noisy;  // columns not judged: ratio = the wider spread
    int compared = 0;
    for (const grid& g : grids) {
      for (const std::string& column : g.columns) {
        if (!in_scope(g, column)) continue;
        const result* ours = g.ran("pool_resource", column);
        const result* best = nullptr;
        for (const std::string& row : g.rows) {
          const result* r = is_peer(row) ? g.ran(row, column) : nullptr;
          if (r != nullptr && (best == nullptr || r->ns_per_op < best->ns_per_op)) best = r;
        }
        if (ours == nullptr || best == nullptr) continue;
        // A row whose repetitions lie further apart than the margin the
        // goal asks for says more about the machine than the allocator
        // (on this project's VM, prodcons cells swung 3-8x between rounds,
        // and a row that drew the fast period twice read 0.15x).
        const double spread = std::max(repetition_spread(*ours), repetition_spread(*best));
        if (spread > kJudgeableSpread) {
          noisy.push_back({spread, g.workload + " " + g.column_name(column) + " (repetitions " +
                                       format_ratio(spread) + " apart)"});
          continue;
        }
        ++compared;
        const double ratio = ours->ns_per_op / best->ns_per_op;
        if (ratio > 0.75) {
          over.push_back({ratio, g.workload + " " + g.column_name(column) + " " + format_ratio(ratio) +
                                     " of `" + label(best->allocator) + "`"});
        }
      }
    }
    if (compared > 0 || !noisy.empty()) {
      const auto by_ratio = [](const gap& a, const gap& b) { return a.ratio > b.ratio; };
      std::stable_sort(over.begin(), over.end(), by_ratio);
      std::stable_sort(noisy.begin(), noisy.end(), by_ratio);
      std::string status = met(over.empty() && noisy.empty()) + ": at or under 0.75x in " +
                           std::to_string(compared - static_cast<int>(over.size())) + " of " +
                           std::to_string(compared) + " columns";
      if (!noisy.empty()) {
        status += " (" + std::to_string(noisy.size()) + " more too noisy to judge:";
        for (std::size_t i = 0; i < noisy.size(); ++i) status += (i ? ", " : " ") + noisy[i].text;
        status += ")";
      }
      if (!over.empty()) {
        status += "; the largest ratios:";
        for (std::size_t i = 0; i < over.size() && i < 5; ++i) status += (i ? "; " : " ") + over[i].text;
      }
      goals.push_back({"`pool_resource` at most 0.75x the fastest peer row (every row but syncpool's and the "
                       "monotonic ones) on pair 16 B-4 KiB, batch, containers, threads 1-4, server, prodcons",
                       status});
    }
  }
  if (const grid* lifetime = find_grid(grids, "lifetime")) {
    const result* ours = lifetime->ran("pool_resource", "16");
    const result* theirs = lifetime->ran("unsynchronized_pool", "16");
    if (ours != nullptr && theirs != nullptr) {
      const double ratio = ours->ns_per_op / theirs->ns_per_op;
      goals.push_back({"a resource per request (construct, 16 allocations, destroy) at most 1.0x "
                       "`unsynchronized_pool_resource`",
                       met(ratio <= 1.0) + ": " + format_ns(ours->ns_per_op) + " vs " +
                           format_ns(theirs->ns_per_op) + " ns (" + format_ratio(ratio) + ")"});
    }
  }
  if (const grid* resources = find_grid(grids, "resources")) {
    std::string text;
    bool all = true;
    for (const std::string& column : resources->columns) {
      const result* ours = resources->ran("pool_resource", column);
      const result* theirs = resources->ran("unsynchronized_pool", column);
      if (ours == nullptr || theirs == nullptr || !ours->rss_per_resource_kib ||
          !theirs->rss_per_resource_kib) {
        continue;
      }
      const double ratio = *ours->rss_per_resource_kib / *theirs->rss_per_resource_kib;
      all = all && ratio <= 1.0;
      text += (text.empty() ? "" : "; ") + resources->column_name(column) + ": " +
              format_amount(*ours->rss_per_resource_kib, 2) + " vs " +
              format_amount(*theirs->rss_per_resource_kib, 2) + " KiB (" + format_ratio(ratio) + ")";
    }
    if (!text.empty()) {
      goals.push_back({"RSS per live resource at most 1.0x `unsynchronized_pool_resource`", met(all) + ": " + text});
    }
  }
  {
    std::vector<std::string> held;
    bool any = false;
    for (const grid& g : grids) {
      for (const std::string& row : {std::string("pool_resource"),
                                     std::string("pool_resource_mimalloc"), std::string("pool")}) {
        const std::optional<double> left = max_over(g, row, &result::held_collected_bytes);
        if (!left) continue;
        any = true;
        if (*left > 0) {
          held.push_back(g.workload + " (`" + label(row) + "` " + format_amount(*left / 1024, 0) +
                         " KiB)");
        }
      }
    }
    if (any) {
      std::string status = met(held.empty());
      if (held.empty()) {
        status += " on every workload, parked live threads (idle) included";
      } else {
        status += ": still held in";
        for (std::size_t i = 0; i < held.size(); ++i) status += (i ? ", " : " ") + held[i];
      }
      goals.push_back({"zero upstream bytes after two collects with nothing in use", status});
    }
  }
  {
    // Column by column, so that a row that stopped early (a limit) is not
    // compared by its smaller columns; per workload, the worst column.
    std::vector<std::string> over;
    int compared = 0;
    for (const grid& g : grids) {
      double worst = 1.25;
      std::string text;
      bool any = false;
      for (const std::string& column : g.columns) {
        const result* ours = g.ran("pool_resource", column);
        if (ours == nullptr || !ours->peak_rss_kib) continue;
        const result* best = nullptr;
        for (const std::string& row : g.rows) {
          const result* r = g.ran(row, column);
          if (r != nullptr && r->peak_rss_kib &&
              (best == nullptr || *r->peak_rss_kib < *best->peak_rss_kib)) {
            best = r;
          }
        }
        any = true;
        // A page is the least RSS can grow by.
        const double ratio = *ours->peak_rss_kib / std::max(*best->peak_rss_kib, 4.0);
        if (ratio > worst) {
          worst = ratio;
          text = g.workload + " " + g.column_name(column) + ": " +
                 kib_or_mib_pair(*ours->peak_rss_kib, *best->peak_rss_kib) + " (`" +
                 label(best->allocator) + "`)";
        }
      }
      compared += any;
      if (!text.empty()) over.push_back(text);
    }
    if (compared > 0) {
      std::string status = met(over.empty());
      if (!over.empty()) {
        status += " on " + std::to_string(over.size()) + " of " + std::to_string(compared) +
                  " workloads (the worst column of each):";
        for (std::size_t i = 0; i < over.size(); ++i) status += (i ? "; " : " ") + over[i];
      } else {
        status += " on all " + std::to_string(compared) + " workloads";
      }
      goals.push_back(
          {"peak RSS within 1.25x of the smallest of any row, column by column", status});
    }
  }
  return goals;
}

// ---- Colours.

struct lab {
  double l, a, b;
};

lab to_lab(const std::string& hex) {
  const auto channel = [&hex](int i) {
    const double c = std::stoi(hex.substr(1 + 2 * i, 2), nullptr, 16) / 255.0;
    return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
  };
  const double r = channel(0), g = channel(1), b = channel(2);
  // sRGB to XYZ (D65), relative to the white point.
  const double x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
  const double y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  const double z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
  const auto f = [](double t) { return t > 0.008856 ? std::cbrt(t) : 7.787 * t + 16.0 / 116.0; };
  return {116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))};
}

}  // namespace

int workload_rank(const std::string& workload) {
  for (std::size_t i = 0; i < std::size(kWorkloads); ++i) {
    if (kWorkloads[i].id == workload) return static_cast<int>(i);
  }
  return static_cast<int>(std::size(kWorkloads));
}

row_style style_of(const std::string& allocator) {
  if (const allocator_info* a = find_allocator(allocator)) {
    return {std::string(a->color), a->dashed};
  }
  // Unknown to the report: a colour none of the known rows has.
  return {"#7f3f00", true};
}

std::vector<std::string> known_allocators() {
  std::vector<std::string> ids;
  for (const allocator_info& a : kAllocators) ids.emplace_back(a.id);
  return ids;
}

bool distinguishable(const std::string& a, const std::string& b) {
  const lab x = to_lab(a), y = to_lab(b);
  const double chroma_x = std::hypot(x.a, x.b), chroma_y = std::hypot(y.a, y.b);
  if (chroma_x > 20 && chroma_y > 20) {
    const double pi = std::acos(-1.0);
    double hue = std::fabs(std::atan2(x.b, x.a) - std::atan2(y.b, y.a)) * 180 / pi;
    if (hue > 180) hue = 360 - hue;
    return hue >= 20;
  }
  return std::sqrt((x.l - y.l) * (x.l - y.l) + (x.a - y.a) * (x.a - y.a) +
                   (x.b - y.b) * (x.b - y.b)) >= 25;
}

std::string markdown_report(const std::vector<result>& results, const run_info& info) {
  std::ostringstream out;
  if (info.quick) {
    out << "**" << kSmokeTestWarning << "** (`--quick`: one very short run per benchmark, "
        << "to check that every workload runs; use the default run to compare).\n\n";
  }
  out << "## Allocator comparison\n\n";
  run_lines(out, results, info);
  const std::vector<grid> grids = make_grids(results, &info.offered);

  out << "### One thread: ns per operation\n\n"
         "Time per operation of one thread (CPU time), the median";
  if (!info.quick) out << " with [min–max] over the measured repetitions";
  out << ".\n\n";
  for (const grid& g : grids) {
    if (g.time() == timing::one_thread) time_table(out, g, info.quick);
  }
  out << "### Several threads: aggregate throughput\n\n"
         "Wall-clock time divided by the operations of all threads together: the inverse of "
         "the aggregate throughput, not the latency of one operation (with 64 threads on 2 "
         "cores, one operation waits far longer). Column headers say so.\n\n";
  for (const grid& g : grids) {
    if (g.time() == timing::aggregate) time_table(out, g, info.quick);
  }
  if (!grids.empty()) {
    out << "### Memory\n\n";
    if (const grid* g = find_grid(grids, "resources")) resources_table(out, *g);
    if (const grid* g = find_grid(grids, "idle")) idle_table(out, *g);
    memory_tables(out, grids, info.quick);
  }
  if (!info.quick) ranking_section(out, grids);

  bool limits = false;
  for (const result& r : results) {
    if (!r.limit) continue;
    if (!limits)
      out << "### Limits\n\nWhat an allocator could not do (a finding, not a failure):\n\n";
    limits = true;
    out << "- `" << r.name << "` (" << label(r.allocator) << "): " << r.error.substr(7) << '\n';
  }
  if (limits) out << '\n';
  bool failures = false;
  for (const result& r : results) {
    if (!r.failed()) continue;
    if (!failures) out << "### Failures\n\n";
    failures = true;
    out << "- `" << r.name << "` (" << r.binary << "): " << r.error << '\n';
  }
  if (failures) out << '\n';
  return out.str();
}

std::string summary_markdown(const std::vector<result>& results, const run_info& info) {
  std::ostringstream out;
  const std::vector<grid> grids = make_grids(results, &info.offered);
  if (info.quick) out << "**" << kSmokeTestWarning << "** (`--quick`).\n\n";
  out << "Measured on **" << info.machine << "**";
  if (!info.commit.empty()) out << ", commit " << info.commit;
  out << ", with `" << info.command << "` (" << format("%.0f", info.seconds / 60)
      << " min): " << info.settings << ". Compare ratios within this run, not figures across "
      << "runs or machines.";
  for (const std::string& w : info.warnings) out << " **Warning:** " << w << '.';
  out << "\n\n";

  out << "**One thread**, ns per operation (median; lower is better), ratio to "
         "`syncpool::pool_resource` in brackets";
  if (!info.quick) out << ", **bold** = fastest row of all";
  out << ":\n\n";
  picked_table(out, grids,
               {{"pair", "64"},
                {"pair", "1024"},
                {"pair", "32768"},
                {"batch", "random"},
                {"containers", "map"},
                {"containers", "vector_string"},
                {"lifetime", "64"}},
               info.quick);
  out << "**Several threads**, aggregate throughput as wall-clock ns per operation of all "
         "threads together (not the latency of one operation), ratio to "
         "`syncpool::pool_resource`:\n\n";
  picked_table(out, grids,
               {{"threads", ""}, {"requests", ""}, {"server", ""}, {"churn", "16"}, {"prodcons", "64"}},
               info.quick);
  out << "**Object reuse** of a 4 KiB buffer object, aggregate ns per get + put (or "
         "make_unique + delete), ratio to `syncpool::pool<T>`:\n\n";
  picked_table(out, grids, {{"reuse", "1"}, {"reuse", ""}}, info.quick);
  out << "**Memory** (RSS growth in the benchmark's own process; what a resource holds from "
         "upstream where it is counted):\n\n";
  summary_memory_table(out, grids);

  if (!info.quick) {
    const ranking rk = rank_baselines(grids);
    out << "**Where syncpool is not the fastest row of all**: it is the fastest in " << rk.fastest
        << " of " << rk.columns << " columns of the full report.";
    if (!rk.losses.empty()) {
      const std::size_t shown = std::min<std::size_t>(rk.losses.size(), 10);
      out << " The " << shown << " largest gaps"
          << (shown < rk.losses.size() ? " (all in the full report)" : "") << ":\n\n";
      for (std::size_t i = 0; i < shown; ++i) out << "- " << describe(rk.losses[i]) << '\n';
    }
    out << "\n";
    const std::vector<goal> goals = judge_goals(grids);
    if (!goals.empty()) {
      out << "**The goals, judged on this run:**\n\n| goal | status |\n| --- | --- |\n";
      for (const goal& g : goals) out << "| " << g.text << " | " << g.status << " |\n";
      out << '\n';
    }
  }
  std::size_t failed = 0, limits = 0;
  for (const result& r : results) {
    failed += r.failed();
    limits += r.limit;
  }
  if (limits > 0) {
    out << "Allocator limits hit: ";
    bool first = true;
    for (const result& r : results) {
      if (!r.limit) continue;
      out << (first ? "" : "; ") << "`" << label(r.allocator) << "` in " << r.workload << ' '
          << r.param << ": " << r.error.substr(7);
      first = false;
    }
    out << ".\n\n";
  }
  if (failed > 0) out << "**" << failed << " benchmarks failed**; see the full report.\n\n";
  return out.str();
}

std::string splice_results(const std::string& readme, const std::string& summary,
                           std::string* error) {
  const std::size_t begin = readme.find(kResultsBegin);
  const std::size_t end = readme.find(kResultsEnd);
  if (begin == std::string::npos || end == std::string::npos || end < begin) {
    *error = std::string("no results block: it needs a line ") + kResultsBegin +
             " and, after it, a line " + kResultsEnd;
    return "";
  }
  const std::size_t body = readme.find('\n', begin);
  std::string out = readme.substr(0, body + 1);
  out += '\n';
  out += summary;
  if (!summary.empty() && summary.back() != '\n') out += '\n';
  out += readme.substr(end);
  return out;
}

std::string csv_report(const std::vector<result>& results) {
  std::ostringstream out;
  const auto field = [](const std::string& s) {
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string quoted = "\"";
    for (const char c : s) {
      if (c == '"') quoted += '"';
      quoted += c;
    }
    return quoted + '"';
  };
  out << "workload,allocator,allocator_label,param,threads,timing,binary,benchmark,ns_per_op,"
         "ns_per_op_min,ns_per_op_max,repetitions,baseline,ratio_vs_baseline,fastest,"
         "ratio_vs_fastest,iterations,real_time_ns,cpu_time_ns,peak_rss_kib,rss_after_kib,"
         "rss_after_collect_kib,held_bytes,held_after_collect_bytes,rss_per_resource_kib,"
         "upstream_per_resource_bytes,limit,error\n";
  const std::vector<grid> grids = make_grids(results, nullptr);
  for (const grid& g : grids) {
    const char* time = g.time() == timing::aggregate    ? "aggregate"
                       : g.time() == timing::one_thread ? "one_thread"
                                                        : "memory";
    for (const std::string& row : g.rows) {
      for (const std::string& column : g.columns) {
        const result* r = g.at(row, column);
        if (r == nullptr) continue;
        const result* best = g.fastest(column);
        out << field(r->workload) << ',' << field(r->allocator) << ',' << field(label(r->allocator))
            << ',' << field(r->param) << ',' << r->threads << ',' << time << ',' << field(r->binary)
            << ',' << field(r->name) << ',' << csv_number(r->ns_per_op) << ','
            << csv_number(r->ns_min) << ',' << csv_number(r->ns_max) << ',' << r->repetitions << ','
            << field(g.baseline_id()) << ',' << csv_number(r->ns_per_op / g.baseline(column)) << ','
            << field(best != nullptr ? best->allocator : "") << ','
            << csv_number(best != nullptr ? r->ns_per_op / best->ns_per_op : std::nan("")) << ','
            << csv_number(r->iterations) << ',' << csv_number(r->real_time_ns) << ','
            << csv_number(r->cpu_time_ns) << ',' << csv_number(r->peak_rss_kib) << ','
            << csv_number(r->rss_after_kib) << ',' << csv_number(r->rss_collected_kib) << ','
            << csv_number(r->held_bytes) << ',' << csv_number(r->held_collected_bytes) << ','
            << csv_number(r->rss_per_resource_kib) << ','
            << csv_number(r->upstream_per_resource_bytes) << ',' << (r->limit ? 1 : 0) << ','
            << field(r->error) << '\n';
      }
    }
  }
  return out.str();
}

bool write_charts(const std::string& out_dir, const std::string& scratch_dir,
                  const std::vector<result>& results, const run_info& info, std::string* error) {
  namespace fs = std::filesystem;
  const std::vector<grid> grids = make_grids(results, nullptr);
  const fs::path script_path = fs::path(scratch_dir) / "charts.gp";
  std::ofstream script(script_path);
  const auto stem = [&scratch_dir](const std::string& name) {
    return (fs::path(scratch_dir) / name).string();
  };
  for (const grid& g : grids) {
    if (g.time() == timing::none) continue;
    std::vector<std::string> x_names;
    for (const std::string& c : g.columns) x_names.push_back(g.column_name(c));
    const std::string y_label =
        g.time() == timing::aggregate
            ? "aggregate ns per op, all threads (log scale, lower is better)"
            : "ns per op (log scale, lower is better)";
    const std::string title = g.info != nullptr ? std::string(g.info->title) : g.workload;
    chart(script, stem(g.workload), (fs::path(out_dir) / (g.workload + ".png")).string(),
          g.info != nullptr ? std::string(g.info->x_label) : "", x_names, g.rows,
          {{chart_title(title, info), y_label,
            [&g](std::size_t x, const std::string& row) -> std::optional<double> {
              const result* r = g.ran(row, g.columns[x]);
              if (r == nullptr) return std::nullopt;
              return r->ns_per_op;
            },
            /*log_y=*/true}},
          /*lines=*/g.info != nullptr && g.info->thread_axis);
  }
  // Memory: peak RSS growth per workload and what is left after two
  // collects, the largest over each workload's columns. Object reuse has
  // rows of its own, and resources, hundreds of MiB for 10,000 live
  // pool_resources, has its own chart per resource.
  std::vector<const grid*> memory_grids;
  std::vector<std::string> workloads;
  for (const grid& g : grids) {
    if (reuse_kind(g.workload) || g.workload == "resources") continue;
    memory_grids.push_back(&g);
    workloads.push_back(g.workload);
  }
  if (!memory_grids.empty()) {
    const auto per_workload = [&memory_grids](std::optional<double> result::*field) -> value_fn {
      return
          [&memory_grids, field](std::size_t x, const std::string& row) -> std::optional<double> {
            const std::optional<double> kib = max_over(*memory_grids[x], row, field);
            if (!kib) return std::nullopt;
            return *kib / 1024;
          };
    };
    chart(script, stem("memory"), (fs::path(out_dir) / "memory.png").string(), "workload",
          workloads, all_rows(memory_grids),
          {{chart_title("memory: peak RSS growth (largest over the workload's columns)", info),
            "MiB (lower is better)", per_workload(&result::peak_rss_kib), false},
           {chart_title("memory: RSS growth after the work, two syncpool::collect() later", info),
            "MiB (lower is better)", per_workload(&result::rss_collected_kib), false}},
          /*lines=*/false);
  }
  if (const grid* g = find_grid(grids, "resources")) {
    std::vector<std::string> x_names;
    for (const std::string& c : g->columns) x_names.push_back(g->column_name(c));
    chart(script, stem("resources_memory"), (fs::path(out_dir) / "resources_memory.png").string(),
          "live resources", x_names, g->rows,
          {{chart_title("resources: RSS per live resource, each holding one 64-byte block", info),
            "KiB per resource (log scale, lower is better)",
            [g](std::size_t x, const std::string& row) -> std::optional<double> {
              const result* r = g->ran(row, g->columns[x]);
              if (r == nullptr) return std::nullopt;
              return r->rss_per_resource_kib;
            },
            /*log_y=*/true}},
          /*lines=*/false);
  }
  script.close();
  if (!script) {
    *error = "cannot write " + script_path.string();
    return false;
  }
  const std::string log = stem("gnuplot.log");
  const process_result run =
      run_process({"gnuplot", script_path.string()}, stem("gnuplot.out"), log, 120);
  if (!run.ok()) {
    *error = "gnuplot " + run.describe() +
             (run.started ? ": " + read_file(log, 2000)
                          : " (install gnuplot, e.g. apt-get install gnuplot-nox)");
    return false;
  }
  return true;
}

}  // namespace syncpool_bench
