#include "bench/workload_support.h"

#include <barrier>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bench/process_memory.h"
#include "syncpool/collect.h"

namespace syncpool_bench::internal {
namespace {

long baseline_kib = -1;
long fixed_iterations = 0;

// Made by thread 0 of a run; replaced only by the next run's thread 0, after
// Google Benchmark has joined the previous run's threads.
std::unique_ptr<std::barrier<>> current_barrier;

std::vector<std::shared_ptr<void>> parked;

}  // namespace

void begin_memory() {
  baseline_kib = current_rss_kib();
  reset_peak_rss();
}

long baseline_rss_kib() { return baseline_kib; }

benchmark::internal::Benchmark* add(const std::string& name,
                                    std::function<void(benchmark::State&)> run) {
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name.c_str(), std::move(run));
  if (fixed_iterations > 0) b->Iterations(fixed_iterations);
  return b;
}

void set_fixed_iterations(long iterations) { fixed_iterations = iterations; }

void report_memory(benchmark::State& state,
                   const std::function<std::optional<std::size_t>()>& held) {
  const std::optional<std::size_t> held_after = held();
  const long rss_after = current_rss_kib();
  syncpool::collect();
  syncpool::collect();
  const std::optional<std::size_t> held_collected = held();
  const long rss_collected = current_rss_kib();
  const long peak = peak_rss_kib();

  const auto growth = [](long kib) { return static_cast<double>(kib - baseline_kib); };
  if (baseline_kib >= 0) {
    if (peak >= 0) state.counters["peak_rss_kib"] = growth(peak);
    if (rss_after >= 0) state.counters["rss_after_kib"] = growth(rss_after);
    if (rss_collected >= 0) state.counters["rss_collected_kib"] = growth(rss_collected);
  }
  if (held_after) state.counters["held_bytes"] = static_cast<double>(*held_after);
  if (held_collected) {
    state.counters["held_collected_bytes"] = static_cast<double>(*held_collected);
  }
}

void report_memory(benchmark::State& state, const bench_resource& resource) {
  report_memory(state, [&resource] { return resource.upstream_bytes(); });
}

void park(std::shared_ptr<void> object) { parked.push_back(std::move(object)); }

void destroy_parked() {
  while (!parked.empty()) parked.pop_back();  // newest first
}

void run_barrier::prepare(int threads) {
  current_barrier = std::make_unique<std::barrier<>>(threads);
}

void run_barrier::arrive() {
  syncpool::flush_thread_cache();
  current_barrier->arrive_and_wait();
}

}  // namespace syncpool_bench::internal

namespace syncpool_bench {

void destroy_leftovers() { internal::destroy_parked(); }

}  // namespace syncpool_bench
