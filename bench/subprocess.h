// bench/subprocess.h
//
// Runs a program with its output sent to files, with a time limit: how
// compare_allocators runs the benchmark binaries and gnuplot.

#ifndef SYNCPOOL_BENCH_SUBPROCESS_H_
#define SYNCPOOL_BENCH_SUBPROCESS_H_

#include <string>
#include <vector>

namespace syncpool_bench {

struct process_result {
  bool started = false;    // false: could not run it (see `error`)
  bool timed_out = false;  // killed after the time limit
  int exit_code = -1;      // when it exited by itself
  int signal = 0;          // when a signal ended it
  std::string error;
  bool ok() const { return started && !timed_out && signal == 0 && exit_code == 0; }
  // "exit code 3", "killed by signal 11", "timed out after 60 s", ...
  std::string describe() const;
};

// Runs argv[0] (looked up in PATH if it has no '/') with stdin from
// /dev/null, stdout to `stdout_path` and stderr to `stderr_path` (both
// truncated), and waits at most `timeout_s` seconds for it.
process_result run_process(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path, double timeout_s);

// The file's content ("" if unreadable), at most its last `max_bytes`.
std::string read_file(const std::string& path, std::size_t max_bytes = 64 << 20);

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_SUBPROCESS_H_
