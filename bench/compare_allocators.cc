// compare_allocators: every allocator on the same workloads, side by side.
//
//   ./bazelw run -c opt //bench:compare_allocators -- [--quick] [--out DIR]
//       [--filter REGEX] [--threads N] [--repetitions N] [--min-time S] [--list]
//
// Runs the allocator_benchmarks_<malloc> binaries (one per malloc, found
// next to this one or in its runfiles), one process per benchmark so that
// each has its own peak RSS, reads their Google Benchmark JSON and prints
// one Markdown report on stdout (progress goes to stderr). With --out DIR it
// also writes DIR/compare_allocators.{csv,md} and a PNG chart per workload.
// Exit status: 0 if every benchmark ran, 1 if some failed, 2 on bad usage.

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench/json.h"
#include "bench/report.h"
#include "bench/results.h"
#include "bench/subprocess.h"

namespace syncpool_bench {
namespace {

namespace fs = std::filesystem;

// The benchmark binaries, in the order their rows appear.
constexpr const char* kMallocs[] = {"glibc", "mimalloc", "jemalloc", "tcmalloc"};

constexpr const char* kUsage =
    "Usage: compare_allocators [options]\n"
    "Measures every allocator on the same workloads and prints Markdown tables.\n"
    "\n"
    "  --quick            short runs (--min-time 0.01): a smoke test, well under a minute\n"
    "  --out DIR          also write DIR/compare_allocators.csv, .md and a PNG chart per\n"
    "                     workload (needs gnuplot)\n"
    "  --filter REGEX     only the benchmarks whose name matches (see --list), e.g.\n"
    "                     'pair|batch', 'tcmalloc', 'threads/pool_resource'\n"
    "  --threads N        thread counts 1, 2, 4, ..., N for the threaded workloads\n"
    "                     (default: 1, 2, 4, ... up to the cores, then twice the cores)\n"
    "  --repetitions N    run each benchmark N times and report the median\n"
    "  --min-time S       seconds per benchmark (Google Benchmark's --benchmark_min_time;\n"
    "                     default 0.5, or 0.01 with --quick)\n"
    "  --list             print the benchmark names and exit\n"
    "  --help             this text\n";

struct options {
  bool quick = false;
  bool list = false;
  std::string out_dir;
  std::string filter;
  int threads = 0;
  int repetitions = 1;
  double min_time = 0;  // 0: Google Benchmark's default
};

// Parses argv into `*opts`; "" on success, else the complaint.
std::string parse_args(int argc, char** argv, options* opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const auto take = [&]() -> std::optional<std::string> {
      if (has_value) return value;
      if (i + 1 < argc) return std::string(argv[++i]);
      return std::nullopt;
    };
    const auto positive = [](const std::string& s, int* out) {
      char* end = nullptr;
      const long n = std::strtol(s.c_str(), &end, 10);
      if (end == s.c_str() || *end != '\0' || n <= 0 || n > 4096) return false;
      *out = static_cast<int>(n);
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (arg == "--quick" && !has_value) {
      opts->quick = true;
    } else if (arg == "--list" && !has_value) {
      opts->list = true;
    } else if (arg == "--out" || arg == "--filter" || arg == "--threads" ||
               arg == "--repetitions" || arg == "--min-time") {
      const std::optional<std::string> v = take();
      if (!v || v->empty()) return arg + " needs a value";
      if (arg == "--out") {
        opts->out_dir = *v;
      } else if (arg == "--filter") {
        opts->filter = *v;
      } else if (arg == "--threads") {
        if (!positive(*v, &opts->threads)) return "--threads needs a positive number";
      } else if (arg == "--repetitions") {
        if (!positive(*v, &opts->repetitions)) return "--repetitions needs a positive number";
      } else {
        char* end = nullptr;
        opts->min_time = std::strtod(v->c_str(), &end);
        if (end == v->c_str() || *end != '\0' || !(opts->min_time > 0)) {
          return "--min-time needs a positive number of seconds";
        }
      }
    } else {
      return "unknown argument " + std::string(argv[i]);
    }
  }
  if (opts->quick && opts->min_time == 0) opts->min_time = 0.01;
  return "";
}

// `bazel run` starts us in the runfiles tree; paths the user gives are
// relative to where they ran it.
std::string user_path(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (cwd == nullptr || path.empty() || path[0] == '/') return path;
  return (fs::path(cwd) / path).string();
}

// A sibling benchmark binary: in our runfiles (bazel run, or bazel-bin/...
// with its .runfiles), else next to this executable.
std::string locate_binary(const std::string& name) {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates;
  if (const char* runfiles = std::getenv("RUNFILES_DIR")) {
    candidates.push_back(fs::path(runfiles) / "syncpool" / "bench" / name);
  }
  if (!ec) {
    candidates.push_back(fs::path(self.string() + ".runfiles") / "syncpool" / "bench" / name);
    candidates.push_back(self.parent_path() / name);
  }
  candidates.push_back(fs::current_path(ec) / "bench" / name);  // cwd = runfiles/syncpool
  for (const fs::path& p : candidates) {
    if (access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

// One benchmark to run: its binary and where it sits in the report.
struct job {
  std::string malloc;  // which binary
  std::string path;
  std::string name;
  std::string workload, allocator, param;
  int threads = 1;
  int malloc_rank = 0;
  std::size_t param_rank = 0;
  std::size_t listed = 0;
};

// "threads/glibc/real_time/threads:2" -> threads, glibc, "2", 2 threads.
bool parse_name(const std::string& name, job* j) {
  std::vector<std::string> parts;
  std::stringstream in(name);
  for (std::string part; std::getline(in, part, '/');) parts.push_back(part);
  if (parts.size() < 2) return false;
  j->name = name;
  j->workload = parts[0];
  j->allocator = parts[1];
  j->param.clear();
  for (std::size_t i = 2; i < parts.size(); ++i) {
    if (parts[i].rfind("threads:", 0) == 0) {
      j->threads = std::atoi(parts[i].c_str() + 8);
    } else if (parts[i] != "real_time") {
      j->param += (j->param.empty() ? "" : "/") + parts[i];
    }
  }
  if (j->param.empty()) j->param = std::to_string(j->threads);
  return true;
}

std::vector<std::string> common_flags(const options& opts) {
  std::vector<std::string> flags;
  if (opts.threads > 0) flags.push_back("--threads=" + std::to_string(opts.threads));
  return flags;
}

double unit_to_ns(const std::string& unit) {
  if (unit == "us") return 1e3;
  if (unit == "ms") return 1e6;
  if (unit == "s") return 1e9;
  return 1;
}

// What one benchmark binary said about itself.
struct binary_context {
  std::string build;
  std::string malloc_linked;
};

result read_result(const job& j, const std::string& text, binary_context* context) {
  result r;
  r.binary = j.malloc;
  r.name = j.name;
  r.workload = j.workload;
  r.allocator = j.allocator;
  r.param = j.param;
  r.threads = j.threads;
  std::string error;
  const std::optional<json::value> doc = json::parse(text, &error);
  if (!doc) {
    r.error = "unreadable JSON output: " + error;
    return r;
  }
  if (const json::value* ctx = doc->find("context")) {
    context->build = ctx->string_at("syncpool_bench_build");
    context->malloc_linked = ctx->string_at("syncpool_bench_malloc_linked");
  }
  // Every repetition (Google Benchmark's own aggregates are ignored): the
  // one with the median time stands for all, counters included.
  std::vector<std::pair<double, const json::value*>> repeats;
  const json::value* runs = doc->find("benchmarks");
  if (runs != nullptr && runs->as_array() != nullptr) {
    for (const json::value& run : *runs->as_array()) {
      if (run.string_at("run_type") == "aggregate") continue;
      if (const json::value* failed = run.find("error_occurred");
          failed != nullptr && failed->boolean() != nullptr && *failed->boolean()) {
        r.error = "benchmark error: " + run.string_at("error_message");
        return r;
      }
      const std::optional<double> items = run.number_at("items_per_second");
      if (!items || !(*items > 0)) {
        r.error = "no items_per_second in the JSON output";
        return r;
      }
      repeats.emplace_back(1e9 / *items, &run);
    }
  }
  if (repeats.empty()) {
    r.error = "no result in the JSON output";
    return r;
  }
  std::sort(repeats.begin(), repeats.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const json::value* chosen = repeats[(repeats.size() - 1) / 2].second;
  r.ns_per_op = repeats[(repeats.size() - 1) / 2].first;
  r.repetitions = static_cast<int>(repeats.size());
  if (repeats.size() > 1) {
    double sum = 0, squares = 0;
    for (const auto& [ns, run] : repeats) sum += ns;
    const double mean = sum / static_cast<double>(repeats.size());
    for (const auto& [ns, run] : repeats) squares += (ns - mean) * (ns - mean);
    r.ns_per_op_stddev = std::sqrt(squares / static_cast<double>(repeats.size() - 1));
  }
  const double scale = unit_to_ns(chosen->string_at("time_unit"));
  r.real_time_ns = chosen->number_at("real_time").value_or(0) * scale;
  r.cpu_time_ns = chosen->number_at("cpu_time").value_or(0) * scale;
  r.iterations = chosen->number_at("iterations").value_or(0);
  r.peak_rss_kib = chosen->number_at("peak_rss_kib");
  r.rss_after_kib = chosen->number_at("rss_after_kib");
  r.rss_collected_kib = chosen->number_at("rss_collected_kib");
  r.held_bytes = chosen->number_at("held_bytes");
  r.held_collected_bytes = chosen->number_at("held_collected_bytes");
  return r;
}

std::string first_line_of(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return line.substr(key.size());
  }
  return "";
}

std::string trim(std::string s) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string describe_machine() {
  std::ostringstream out;
  std::string cpu = trim(first_line_of("/proc/cpuinfo", "model name"));
  if (!cpu.empty() && cpu[0] == ':') cpu = trim(cpu.substr(1));
  out << (cpu.empty() ? "unknown CPU" : cpu) << ", " << std::thread::hardware_concurrency()
      << " cores";
  const std::string os = trim(first_line_of("/etc/os-release", "PRETTY_NAME="));
  if (!os.empty()) out << ", " << os;
  utsname uts{};
  if (uname(&uts) == 0) out << ", Linux " << uts.release;
  double load[1] = {0};
  if (getloadavg(load, 1) == 1) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", load[0]);
    out << ", load average " << buf << " at start";
  }
  return out.str();
}

class progress {
 public:
  explicit progress(std::size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void show(std::size_t done, const job& j) {
    const double s = seconds();
    char head[64];
    std::snprintf(head, sizeof head, "[%3zu/%zu %4.0fs] ", done + 1, total_, s);
    std::string line = head + j.name + " (" + j.malloc + ")";
    if (tty_) {
      std::cerr << "\r\033[K" << line << std::flush;
    } else {
      std::cerr << line << '\n';
    }
  }
  void done() {
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << "compare_allocators: " << total_ << " benchmarks in "
              << static_cast<long>(seconds() + 0.5) << " s\n";
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  const std::size_t total_;
  const bool tty_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

int run(const options& opts) {
  // The benchmark binaries and what each offers.
  char tmp_template[] = "/tmp/compare_allocators.XXXXXX";
  const char* tmp_dir = mkdtemp(tmp_template);
  if (tmp_dir == nullptr) {
    std::cerr << "compare_allocators: cannot create a temporary directory\n";
    return 1;
  }
  const fs::path tmp(tmp_dir);
  struct remove_at_exit {
    fs::path dir;
    ~remove_at_exit() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp};
  std::vector<std::string> warnings;
  std::vector<job> jobs;
  std::regex filter;
  try {
    filter = std::regex(opts.filter.empty() ? "." : opts.filter, std::regex::extended);
  } catch (const std::regex_error& e) {
    std::cerr << "compare_allocators: bad --filter: " << e.what() << '\n';
    return 2;
  }
  std::map<std::pair<std::string, std::string>, std::size_t> param_order;
  std::set<std::pair<std::string, std::string>> offered;
  for (int m = 0; m < static_cast<int>(std::size(kMallocs)); ++m) {
    const std::string binary = std::string("allocator_benchmarks_") + kMallocs[m];
    const std::string path = locate_binary(binary);
    if (path.empty()) {
      std::cerr << "compare_allocators: cannot find " << binary
                << " (run me with bazel run //bench:compare_allocators)\n";
      return 1;
    }
    std::vector<std::string> argv = {path, "--benchmark_list_tests=true"};
    for (const std::string& f : common_flags(opts)) argv.push_back(f);
    const std::string list_path = (tmp / "list.txt").string();
    const std::string err_path = (tmp / "list.err").string();
    const process_result listed = run_process(argv, list_path, err_path, 60);
    if (!listed.ok()) {
      std::cerr << "compare_allocators: " << binary << " --benchmark_list_tests: "
                << listed.describe() << '\n' << read_file(err_path, 4000);
      return 1;
    }
    std::istringstream names(read_file(list_path));
    std::size_t index = 0;
    for (std::string name; std::getline(names, name);) {
      job j;
      if (name.empty() || !parse_name(name, &j)) continue;
      offered.insert({j.workload, j.allocator});
      j.param_rank = param_order.try_emplace({j.workload, j.param}, param_order.size()).first->second;
      if (!std::regex_search(name, filter)) continue;
      j.malloc = kMallocs[m];
      j.path = path;
      j.malloc_rank = m;
      j.listed = index++;
      jobs.push_back(std::move(j));
    }
  }
  if (jobs.empty()) {
    std::cerr << "compare_allocators: no benchmark matches --filter " << opts.filter << '\n';
    return 2;
  }
  // Comparable measurements close together in time: by workload, then by
  // column, then by binary.
  std::stable_sort(jobs.begin(), jobs.end(), [](const job& a, const job& b) {
    const auto key = [](const job& j) {
      return std::make_tuple(workload_rank(j.workload), j.param_rank, j.malloc_rank, j.listed);
    };
    return key(a) < key(b);
  });
  if (opts.list) {
    for (const job& j : jobs) std::cout << j.name << '\n';
    return 0;
  }

  const std::string machine = describe_machine();
  progress bar(jobs.size());
  std::vector<result> results;
  std::map<std::string, binary_context> contexts;
  const double timeout = (opts.quick ? 60.0 : 120.0) * opts.repetitions +
                         20.0 * opts.repetitions * std::max(0.0, opts.min_time - 0.5);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const job& j = jobs[i];
    bar.show(i, j);
    std::vector<std::string> argv = {j.path, "--benchmark_filter=^" + j.name + "$",
                                     "--benchmark_format=json"};
    if (opts.min_time > 0) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", opts.min_time);
      argv.push_back(std::string("--benchmark_min_time=") + buf);
    }
    if (opts.repetitions > 1) {
      argv.push_back("--benchmark_repetitions=" + std::to_string(opts.repetitions));
    }
    for (const std::string& f : common_flags(opts)) argv.push_back(f);
    const std::string out_path = (tmp / "run.json").string();
    const std::string err_path = (tmp / "run.err").string();
    const process_result ran = run_process(argv, out_path, err_path, timeout);
    binary_context context;
    result r = read_result(j, read_file(out_path), &context);
    if (!ran.ok()) {
      std::string err = read_file(err_path, 600);
      while (!err.empty() && err.back() == '\n') err.pop_back();
      r.error = ran.describe() + (err.empty() ? "" : ": " + err);
    }
    if (!r.ok()) std::cerr << (isatty(STDERR_FILENO) ? "\n" : "") << j.name << ": " << r.error << '\n';
    if (r.ok()) contexts.try_emplace(j.malloc, context);
    results.push_back(std::move(r));
  }
  bar.done();

  run_info info;
  info.offered = std::move(offered);
  info.machine = machine;
  info.seconds = bar.seconds();
  std::set<int> thread_counts;
  for (const job& j : jobs) {
    if (j.workload == "threads" || j.workload == "server" || j.workload == "reuse") {
      thread_counts.insert(j.threads);
    }
  }
  std::ostringstream settings;
  std::string build = "opt";
  for (const auto& [malloc, context] : contexts) {
    if (context.build != "opt") build = context.build + " (" + malloc + ")";
    if (context.malloc_linked == "no") {
      warnings.push_back("allocator_benchmarks_" + malloc + " does not run on " + malloc +
                         ": its rows measure the default malloc");
    }
  }
  if (build != "opt") warnings.push_back("benchmarks built without optimization: use -c opt");
  char min_time[32];
  std::snprintf(min_time, sizeof min_time, "%g", opts.min_time > 0 ? opts.min_time : 0.5);
  settings << "build " << build << " (compiler " << __VERSION__ << "); " << min_time
           << " s min time per benchmark" << (opts.quick ? " (--quick)" : "") << "; "
           << opts.repetitions << (opts.repetitions > 1 ? " repetitions, median" : " repetition")
           << "; ";
  if (!thread_counts.empty()) {
    settings << "threads";
    for (const int n : thread_counts) settings << ' ' << n;
    settings << "; ";
  }
  settings << "one process per benchmark";
  if (!opts.filter.empty()) settings << "; --filter " << opts.filter;
  info.settings = settings.str();
  double load[1] = {0};
  if (getloadavg(load, 1) == 1 && load[0] > 0.5 * std::thread::hardware_concurrency() + 0.5) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", load[0]);
    warnings.push_back(std::string("load average ") + buf +
                       " at the end: other processes competed for the CPUs, timings are noisy");
  }
  info.warnings = warnings;

  const std::string report = markdown_report(results, info);
  std::cout << report << std::flush;

  int status = 0;
  for (const result& r : results) {
    if (!r.ok()) status = 1;
  }
  if (!opts.out_dir.empty()) {
    const fs::path dir = user_path(opts.out_dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    std::string error;
    std::ofstream((dir / "compare_allocators.md").string()) << report;
    if (ec || !write_csv((dir / "compare_allocators.csv").string(), results, &error) ||
        !write_charts(dir.string(), results, &error)) {
      std::cerr << "compare_allocators: " << (ec ? "cannot create " + dir.string() : error)
                << '\n';
      status = 1;
    } else {
      std::cerr << "compare_allocators: wrote " << dir.string()
                << "/compare_allocators.{csv,md} and charts\n";
    }
  }
  return status;
}

}  // namespace
}  // namespace syncpool_bench

int main(int argc, char** argv) {
  syncpool_bench::options opts;
  const std::string error = syncpool_bench::parse_args(argc, argv, &opts);
  if (!error.empty()) {
    std::cerr << "compare_allocators: " << error << "\n\n" << syncpool_bench::kUsage;
    return 2;
  }
  return syncpool_bench::run(opts);
}
