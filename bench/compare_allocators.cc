// compare_allocators: every allocator on the same workloads, side by side.
//
//   ./bazelw run -c opt //bench:compare_allocators -- [--quick] [--out DIR]
//       [--filter REGEX] [--threads N] [--repetitions N] [--min-time S] [--list]
//
// Runs the allocator_benchmarks_<malloc> binaries (one per malloc, found
// next to this one or in its runfiles), one process per benchmark and
// repetition so that each has its own memory, reads the runs they report (records.h) and
// prints one Markdown report on stdout (progress goes to stderr). With --out
// DIR it also writes DIR/compare_allocators.{md,csv}, DIR/summary.md (the
// README's results section) and PNG charts. Exit status: 0 if every
// benchmark ran (an allocator's limit, reported as such, is not a failure),
// 1 if some failed, 2 on bad usage or an --out that cannot be written.

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bench/measurements.h"
#include "bench/options.h"
#include "bench/records.h"
#include "bench/report.h"
#include "bench/results.h"
#include "bench/subprocess.h"

namespace syncpool_bench {
namespace {

namespace fs = std::filesystem;

// The benchmark binaries, in the order their rows appear.
constexpr const char* kMallocs[] = {"glibc", "mimalloc", "jemalloc", "tcmalloc"};
// Google Benchmark's warm-up in each process (--benchmark_min_warmup_time).
constexpr double kWarmupSeconds = 0.05;

// The lowest CPU this process may run on, or -1 when it may run on one only
// (nothing to choose) or the set is unknown.
int first_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) < 2) return -1;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) return c;
  }
  return -1;
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
  benchmark_id id;
  std::string malloc;  // which binary
  std::string path;
  int malloc_rank = 0;
  std::size_t param_rank = 0;
  std::size_t listed = 0;
};

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

// CPU time, in seconds, that every process of the machine spent running
// (user, nice and system time of /proc/stat's "cpu" line) since boot; -1 if
// unknown.
double busy_cpu_seconds() {
  std::ifstream in("/proc/stat");
  std::string label;
  double user = 0, nice = 0, system = 0;
  if (!(in >> label >> user >> nice >> system) || label != "cpu") return -1;
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return (user + nice + system) / ticks;
}

// CPU time, in seconds, of this process and of the children it waited for
// (every benchmark process).
double own_cpu_seconds() {
  double total = 0;
  for (const int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
    rusage u{};
    if (getrusage(who, &u) != 0) continue;
    total += static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
             static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  }
  return total;
}

// The commit of the sources measured, when run from a git checkout with
// `bazel run` ("" otherwise).
std::string describe_commit(const fs::path& scratch) {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  if (workspace == nullptr) return "";
  const std::string out = (scratch / "git.out").string();
  const std::string err = (scratch / "git.err").string();
  if (!run_process({"git", "-C", workspace, "rev-parse", "--short", "HEAD"}, out, err, 10).ok()) {
    return "";
  }
  std::string commit = trim(read_file(out));
  if (run_process({"git", "-C", workspace, "status", "--porcelain", "--untracked-files=no"}, out,
                  err, 10)
          .ok() &&
      !trim(read_file(out)).empty()) {
    commit += " (with uncommitted changes)";
  }
  return commit;
}

std::string describe_command(const std::vector<std::string>& args) {
  std::string command = std::getenv("BUILD_WORKSPACE_DIRECTORY") != nullptr
                            ? "./bazelw run -c opt //bench:compare_allocators"
                            : "compare_allocators";
  if (!args.empty()) command += std::getenv("BUILD_WORKSPACE_DIRECTORY") != nullptr ? " --" : "";
  for (const std::string& a : args) command += " " + a;
  return command;
}

