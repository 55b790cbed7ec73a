// bench/process_memory.h
//
// The memory footprint of the calling process as Linux reports it, for the
// memory columns of compare_allocators.
//
// Why not VmHWM for the peak: since Linux 6.2 a process's RSS lives in
// per-CPU counters, and the kernel moves the high-water mark only when pages
// are unmapped, from those counters' unsummed (approximate) total. On the
// project's 2-CPU machines (Linux 6.18) VmHWM missed a 1 MiB touch-and-unmap
// by 88 KiB, and right after a reset it could sit above the exact RSS: on the
// small workloads that error was larger than the workload. There, the
// resident count of /proc/self/statm matched smaps_rollup page for page (it
// is summed over CPUs on recent kernels; on older ones it is approximate as
// well), so the peak here is the largest of frequent samples of it.

#ifndef SYNCPOOL_BENCH_PROCESS_MEMORY_H_
#define SYNCPOOL_BENCH_PROCESS_MEMORY_H_

#include <chrono>

namespace syncpool_bench {

// Resident set size now (/proc/self/statm), in KiB; -1 if unknown.
long current_rss_kib();

// Faults in every page of every file the process maps (its code, its
// libraries' code and read-only data), so that those pages are resident
// before a baseline is taken. A page of code counts in RSS once first run,
// and the kernel faults code in 64 KiB at a time: a workload that first
// reached a new corner of Google Benchmark's loop (or of a resource's code)
// showed 64 KiB of growth that was no allocator's memory.
void prefault_file_mappings();

// Follows the RSS from a thread of its own, from start() on. Only for memory
// runs: its wake-ups every kPeriod would take CPU from a timed run. Not
// thread-safe: one caller (a run's thread 0) calls it. A rise and fall
// shorter than the period can be missed, so the peak is a lower bound, never
// above an RSS the process really had.
class rss_peak_sampler {
 public:
  static constexpr std::chrono::microseconds kPeriod{200};

  // The one sampler of the process.
  static rss_peak_sampler& instance();

  // Starts its thread if it has none yet, and waits until that thread has
  // run: its stack and set-up are then part of any later baseline.
  void prepare();

  // Begins a new peak (prepare() first, if needed); returns the RSS at this
  // moment (the baseline), KiB.
  long start();

  // The largest RSS seen since start(), a sample taken now included, in
  // KiB (-1 if the RSS cannot be read, or start() never ran). Sampling goes
  // on: a workload that reports after each iteration gets the peak over all
  // of them.
  long peak();

 private:
  rss_peak_sampler() = default;
  ~rss_peak_sampler() = delete;  // its thread runs until the process exits
  struct state;
  state* state_ = nullptr;
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_PROCESS_MEMORY_H_
