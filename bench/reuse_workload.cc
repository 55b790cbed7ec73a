// Workload 7, object reuse: a 4 KiB buffer object taken and given back,
// through syncpool::pool<T>, through make_unique + delete (whatever malloc
// the binary links), and through a naive pool (a std::mutex-guarded
// std::vector free list). Scales over threads sharing one pool. One op =
// one get + put (or make + delete).

#include <benchmark/benchmark.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/workload_support.h"
#include "bench/workloads.h"
#include "syncpool/pool.h"

namespace syncpool_bench::internal {
namespace {

// Uninitialized on construction, as a buffer is: no 4 KiB memset per make.
struct buffer {
  buffer() noexcept {}  // NOLINT: deliberately leaves `bytes` uninitialized
  std::byte bytes[4096];
};

class naive_pool {
 public:
  std::unique_ptr<buffer> get() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<buffer> b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::make_unique<buffer>();
  }
  void put(std::unique_ptr<buffer> b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }
  std::size_t cached_bytes() {
    std::lock_guard<std::mutex> lock(mu_);
    return free_.size() * sizeof(buffer);
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<buffer>> free_;
};

// The pools of the run in progress, made and parked by thread 0.
std::unique_ptr<syncpool::pool<buffer>> sync_pool;
std::unique_ptr<naive_pool> naive;

void use(buffer& b) {
  b.bytes[0] = std::byte{1};
  benchmark::DoNotOptimize(b.bytes);
}

enum class kind { pool, make_unique, naive_pool };

void reuse(benchmark::State& state, kind k) {
  if (state.thread_index() == 0) {
    destroy_parked();
    begin_memory();
    sync_pool = std::make_unique<syncpool::pool<buffer>>([] { return std::make_unique<buffer>(); });
    naive = std::make_unique<naive_pool>();
    run_barrier::prepare(state.threads());
  }
  switch (k) {
    case kind::pool:
      for (auto _ : state) {
        std::unique_ptr<buffer> b = sync_pool->get();
        use(*b);
        sync_pool->put(std::move(b));
      }
      break;
    case kind::make_unique:
      for (auto _ : state) {
        std::unique_ptr<buffer> b = std::make_unique<buffer>();
        use(*b);
      }
      break;
    case kind::naive_pool:
      for (auto _ : state) {
        std::unique_ptr<buffer> b = naive->get();
        use(*b);
        naive->put(std::move(b));
      }
      break;
  }
  state.SetItemsProcessed(state.iterations());
  run_barrier::arrive();
  if (state.thread_index() != 0) return;
  report_memory(state, [k]() -> std::optional<std::size_t> {
    switch (k) {
      case kind::pool:
        return sync_pool->stats().cached * sizeof(buffer);
      case kind::naive_pool:
        return naive->cached_bytes();
      case kind::make_unique:
        break;
    }
    return std::nullopt;
  });
  park(std::move(sync_pool));
  park(std::move(naive));
}

}  // namespace
}  // namespace syncpool_bench::internal

namespace syncpool_bench {

void register_reuse_workloads(const std::string& malloc_id, bool with_pools,
                              const bench_config& config) {
  using internal::kind;
  const auto add = [&config](const std::string& id, kind k) {
    benchmark::internal::Benchmark* b = benchmark::RegisterBenchmark(
        ("reuse/" + id).c_str(), [k](benchmark::State& s) { internal::reuse(s, k); });
    for (const int n : config.thread_counts) b->Threads(n);
    b->UseRealTime();
  };
  if (with_pools) add("pool", kind::pool);
  add("make_unique_" + malloc_id, kind::make_unique);
  if (with_pools) add("naive_pool", kind::naive_pool);
}

}  // namespace syncpool_bench
