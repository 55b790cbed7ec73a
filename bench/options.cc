#include "bench/options.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

namespace syncpool_bench {

const char* const kUsage =
    "Usage: compare_allocators [options]\n"
    "Measures every allocator on the same workloads and prints a Markdown report.\n"
    "\n"
    "  --quick            a smoke test: one short run per benchmark (--min-time 0.01, no\n"
    "                     repetitions, no warm-up), about a minute; its timings mean nothing\n"
    "  --out DIR          also write DIR/compare_allocators.{md,csv}, DIR/summary.md (the\n"
    "                     README's results section) and a PNG chart per workload (needs\n"
    "                     gnuplot); checked before anything runs\n"
    "  --readme FILE      also put DIR/summary.md into FILE, between its two\n"
    "                     '<!-- compare_allocators results' markers (needs --out, not\n"
    "                     --quick); checked before anything runs\n"
    "  --filter REGEX     only the benchmarks whose name matches (see --list), e.g.\n"
    "                     'pair|batch', 'tcmalloc', 'threads/pool_resource'\n"
    "  --threads N        thread counts 1, 2, 4, ..., N (N at most 1024) for threads, server\n"
    "                     and reuse (default: 1, 2, 4, ... up to the cores, then 8, 16 and 64)\n"
    "  --repetitions N    run each benchmark N times, each in a process of its own and in\n"
    "                     N rounds over all benchmarks, and report the median, min and max\n"
    "                     (default 3; 1 with --quick)\n"
    "  --min-time S       seconds per repetition (Google Benchmark's --benchmark_min_time;\n"
    "                     default 0.15, or 0.01 with --quick)\n"
    "  --no-warmup        no warm-up run, not reported, in each process (default: 0.05 s,\n"
    "                     or the min time when shorter; none with --quick)\n"
    "  --list             print the benchmark names and exit\n"
    "  --help             this text\n";

namespace {

// A whole number in [1, max], else nullopt.
std::optional<int> whole_number(const std::string& s, int max) {
  if (s.empty() || s.size() > 9) return std::nullopt;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  const long n = std::strtol(s.c_str(), nullptr, 10);
  if (n < 1 || n > max) return std::nullopt;
  return static_cast<int>(n);
}

}  // namespace

std::string parse_args(const std::vector<std::string>& args, options* opts) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (const auto eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    const bool flag = arg == "--help" || arg == "-h" || arg == "--quick" || arg == "--list" ||
                      arg == "--no-warmup";
    if (flag) {
      if (inline_value) return arg + " takes no value";
      if (arg == "--help" || arg == "-h") opts->help = true;
      if (arg == "--quick") opts->quick = true;
      if (arg == "--list") opts->list = true;
      if (arg == "--no-warmup") opts->warmup = false;
      continue;
    }
    if (arg != "--out" && arg != "--readme" && arg != "--filter" && arg != "--threads" &&
        arg != "--repetitions" && arg != "--min-time") {
      return "unknown argument " + args[i];
    }
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return arg + " needs a value";
    }
    if (value.empty()) return arg + " needs a value";
    if (arg == "--out") {
      opts->out_dir = value;
    } else if (arg == "--readme") {
      opts->readme = value;
    } else if (arg == "--filter") {
      opts->filter = value;
    } else if (arg == "--threads") {
      const std::optional<int> n = whole_number(value, kMaxThreads);
      if (!n) {
        return "--threads " + value + ": must be a whole number from 1 to " +
               std::to_string(kMaxThreads) + " (the most threads a benchmark may run)";
      }
      opts->threads = *n;
    } else if (arg == "--repetitions") {
      const std::optional<int> n = whole_number(value, 1000);
      if (!n) return "--repetitions " + value + ": must be a whole number from 1 to 1000";
      opts->repetitions = *n;
    } else {
      char* end = nullptr;
      const double s = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0' || !(s > 0) || s > 3600) {
        return "--min-time " + value + ": must be a number of seconds above 0, at most 3600";
      }
      opts->min_time = s;
    }
  }
  if (!opts->readme.empty() && opts->out_dir.empty()) return "--readme needs --out";
  if (!opts->readme.empty() && opts->quick) {
    return "--readme takes a default run's results, not a --quick smoke test's";
  }
  return "";
}

std::string prepare_out_dir(const std::string& dir) {
  // mkdir -p, one level at a time, so that the error names the level that failed.
  std::string path;
  std::size_t pos = 0;
  while (pos <= dir.size()) {
    std::size_t slash = dir.find('/', pos);
    if (slash == std::string::npos) slash = dir.size();
    path = dir.substr(0, slash);
    pos = slash + 1;
    if (path.empty() || path == "." || path == "..") continue;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return path + ": " + std::strerror(ENOTDIR) + " (a file of that name exists)";
      }
      continue;
    }
    if (errno != ENOENT) return path + ": " + std::strerror(errno);
    if (mkdir(path.c_str(), 0777) != 0 && errno != EEXIST) {
      return path + ": cannot create directory: " + std::strerror(errno);
    }
  }
  // Permissions are not the whole story (a read-only mount, /proc): try it.
  const std::string probe = dir + "/.compare_allocators_probe." + std::to_string(getpid());
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return dir + ": cannot create files in it: " + std::strerror(errno);
  close(fd);
  unlink(probe.c_str());
  return "";
}

}  // namespace syncpool_bench
