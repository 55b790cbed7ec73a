// bench/options.h
//
// compare_allocators' command line, and the checks that must fail before
// anything runs: a bad option, an --out directory that cannot be written.

#ifndef SYNCPOOL_BENCH_OPTIONS_H_
#define SYNCPOOL_BENCH_OPTIONS_H_

#include <string>
#include <vector>

namespace syncpool_bench {

extern const char* const kUsage;

// The most threads a threaded benchmark may be given with --threads. Each
// thread of a run is a real thread working on one resource; past this, a
// run on any machine this tool targets is only thread creation and
// scheduling.
inline constexpr int kMaxThreads = 1024;

struct options {
  bool help = false;
  bool quick = false;
  bool list = false;
  std::string out_dir;
  std::string readme;  // a file whose results block gets this run's summary
  std::string filter;
  int threads = 0;      // 0: the default thread counts
  int repetitions = 0;  // 0: 3 (1 with --quick)
  double min_time = 0;  // 0: 0.15 s (0.01 s with --quick)
  bool warmup = true;   // a warm-up run in each process, not reported (not with --quick)

  int effective_repetitions() const { return repetitions > 0 ? repetitions : (quick ? 1 : 3); }
  double effective_min_time() const { return min_time > 0 ? min_time : (quick ? 0.01 : 0.15); }
  bool effective_warmup() const { return warmup && !quick; }
};

// Parses the arguments after argv[0] into `*opts`; "" on success, else
// what is wrong, for the user. --readme needs --out and a default run.
std::string parse_args(const std::vector<std::string>& args, options* opts);

// Makes sure `dir` is a directory this process can create files in,
// creating it (and its parents) if needed: "" if so, else why not, with
// the system's reason ("/proc/nope: cannot create directory: No such file
// or directory", "out.txt: Not a directory (a file of that name exists)").
std::string prepare_out_dir(const std::string& dir);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_OPTIONS_H_
