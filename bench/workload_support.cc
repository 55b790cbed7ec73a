#include "bench/workload_support.h"

#include <pthread.h>
#include <sched.h>

#include <barrier>
#include <memory>
#include <memory_resource>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/process_memory.h"
#include "syncpool/collect.h"

namespace syncpool_bench::internal {
namespace {

long baseline_kib = -1;
long fixed_iterations = 0;
std::shared_ptr<const allocator_row> registering_row;
void (*release_free_memory)() = nullptr;

// One pass of a resource through every size (8 B .. 64 KiB, eight per
// doubling as in the idle workload), two blocks at a time, three times:
// enough for a pool_resource to leave its young phase and build its
// classes and thread cache.
void every_size(std::pmr::memory_resource* r, void*) {
  for (int round = 0; round < 3; ++round) {
    for (std::size_t size = 8; size <= 65536; size += size < 128 ? 8 : size / 8) {
      void* a = r->allocate(size);
      void* b = r->allocate(size);
      r->deallocate(b, size);
      r->deallocate(a, size);
    }
  }
}

// Memory runs only (a fixed iteration count): the sampler's wake-ups would
// take CPU from a timed run.
bool memory_run() { return fixed_iterations > 0; }

// Before the malloc gives back what it holds free: what this allocates
// (reading /proc/self/maps, the sampler's thread) is then in the baseline.
void prepare_memory_measurement() {
  static const bool prepared = [] {
    prefault_file_mappings();
    rss_peak_sampler::instance().prepare();
    return true;
  }();
  (void)prepared;
}

// A memory run measures RSS growth from a baseline taken at its start. Code
// pages count in RSS too: a malloc's were faulted in long before (the
// benchmark framework calls malloc), syncpool's and the pmr resources' only
// when the workload first calls them, where they looked like 0.1-0.2 MiB of
// memory on the small workloads. So before the first baseline, the row runs
// once through every size on a resource of its own (and on a second thread,
// for the thread set-up paths), which it then destroys: every row starts
// with its code in memory. Then the malloc gives back what it holds free
// (set_release_free_memory) now rather than during the run (mimalloc purges
// on a timer), where the RSS would drop below the baseline.
void warm_up(const allocator_row& row) {
  if (row.make) {
    std::unique_ptr<bench_resource> res = row.make();
    every_size(res->get(), nullptr);
    if (row.thread_safe) std::thread([&] { every_size(res->get(), nullptr); }).join();
    res->drop_all();
  } else if (row.scoped) {
    row.scoped(&every_size, nullptr);
  }
  syncpool::collect();
  syncpool::collect();
  prepare_memory_measurement();
  if (release_free_memory != nullptr) release_free_memory();
}

// Made by thread 0 of a run; replaced only by the next run's thread 0, after
// Google Benchmark has joined the previous run's threads.
std::unique_ptr<std::barrier<>> current_barrier;

std::vector<std::shared_ptr<void>> parked;

}  // namespace

void begin_memory() {
  if (!memory_run()) {
    baseline_kib = current_rss_kib();
    return;
  }
  prepare_memory_measurement();  // where no warm-up ran
  baseline_kib = rss_peak_sampler::instance().start();
}

long baseline_rss_kib() { return baseline_kib; }

benchmark::internal::Benchmark* add(const std::string& name,
                                    std::function<void(benchmark::State&)> run) {
  if (fixed_iterations > 0 && registering_row != nullptr) {
    run = [row = registering_row, run = std::move(run)](benchmark::State& state) {
      // (compare_allocators runs one benchmark per process; a run of several
      // warms each row once, before its first.)
      static std::set<std::string> warm;
      if (state.thread_index() == 0 && warm.insert(row->id).second) warm_up(*row);
      run(state);
    };
  }
  benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(name.c_str(), std::move(run));
  if (fixed_iterations > 0) b->Iterations(fixed_iterations);
  return b;
}

void set_fixed_iterations(long iterations) { fixed_iterations = iterations; }

void set_registering_row(const allocator_row* row) {
  registering_row = row == nullptr ? nullptr : std::make_shared<const allocator_row>(*row);
}

void report_memory(benchmark::State& state,
                   const std::function<std::optional<std::size_t>()>& held) {
  const std::optional<std::size_t> held_after = held();
  const long rss_after = current_rss_kib();
  syncpool::collect();
  syncpool::collect();
  const std::optional<std::size_t> held_collected = held();
  const long rss_collected = current_rss_kib();
  const long peak = memory_run() ? rss_peak_sampler::instance().peak() : -1;

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

struct cpu_pin::saved {
  cpu_set_t before;
};

cpu_pin::cpu_pin(int index) {
  // The CPUs of the process as the first pinning thread found them (its own
  // set, before it pinned itself).
  static const std::vector<int> cpus = [] {
    std::vector<int> out;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) out.push_back(c);
      }
    }
    return out;
  }();
  if (cpus.size() < 2 || index < 0) return;
  auto s = std::make_unique<saved>();
  CPU_ZERO(&s->before);
  if (pthread_getaffinity_np(pthread_self(), sizeof s->before, &s->before) != 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[static_cast<std::size_t>(index) % cpus.size()], &one);
  if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) return;
  saved_ = std::move(s);
}

cpu_pin::~cpu_pin() {
  if (saved_ != nullptr) pthread_setaffinity_np(pthread_self(), sizeof saved_->before, &saved_->before);
}

}  // namespace syncpool_bench::internal

namespace syncpool_bench {

void destroy_leftovers() { internal::destroy_parked(); }

void set_release_free_memory(void (*release)()) { internal::release_free_memory = release; }

}  // namespace syncpool_bench
