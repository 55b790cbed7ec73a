// bench/workload_support.h
//
// What the workload files share: a fixed-seed random generator, the memory
// counters every benchmark reports, the end-of-run barrier of threaded
// benchmarks, and the registration entry points of the workload files.

#ifndef SYNCPOOL_BENCH_WORKLOAD_SUPPORT_H_
#define SYNCPOOL_BENCH_WORKLOAD_SUPPORT_H_

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "bench/workloads.h"

namespace syncpool_bench::internal {

// splitmix64: a well-mixed 64-bit value for each input.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// xorshift64*: cheap enough to call inside a timed loop; fixed seeds make
// every allocator see the same sequence.
class rng {
 public:
  explicit rng(std::uint64_t seed) : state_(mix64(seed) | 1) {}
  std::uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545f4914f6cdd1dULL;
  }
  // Uniform enough in [0, n) for n far below 2^32.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>((next() >> 32) * n >> 32); }
  // In [lo, hi].
  std::size_t between(std::size_t lo, std::size_t hi) { return lo + below(hi - lo + 1); }

 private:
  std::uint64_t state_;
};

// Call first thing in a run (thread 0 only): records the RSS as this
// invocation's baseline and starts following its peak (rss_peak_sampler).
void begin_memory();

// The baseline begin_memory() took, in KiB; -1 if unknown.
long baseline_rss_kib();

// Call on thread 0 once every block of the run is freed and every other
// thread is done, while the resource still lives: sets the memory counters
// (see workloads.h), running two syncpool::collect() cycles in between.
// `held` gives the bytes held from upstream, where known.
void report_memory(benchmark::State& state,
                   const std::function<std::optional<std::size_t>()>& held);
void report_memory(benchmark::State& state, const bench_resource& resource);

// The threads of one threaded benchmark run share state kept in statics:
// thread 0 makes it before the timed loop (Google Benchmark's start barrier
// publishes it to the others), every thread calls run_barrier::arrive() when
// it no longer touches it, and then thread 0 may measure it and park() it.
class run_barrier {
 public:
  // Thread 0, before the timed loop.
  static void prepare(int threads);
  // Every thread, after its last use of the shared state. Also hands the
  // thread's syncpool caches over (syncpool::flush_thread_cache()).
  static void arrive();
};

// What the threads of a run shared must outlive those threads, which
// Google Benchmark joins only after the run: an allocator may touch its
// state from a thread-exit handler (libstdc++'s synchronized_pool_resource
// does). So thread 0 parks it here at the end of a run, and it is destroyed
// when the next threaded run starts (thread 0, before begin_memory()) or by
// destroy_leftovers().
void park(std::shared_ptr<void> object);
void destroy_parked();

// Pins the calling thread, while the object lives, to the (index mod n)-th
// of the n CPUs that the first thread to construct one could run on (its
// own set, taken before it pinned itself), so that the threads
// of a hand-over workload run on distinct CPUs whenever there are enough.
// Left to the scheduler, two threads that pass blocks to each other
// sometimes take turns on one CPU (every block still in that CPU's cache)
// and sometimes run on two (every block crossing between caches): on this
// project's 2-CPU machines the same row came out 8 times faster or slower
// from one process to the next. The destructor restores the thread's own
// set (Google Benchmark runs thread 0 on its main thread). Does nothing
// where the process may use one CPU only, or the kernel refuses.
class cpu_pin {
 public:
  explicit cpu_pin(int index);
  ~cpu_pin();
  cpu_pin(const cpu_pin&) = delete;
  cpu_pin& operator=(const cpu_pin&) = delete;

 private:
  struct saved;
  std::unique_ptr<saved> saved_;  // nullptr: not pinned
};

// Registers `name` running `run`, with the fixed iteration count of
// set_fixed_iterations() if any. With a fixed count (a memory run), thread 0
// first warms up the row of set_registering_row(), once per process.
benchmark::internal::Benchmark* add(const std::string& name,
                                    std::function<void(benchmark::State&)> run);

// Registration entry points of the workload files.
void set_fixed_iterations(long iterations);
void set_registering_row(const allocator_row* row);  // for add(); nullptr: none
void register_single_thread_workloads(const allocator_row& row);  // workloads.cc
void register_lifetime_workloads(const allocator_row& row, const bench_config& config);       // lifetime_workloads.cc
// With `balanced_only`, only threads and server, whose threads free about
// what they allocate and outlive the work: for rows that model a per-thread
// cache with nothing shared (bench/design_floors.cc), which grow without
// bound in prodcons (blocks go one way) and churn and idle (threads exit
// with their lists).
void register_threaded_workloads(const allocator_row& row,        // threaded_workloads.cc
                                 const bench_config& config, bool balanced_only = false);

}  // namespace syncpool_bench::internal

#endif  // SYNCPOOL_BENCH_WORKLOAD_SUPPORT_H_
