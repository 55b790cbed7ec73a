// The workloads about a resource's own life rather than its blocks':
// lifetime (one resource per request, the most common pmr pattern),
// requests (the same on every thread at once) and resources (many live
// resources, each holding one small block).

#include <benchmark/benchmark.h>
#if defined(__GLIBC__)
#include <malloc.h>  // mallopt
#endif

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <memory_resource>
#include <string>
#include <vector>

#include "bench/process_memory.h"
#include "bench/workload_support.h"
#include "bench/workloads.h"

namespace syncpool_bench::internal {
namespace {

// ---- lifetime: construct a resource, build a pmr::vector of pmr::strings
// in it, destroy both. `allocations` requests in all: the vector's reserve
// and `allocations` - 1 strings of 16..128 chars (past the small string
// buffer). One op = one request.

constexpr std::size_t kRequestSizes[] = {16, 64, 256};

struct request_plan {
  std::vector<std::size_t> lengths;  // one per string
};

void serve_request(std::pmr::memory_resource* resource, void* context) {
  const request_plan& plan = *static_cast<const request_plan*>(context);
  std::pmr::vector<std::pmr::string> strings(resource);
  strings.reserve(plan.lengths.size());
  for (const std::size_t length : plan.lengths) strings.emplace_back(length, 'x');
  benchmark::DoNotOptimize(strings.data());
}

void lifetime(benchmark::State& state, const allocator_row& row, std::size_t allocations) {
  begin_memory();
  request_plan plan;
  rng random(17);
  plan.lengths.resize(allocations - 1);
  for (std::size_t& length : plan.lengths) length = random.between(16, 128);
  for (auto _ : state) row.scoped(&serve_request, &plan);
  state.SetItemsProcessed(state.iterations());
  report_memory(state, [] { return std::optional<std::size_t>(); });
}

// ---- requests: lifetime's 16-allocation request on every thread at once,
// each thread on resources of its own (a server with a resource per
// request). One op = one request, all threads together: what only scales
// if nothing process-wide serializes a resource's life (a registry lock
// taken at each resource's first use and destruction halved the
// throughput of 2 threads against 1).

constexpr std::size_t kThreadedRequestAllocations = 16;

void requests(benchmark::State& state, const allocator_row& row) {
  if (state.thread_index() == 0) {
    destroy_parked();
    begin_memory();
    run_barrier::prepare(state.threads());
  }
  request_plan plan;
  rng random(17 + static_cast<std::uint64_t>(state.thread_index()));
  plan.lengths.resize(kThreadedRequestAllocations - 1);
  for (std::size_t& length : plan.lengths) length = random.between(16, 128);
  for (auto _ : state) row.scoped(&serve_request, &plan);
  state.SetItemsProcessed(state.iterations());
  run_barrier::arrive();
  if (state.thread_index() == 0) report_memory(state, [] { return std::optional<std::size_t>(); });
}

// ---- resources: `count` live resources, each holding one 64-byte block.
// Reports the RSS per live resource. One op = one resource made, used,
// freed and destroyed; the memory is read while all of them live.

constexpr std::size_t kResourceCounts[] = {1000, 10000};

// glibc gives its heap's top back to the kernel (brk) whenever a free
// leaves more than 128 KiB free there, if that free merged a chunk of 64 KiB
// or more. Destroying a thousand resources in the order they were made
// merges them into one such chunk, unless the few chunks glibc's per-thread
// cache keeps happen to lie at the top: then nothing is trimmed. So each
// round either faults every page of the next thousand resources back in,
// or not, by where glibc's cache happened to hold chunks. That decided the
// column: in the README's run at 61b7dd7, pool_resource took 3,127 ns per
// resource and unsynchronized_pool_resource 321 at 1,000 live, 4,113 and
// 6,139 at 10,000 (about 330 pages a round per 1,000 resources, some 9 us
// each on that VM); with trimming off (compare_allocators --filter
// resources/ at 90749fb + this change, same VM) 196 and 334 at 1,000, 205
// and 610 at 10,000; the same code at 725cd40 took 3.1-3.3 ms per 1,000
// resources with trimming on and 0.24-0.30 ms with it off (GLIBC_TUNABLES).
// So the rows are compared with glibc's automatic trimming off while this
// workload runs; the memory figures are read while all resources live,
// which trimming does not change. mallopt() also turns glibc's dynamic mmap
// threshold off for the rest of the process, and the restore sets glibc's
// default, not what MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES asked for:
// later benchmarks in the same process run on that glibc. compare_allocators
// runs each benchmark in a process of its own.
class glibc_trim_off {
 public:
#if defined(__GLIBC__)
  glibc_trim_off() { mallopt(M_TRIM_THRESHOLD, kNever); }
  // glibc's default threshold again (its dynamic adjustment stays off).
  ~glibc_trim_off() { mallopt(M_TRIM_THRESHOLD, kDefault); }