class progress {
 public:
  explicit progress(std::size_t total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
  void show(std::size_t done, const job& j) {
    char head[64];
    std::snprintf(head, sizeof head, "[%3zu/%zu %4.0fs] ", done + 1, total_, seconds());
    const std::string line = head + j.id.name + " (" + j.malloc + ")";
    if (tty_) {
      std::cerr << "\r\033[K" << line << std::flush;
    } else {
      std::cerr << line << '\n';
    }
  }
  void note(const std::string& line) { std::cerr << (tty_ ? "\n" : "") << line << '\n'; }
  void done() {
    if (tty_) std::cerr << "\r\033[K";
    std::cerr << "compare_allocators: " << total_ << " runs (timed, then memory) in "
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

// Every benchmark the binaries offer that --filter selects, in the order
// they run: comparable measurements close together in time (by workload,
// then column, then binary). Fills `*offered` with every (workload,
// allocator) pair offered. "" on success, else why not.
std::string list_jobs(const options& opts, const fs::path& scratch, std::vector<job>* jobs,
                      std::set<std::pair<std::string, std::string>>* offered) {
  std::regex filter;
  try {
    filter = std::regex(opts.filter.empty() ? "." : opts.filter, std::regex::extended);
  } catch (const std::regex_error& e) {
    return std::string("bad --filter: ") + e.what();
  }
  std::map<std::pair<std::string, std::string>, std::size_t> param_order;
  for (int m = 0; m < static_cast<int>(std::size(kMallocs)); ++m) {
    const std::string binary = std::string("allocator_benchmarks_") + kMallocs[m];
    const std::string path = locate_binary(binary);
    if (path.empty()) {
      return "cannot find " + binary + " (run me with ./bazelw run //bench:compare_allocators)";
    }
    std::vector<std::string> argv = {path, "--benchmark_list_tests=true"};
    if (opts.threads > 0) argv.push_back("--threads=" + std::to_string(opts.threads));
    const std::string list_path = (scratch / "list.txt").string();
    const std::string err_path = (scratch / "list.err").string();
    const process_result listed = run_process(argv, list_path, err_path, 60);
    if (!listed.ok()) {
      return binary + " --benchmark_list_tests: " + listed.describe() + "\n" +
             read_file(err_path, 4000);
    }
    std::istringstream names(read_file(list_path));
    std::size_t index = 0;
    for (std::string name; std::getline(names, name);) {
      job j;
      if (name.empty() || !parse_benchmark_name(name, &j.id)) continue;
      offered->insert({j.id.workload, j.id.allocator});
      j.param_rank =
          param_order.try_emplace({j.id.workload, j.id.param}, param_order.size()).first->second;
      if (!std::regex_search(name, filter)) continue;
      j.malloc = kMallocs[m];
      j.path = path;
      j.malloc_rank = m;
      j.listed = index++;
      jobs->push_back(std::move(j));
    }
  }
  std::stable_sort(jobs->begin(), jobs->end(), [](const job& a, const job& b) {
    const auto key = [](const job& j) {
      return std::make_tuple(workload_rank(j.id.workload), j.param_rank, j.malloc_rank, j.listed);
    };
    return key(a) < key(b);
  });
  return "";
}

std::string settings_line(const options& opts, const std::vector<job>& jobs,
                          const std::map<std::string, record>& contexts,
                          std::vector<std::string>* warnings) {
  std::string build = "opt";
  for (const auto& [malloc, context] : contexts) {
    if (context.text("build") != "opt") build = context.text("build") + " (" + malloc + ")";
    if (context.text("malloc_linked") == "no") {
      warnings->push_back("allocator_benchmarks_" + malloc + " does not run on " + malloc +
                          ": its make_unique and new_delete_resource rows are left out");
    }
  }
  if (build != "opt") warnings->push_back("benchmarks built without optimization: use -c opt");
  std::set<int> thread_counts;
  for (const job& j : jobs) {
    if (j.id.workload == "threads" || j.id.workload == "server" || j.id.workload == "reuse" ||
        j.id.workload == "requests") {
      thread_counts.insert(j.id.threads);
    }
  }
  std::ostringstream settings;
  char min_time[32];
  std::snprintf(min_time, sizeof min_time, "%g", opts.effective_min_time());
  const int reps = opts.effective_repetitions();
  settings << "build " << build << " (compiler " << __VERSION__ << "); " << min_time
           << " s min time per repetition" << (opts.quick ? " (--quick)" : "") << "; " << reps
           << (reps > 1 ? " repetitions (median, min, max), one per process, in " + std::to_string(reps) +
                              " rounds over all benchmarks"
                        : std::string(" repetition"));
  if (opts.effective_warmup()) {
    char warm[32];
    std::snprintf(warm, sizeof warm, "%g", std::min(kWarmupSeconds, opts.effective_min_time()));
    settings << ", each after a " << warm << " s warm-up";
  } else {
    settings << ", no warm-up";
  }
  settings << "; ";
  if (!thread_counts.empty()) {
    settings << "threads";
    for (const int n : thread_counts) settings << ' ' << n;
    settings << "; ";
  }
  settings << "one process per benchmark and repetition";
  if (const int cpu = first_cpu(); cpu >= 0) settings << ", one-thread benchmarks on CPU " << cpu;
  if (!opts.filter.empty()) settings << "; --filter " << opts.filter;
  return settings.str();
}

std::string write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  if (out) out << text;
  out.close();
  if (!out) return "cannot write " + path.string() + ": " + std::strerror(errno);
  return "";
}

int run(const options& opts, const std::vector<std::string>& args, const std::string& out_dir,
        const std::string& readme) {
  char tmp_template[] = "/tmp/compare_allocators.XXXXXX";
  const char* tmp_dir = mkdtemp(tmp_template);
  if (tmp_dir == nullptr) {
    std::cerr << "compare_allocators: cannot create a temporary directory: " << std::strerror(errno)
              << '\n';
    return 1;
  }
  const fs::path scratch(tmp_dir);
  struct remove_at_exit {
    fs::path dir;
    ~remove_at_exit() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{scratch};

  std::vector<job> jobs;
  run_info info;
  if (const std::string error = list_jobs(opts, scratch, &jobs, &info.offered); !error.empty()) {
    std::cerr << "compare_allocators: " << error << '\n';
    return error.rfind("bad --filter", 0) == 0 ? 2 : 1;
  }
  if (jobs.empty()) {
    std::cerr << "compare_allocators: no benchmark matches --filter " << opts.filter << '\n';
    return 2;
  }
  if (opts.list) {
    for (const job& j : jobs) std::cout << j.id.name << '\n';
    return 0;
  }

  info.quick = opts.quick;
  info.machine = describe_machine();
  info.commit = describe_commit(scratch);
  info.command = describe_command(args);
  // Each repetition is a process of its own, and they run in rounds: every
  // benchmark once, then every benchmark again. This VM's speed drifts for
  // seconds at a time (the README's noise notes): with a row's repetitions
  // back to back in one process, one slow spell could make a row's median,
  // as it did for pair 64 B at 92a443d (7.6 ns, 4.3-4.5 right after). A
  // round lasts minutes, so a spell reaches one repetition of a row at
  // most, and every row alike. The warm-up (a first run, not reported:
  // code faulted in, thread stacks, the malloc's first arenas) is Google
  // Benchmark's, in each process.
  // Every one-thread benchmark runs on the same CPU: on this project's VM
  // the same process ran pair 64 B at 4.6-4.8 ns on one vCPU and 7.6-7.9
  // on the other, six times each in a row, for every allocator alike; left
  // to the scheduler, each row drew its CPU at random.
  const int one_thread_cpu = first_cpu();
  const int rounds = opts.effective_repetitions();
  const double warmup_s = opts.effective_warmup() ? std::min(kWarmupSeconds, opts.effective_min_time()) : 0;
  // (A timed process runs a warm-up and one repetition; a memory run keeps
  // the limit that four repetitions in one process had.)
  const double timeout = 120 + 60 * std::max(1.0, opts.effective_min_time() / 0.2);
  const double memory_timeout = 120 + 120 * std::max(1.0, opts.effective_min_time() / 0.2);
  char min_time[32];
  std::snprintf(min_time, sizeof min_time, "%g", opts.effective_min_time());
  char min_warmup_time[32];
  std::snprintf(min_warmup_time, sizeof min_warmup_time, "%g", warmup_s);

  // Two passes: every timed run, then every memory run, so that a memory
  // run knows the iteration counts of its whole column.
  const double busy_before = busy_cpu_seconds();
  const double own_before = own_cpu_seconds();
  progress bar(jobs.size() * static_cast<std::size_t>(rounds + 1));
  std::vector<result> results;
  std::map<std::string, record> contexts;
  // Runs job `j`'s binary with `flags`; its records, or why not.
  const auto run_benchmark = [&](const job& j, std::vector<std::string> flags, double limit_s,
                                 std::vector<record>* records) -> std::string {
    const fs::path records_path = scratch / "run.records";
    std::error_code ec;
    fs::remove(records_path, ec);
    flags.insert(flags.begin(), j.path);
    flags.push_back("--records=" + records_path.string());
    if (opts.threads > 0) flags.push_back("--threads=" + std::to_string(opts.threads));
    const std::string err_path = (scratch / "run.err").string();
    const process_result ran = run_process(flags, (scratch / "run.out").string(), err_path, limit_s);
    *records = read_records(read_file(records_path.string()));
    if (ran.ok()) return "";
    std::string err = read_file(err_path, 600);
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return ran.describe() + (err.empty() ? "" : ": " + err);
  };
  std::vector<std::vector<record>> timed_records(jobs.size());
  std::vector<std::string> timing_errors(jobs.size());
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      const job& j = jobs[i];
      bar.show(static_cast<std::size_t>(round) * jobs.size() + i, j);
      // A row that failed or hit its limit would give the same answer again.
      // (A row that fails in a later round is reported failed, whatever its
      // earlier rounds measured: a crash or a timeout is the news.)
      if (round > 0 &&
          (!timing_errors[i].empty() || !summarize_runs(j.id, j.malloc, timed_records[i], 0).error.empty())) {
        continue;
      }
      std::vector<std::string> flags = {"--benchmark_filter=^" + j.id.name + "$",
                                        std::string("--benchmark_min_time=") + min_time};
      if (one_thread_cpu >= 0 && runs_on_one_thread(j.id)) {
        flags.push_back("--cpu=" + std::to_string(one_thread_cpu));
      }
      if (warmup_s > 0) flags.push_back(std::string("--benchmark_min_warmup_time=") + min_warmup_time);
      std::vector<record> records;
      timing_errors[i] = run_benchmark(j, flags, timeout, &records);
      for (const record& rec : records) {
        if (rec.text("kind") == "context") contexts.try_emplace(j.malloc, rec);
      }
      timed_records[i].insert(timed_records[i].end(), records.begin(), records.end());
    }
  }
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    result r = summarize_runs(jobs[i].id, jobs[i].malloc, timed_records[i], /*warmup=*/0);
    if (!timing_errors[i].empty()) {
      r.error = timing_errors[i];
      r.limit = false;
    }
    results.push_back(std::move(r));
  }
  // Every row of a column runs the same work in its memory run: the median
  // of the iterations the column's rows ran in their median repetition, per
  // thread. (With each row's own count, a row 10x slower ran 10x less work,
  // and its caches had less time to grow: a slow allocator looked small.)
  const std::map<std::string, long> memory_iterations = memory_run_iterations(results);
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const job& j = jobs[i];
    result& r = results[i];
    bar.show(static_cast<std::size_t>(rounds) * jobs.size() + i, j);
    if (r.ok()) {
      std::vector<record> records;
      const long iterations = memory_iterations.at(column_key(r));
      // A row slower than its column's median does more than its timed
      // runs' work here: its limit grows with it.
      const double limit =
          memory_timeout + 3 * memory_run_seconds(r, iterations, opts.effective_min_time());
      const std::string memory_error =
          run_benchmark(j,
                        {"--benchmark_filter=" + memory_run_filter(j.id.name),
                         "--iterations=" + std::to_string(iterations)},
                        limit, &records);
      take_memory_counters(records, &r);
      if (!memory_error.empty()) r.error = "memory run: " + memory_error;
    }
    if (r.failed()) bar.note(j.id.name + ": " + r.error);
  }
  bar.done();

  info.seconds = bar.seconds();
  info.settings = settings_line(opts, jobs, contexts, &info.warnings);
  // What other processes took of the CPUs while the benchmarks ran: the
  // machine's busy time less this process's and its children's. (The load
  // average at the end, which this used to report, counts the threaded
  // benchmarks' own 64 threads, and warned after every run.)
  const double busy_after = busy_cpu_seconds();
  if (busy_before >= 0 && busy_after >= 0 && info.seconds > 0) {
    const double others = busy_after - busy_before - (own_cpu_seconds() - own_before);
    const double share =
        others / (info.seconds * std::max(1u, std::thread::hardware_concurrency()));
    if (share > 0.05) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.0f%%", 100 * share);
      info.warnings.push_back(std::string("other processes used ") + buf +
                              " of the CPUs during the run: timings are noisy");
    }
  }

  const std::string report = markdown_report(results, info);
  std::cout << report << std::flush;

  int status = 0;
  for (const result& r : results) {
    if (r.failed()) status = 1;
  }
  if (!out_dir.empty()) {
    const fs::path dir(out_dir);
    const fs::path charts = scratch / "charts";
    std::error_code ec;
    fs::create_directories(charts, ec);
    std::string error = write_text(dir / "compare_allocators.md", report);
    if (error.empty()) error = write_text(dir / "compare_allocators.csv", csv_report(results));
    if (error.empty()) error = write_text(dir / "summary.md", summary_markdown(results, info));
    if (error.empty()) write_charts(dir.string(), charts.string(), results, info, &error);
    if (error.empty() && !readme.empty()) {
      const std::string text =
          splice_results(read_file(readme), summary_markdown(results, info), &error);
      if (error.empty()) error = write_text(readme, text);
      if (error.empty())
        std::cerr << "compare_allocators: updated the results block of " << readme << '\n';
    }
    if (!error.empty()) {
      std::cerr << "compare_allocators: " << error << '\n';
      status = 1;
    } else {
      std::cerr << "compare_allocators: wrote " << dir.string()
                << "/{compare_allocators.md,compare_allocators.csv,summary.md} and charts\n";
    }
  }
  return status;
}

}  // namespace
}  // namespace syncpool_bench

int main(int argc, char** argv) {
  using namespace syncpool_bench;
  const std::vector<std::string> args(argv + 1, argv + argc);
  options opts;
  if (const std::string error = parse_args(args, &opts); !error.empty()) {
    std::cerr << "compare_allocators: " << error << "\n\n" << kUsage;
    return 2;
  }
  if (opts.help) {
    std::cout << kUsage;
    return 0;
  }
  // Before anything runs: a full run takes minutes.
  std::string out_dir, readme;
  if (!opts.out_dir.empty() && !opts.list) {
    out_dir = user_path(opts.out_dir);
    if (const std::string error = prepare_out_dir(out_dir); !error.empty()) {
      std::cerr << "compare_allocators: --out " << error << '\n';
      return 2;
    }
  }
  if (!opts.readme.empty() && !opts.list) {
    readme = user_path(opts.readme);
    std::string error;
    if (access(readme.c_str(), R_OK | W_OK) != 0) {
      error = std::strerror(errno);
    } else {
      splice_results(read_file(readme), "", &error);
    }
    if (!error.empty()) {
      std::cerr << "compare_allocators: --readme " << readme << ": " << error << '\n';
      return 2;
    }
  }
  return run(opts, args, out_dir, readme);
}
