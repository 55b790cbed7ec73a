// Object reuse: a 4 KiB buffer object taken and given back, through
// syncpool::pool<T>, through make_unique + delete (whatever malloc the
// binary links), and through a naive pool (a std::mutex-guarded std::vector
// free list). Scales over threads sharing one pool. One op = one get + put
// (or make + delete).
//
// The buffer is not zeroed on construction, as a buffer about to be
// overwritten is not: otherwise make_unique would pay a 4 KiB memset that a
// pool hit does not, and the comparison would be about memset. The
// `make_unique_zeroed_*` row shows what the zero-filling
// make_unique<std::byte[]>(4096) costs, labelled as such.

#include <benchmark/benchmark.h>

#include <atomic>
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

// The pools' buffers count themselves, so that what a pool holds can be
// read without its stats: once every thread has put its buffer back, the
// live ones are the cached ones. Only a pool miss or a destroy pays for it.
std::atomic<long> live_pooled_buffers{0};

struct pooled_buffer : buffer {
  pooled_buffer() noexcept { live_pooled_buffers.fetch_add(1, std::memory_order_relaxed); }
  ~pooled_buffer() { live_pooled_buffers.fetch_sub(1, std::memory_order_relaxed); }
  pooled_buffer(const pooled_buffer&) = delete;
  pooled_buffer& operator=(const pooled_buffer&) = delete;
};

std::optional<std::size_t> pooled_bytes() {
  return static_cast<std::size_t>(live_pooled_buffers.load(std::memory_order_relaxed)) *
         sizeof(pooled_buffer);
}

class naive_pool {
 public:
  std::unique_ptr<pooled_buffer> get() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        std::unique_ptr<pooled_buffer> b = std::move(free_.back());
        free_.pop_back();
        return b;
      }
    }
    return std::make_unique<pooled_buffer>();
  }
  void put(std::unique_ptr<pooled_buffer> b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<pooled_buffer>> free_;
};

// The pools of the run in progress, made and parked by thread 0.
std::unique_ptr<syncpool::pool<pooled_buffer>> sync_pool;
std::unique_ptr<naive_pool> naive;

void use(std::byte* bytes) {
  bytes[0] = std::byte{1};
  benchmark::DoNotOptimize(bytes);
}

enum class kind { pool, make_unique, make_unique_zeroed, naive_pool };

void reuse(benchmark::State& state, kind k) {
  if (state.thread_index() == 0) {
    destroy_parked();
    begin_memory();
    sync_pool = std::make_unique<syncpool::pool<pooled_buffer>>(
        [] { return std::make_unique<pooled_buffer>(); });
    naive = std::make_unique<naive_pool>();
    run_barrier::prepare(state.threads());
  }
  switch (k) {
    case kind::pool:
      for (auto _ : state) {
        std::unique_ptr<pooled_buffer> b = sync_pool->get();
        use(b->bytes);
        sync_pool->put(std::move(b));
      }
      break;
    case kind::make_unique:
      for (auto _ : state) {
        std::unique_ptr<buffer> b = std::make_unique<buffer>();
        use(b->bytes);
      }
      break;
    case kind::make_unique_zeroed:
      for (auto _ : state) {
        std::unique_ptr<std::byte[]> b = std::make_unique<std::byte[]>(sizeof(buffer));
        use(b.get());
      }
      break;
    case kind::naive_pool:
      for (auto _ : state) {
        std::unique_ptr<pooled_buffer> b = naive->get();
        use(b->bytes);
        naive->put(std::move(b));
      }
      break;
  }
  state.SetItemsProcessed(state.iterations());
  run_barrier::arrive();
  if (state.thread_index() != 0) return;
  report_memory(state, [k]() -> std::optional<std::size_t> {
    if (k == kind::pool || k == kind::naive_pool) return pooled_bytes();
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
    internal::set_fixed_iterations(config.fixed_iterations);
    benchmark::internal::Benchmark* b =
        internal::add("reuse/" + id, [k](benchmark::State& s) { internal::reuse(s, k); });
    for (const int n : config.thread_counts) b->Threads(n);
    b->UseRealTime();
  };
  if (with_pools) add("pool", kind::pool);
  add("make_unique_" + malloc_id, kind::make_unique);
  if (with_pools) {
    add("make_unique_zeroed_" + malloc_id, kind::make_unique_zeroed);
    add("naive_pool", kind::naive_pool);
  }
}

}  // namespace syncpool_bench