 private:
  static constexpr int kNever = 1 << 30;
  static constexpr int kDefault = 128 * 1024;
#endif
};

void resources(benchmark::State& state, const allocator_row& row, std::size_t count) {
  const glibc_trim_off trim_off;
  begin_memory();
  std::vector<std::unique_ptr<bench_resource>> live;
  std::vector<void*> blocks;
  live.reserve(count);
  blocks.reserve(count);
  std::string limit;
  double rss_per_resource = -1;
  double upstream_per_resource = -1;
  for (auto _ : state) {
    try {
      while (live.size() < count) {
        live.push_back(row.make());
        blocks.push_back(live.back()->get()->allocate(64));
      }
    } catch (const std::exception& e) {
      // libstdc++'s synchronized_pool_resource takes a pthread key per
      // instance, and a process has about 1,000 of them.
      limit =
          "limit: stopped at " + std::to_string(live.size()) + " live instances (" + e.what() + ")";
    }
    const long rss = current_rss_kib();
    if (rss >= 0 && baseline_rss_kib() >= 0) {
      rss_per_resource = static_cast<double>(rss - baseline_rss_kib()) / static_cast<double>(count);
    }
    std::size_t upstream = 0;
    bool counted = true;
    for (const auto& resource : live) {
      const std::optional<std::size_t> held = resource->upstream_bytes();
      counted = counted && held.has_value();
      upstream += held.value_or(0);
    }
    if (counted) upstream_per_resource = static_cast<double>(upstream) / static_cast<double>(count);
    for (std::size_t i = 0; i < blocks.size(); ++i) live[i]->get()->deallocate(blocks[i], 64);
    blocks.clear();
    live.clear();
  }
  if (!limit.empty()) {
    state.SkipWithError(limit.c_str());
    return;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(count));
  if (rss_per_resource >= 0) state.counters["rss_per_resource_kib"] = rss_per_resource;
  if (upstream_per_resource >= 0) {
    state.counters["upstream_per_resource_bytes"] = upstream_per_resource;
  }
  report_memory(state, [] { return std::optional<std::size_t>(); });
}

}  // namespace

void register_lifetime_workloads(const allocator_row& row, const bench_config& config) {
  for (const std::size_t n : kRequestSizes) {
    add("lifetime/" + row.id + "/" + std::to_string(n),
        [row, n](benchmark::State& s) { lifetime(s, row, n); });
  }
  // Every row: each thread has resources of its own, so a resource need not
  // be thread-safe (unsynchronized_pool_resource is a fair peer here).
  benchmark::internal::Benchmark* b =
      add("requests/" + row.id, [row](benchmark::State& s) { requests(s, row); });
  for (const int n : config.thread_counts) b->Threads(n);
  b->UseRealTime();
  if (!row.make || row.is_malloc) return;
  for (const std::size_t n : kResourceCounts) {
    // One invocation is already a long one (10,000 pool_resources).
    add("resources/" + row.id + "/" + std::to_string(n), [row, n](benchmark::State& s) {
      resources(s, row, n);
    })->Iterations(1);
  }
}

}  // namespace syncpool_bench::internal
