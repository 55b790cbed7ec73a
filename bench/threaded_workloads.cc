// The workloads run by several threads on ONE shared resource: threads
// (each thread churns), prodcons (blocks allocated in one thread are freed
// in another), server (random sizes and lifetimes, blocks handed between
// threads), churn (threads start and exit all the time) and idle (many
// threads use the resource, then stay alive doing nothing). Timed in
// wall-clock time; ns/op is for all threads together: the inverse of the
// aggregate throughput, not the latency of one operation.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <latch>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/workload_support.h"
#include "bench/workloads.h"

namespace syncpool_bench::internal {
namespace {

// The resource of the threaded run in progress (one runs at a time), made
// by thread 0 and parked by it at the end; see run_barrier and park().
std::unique_ptr<bench_resource> shared_resource;

// Thread 0: a fresh resource and barrier for this run.
void setup_run(benchmark::State& state, const allocator_row& row) {
  if (state.thread_index() != 0) return;
  destroy_parked();
  begin_memory();
  shared_resource = row.make();
  run_barrier::prepare(state.threads());
}

// Every thread, once its blocks are freed; then thread 0 measures and parks
// the resource.
void finish_run(benchmark::State& state) {
  run_barrier::arrive();
  if (state.thread_index() != 0) return;
  report_memory(state, *shared_resource);
  park(std::move(shared_resource));
}

// A block that remembers its size in its first bytes, so that whichever
// thread frees it knows it.
void* make_block(std::pmr::memory_resource* r, std::size_t size) {
  void* p = r->allocate(size);
  *static_cast<std::size_t*>(p) = size;
  return p;
}

void free_block(std::pmr::memory_resource* r, void* p) {
  r->deallocate(p, *static_cast<std::size_t*>(p));
}

// ---- threads: each thread keeps a window of 256 blocks of 16..512
// bytes and replaces the oldest, 16 per iteration. One op = one block freed
// and one allocated.

void threads_churn(benchmark::State& state, const allocator_row& row) {
  constexpr std::size_t kWindow = 256;
  setup_run(state, row);
  rng random(100 + static_cast<std::uint64_t>(state.thread_index()));
  std::vector<void*> window(kWindow, nullptr);
  std::size_t next = 0;
  // Written out so that the resource is read after the start barrier.
  auto it = state.begin();
  const auto end = state.end();
  std::pmr::memory_resource* const r = shared_resource->get();
  for (; it != end; ++it) {
    for (int i = 0; i < 16; ++i) {
      if (window[next] != nullptr) free_block(r, window[next]);
      window[next] = make_block(r, random.between(16, 512));
      next = (next + 1) % kWindow;
    }
  }
  for (void* p : window) {
    if (p != nullptr) free_block(r, p);
  }
  state.SetItemsProcessed(state.iterations() * 16);
  finish_run(state);
}

// ---- prodcons: thread 0 allocates, thread 1 frees, through a bounded
// single-producer single-consumer ring (xmalloc-test's shape). One op = one
// block allocated, handed over and freed.

class spsc_ring {
 public:
  bool push(void* p) {
    const std::size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == kSlots) return false;
    slots_[tail % kSlots] = p;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }
  void* pop() {
    const std::size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    void* p = slots_[head % kSlots];
    head_.store(head + 1, std::memory_order_release);
    return p;
  }

 private:
  static constexpr std::size_t kSlots = 1024;
  alignas(128) std::atomic<std::size_t> head_{0};
  alignas(128) std::atomic<std::size_t> tail_{0};
  alignas(128) void* slots_[kSlots] = {};
};

std::unique_ptr<spsc_ring> ring;

// Waits politely: this machine may have fewer cores than threads.
void backoff(int& spins) {
  if (++spins > 64) std::this_thread::yield();
}

void prodcons(benchmark::State& state, const allocator_row& row, std::size_t size) {
  constexpr int kPerIteration = 64;
  // On distinct CPUs: every block crosses between CPU caches, in every run
  // of every row (see cpu_pin).
  const cpu_pin pin(state.thread_index());
  if (state.thread_index() == 0) ring = std::make_unique<spsc_ring>();
  setup_run(state, row);
  rng random(5);
  auto it = state.begin();
  const auto end = state.end();
  std::pmr::memory_resource* const r = shared_resource->get();
  if (state.thread_index() == 0) {
    for (; it != end; ++it) {
      for (int i = 0; i < kPerIteration; ++i) {
        void* p = make_block(r, size != 0 ? size : random.between(16, 1024));
        for (int spins = 0; !ring->push(p);) backoff(spins);
      }
    }
    // Every iteration of thread 1 pops as many as thread 0 pushed.
    state.SetItemsProcessed(state.iterations() * kPerIteration);
  } else {
    for (; it != end; ++it) {
      for (int i = 0; i < kPerIteration; ++i) {
        void* p;
        for (int spins = 0; (p = ring->pop()) == nullptr;) backoff(spins);
        free_block(r, p);
      }
    }
  }
  finish_run(state);
}

// ---- server (larson's shape): 16,384 slots shared by all threads, each
// holding a block of 16..1024 bytes. A thread picks a random slot, puts a
// new block there and frees the one it took out, which any thread may have
// allocated: random lifetimes, blocks handed between threads. One op = one
// block replaced.

constexpr std::size_t kServerSlots = 16384;
std::unique_ptr<std::atomic<void*>[]> slots;

void server(benchmark::State& state, const allocator_row& row) {
  setup_run(state, row);
  if (state.thread_index() == 0) {
    slots = std::make_unique<std::atomic<void*>[]>(kServerSlots);
    rng fill(1);
    for (std::size_t i = 0; i < kServerSlots; ++i) {
      slots[i].store(make_block(shared_resource->get(), fill.between(16, 1024)),
                     std::memory_order_relaxed);
    }
  }
  rng random(300 + static_cast<std::uint64_t>(state.thread_index()));
  auto it = state.begin();
  const auto end = state.end();
  std::pmr::memory_resource* const r = shared_resource->get();
  for (; it != end; ++it) {
    for (int i = 0; i < 16; ++i) {
      void* p = make_block(r, random.between(16, 1024));
      void* old = slots[random.below(kServerSlots)].exchange(p, std::memory_order_acq_rel);
      free_block(r, old);
    }
  }
  state.SetItemsProcessed(state.iterations() * 16);
  run_barrier::arrive();
  if (state.thread_index() == 0) {
    for (std::size_t i = 0; i < kServerSlots; ++i) {
      free_block(shared_resource->get(), slots[i].load(std::memory_order_relaxed));
    }
    report_memory(state, *shared_resource);
    park(std::move(shared_resource));
  }
}

// ---- churn: waves of `wave` threads, each started for a few hundred
// allocations and frees (a window of 32 blocks of 16..512 B, 256 replaced)
// and then exiting, as the threads of a pool started per task do. Thread
// start and exit are in the time: that is where an allocator with
// per-thread caches pays to set them up and hand them over. One op = one
// block allocated and freed.

constexpr int kChurnWaves[] = {2, 16};
constexpr int kChurnOpsPerThread = 256;

void churn_thread(std::pmr::memory_resource* r, std::uint64_t seed) {
  constexpr std::size_t kWindow = 32;
  rng random(seed);
  void* window[kWindow] = {};
  for (int i = 0; i < kChurnOpsPerThread; ++i) {
    void*& slot = window[static_cast<std::size_t>(i) % kWindow];
    if (slot != nullptr) free_block(r, slot);
    slot = make_block(r, random.between(16, 512));
  }
  for (void* p : window) {
    if (p != nullptr) free_block(r, p);
  }
}

void churn(benchmark::State& state, const allocator_row& row, int wave) {
  begin_memory();
  const std::unique_ptr<bench_resource> res = row.make();
  std::pmr::memory_resource* const r = res->get();
  std::vector<std::thread> threads;
  threads.reserve(static_cast<std::size_t>(wave));
  std::uint64_t seed = 0;
  for (auto _ : state) {
    for (int t = 0; t < wave; ++t) threads.emplace_back(churn_thread, r, ++seed);
    for (std::thread& t : threads) t.join();
    threads.clear();
  }
  state.SetItemsProcessed(state.iterations() * wave * kChurnOpsPerThread);
  report_memory(state, *res);
}

// ---- idle: 64 threads each use every size class (8 B .. 64 KiB, eight
// sizes per doubling, so that no class of any allocator here is skipped),
// then stay alive and parked while the memory is read, before and after two
// syncpool::collect() cycles: what a server's idle workers cost. One op =
// one block allocated and freed (the time is not the point).

constexpr int kIdleThreads = 64;

std::vector<std::size_t> idle_sizes() {
  std::vector<std::size_t> sizes;
  for (std::size_t size = 8; size < 128; size += 8) sizes.push_back(size);
  for (std::size_t base = 128; base < 65536; base *= 2) {
    for (std::size_t step = 0; step < 8; ++step) sizes.push_back(base + step * base / 8);
  }
  sizes.push_back(65536);
  return sizes;
}

// Up to 32 KiB of blocks of each size, between 2 and 64 blocks: enough to
// fill the per-thread caches of every class.
std::size_t blocks_per_size(std::size_t size) {
  return std::clamp<std::size_t>(32768 / size, 2, 64);
}

void use_every_class(std::pmr::memory_resource* r, const std::vector<std::size_t>& sizes) {
  void* blocks[64];
  for (const std::size_t size : sizes) {
    const std::size_t n = blocks_per_size(size);
    for (std::size_t i = 0; i < n; ++i) blocks[i] = make_block(r, size);
    for (std::size_t i = n; i-- > 0;) free_block(r, blocks[i]);
  }
}

void idle(benchmark::State& state, const allocator_row& row) {
  const std::vector<std::size_t> sizes = idle_sizes();
  std::int64_t ops_per_thread = 0;
  for (const std::size_t size : sizes)
    ops_per_thread += static_cast<std::int64_t>(blocks_per_size(size));
  begin_memory();
  const std::unique_ptr<bench_resource> res = row.make();
  std::pmr::memory_resource* const r = res->get();
  for (auto _ : state) {
    std::latch used(kIdleThreads);
    std::latch resume(1);
    std::vector<std::thread> threads;
    for (int t = 0; t < kIdleThreads; ++t) {
      threads.emplace_back([&] {
        use_every_class(r, sizes);
        used.count_down();
        resume.wait();
      });
    }
    used.wait();
    state.PauseTiming();
    report_memory(state, *res);
    resume.count_down();
    for (std::thread& t : threads) t.join();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kIdleThreads * ops_per_thread);
}

void add_thread_counts(benchmark::internal::Benchmark* b, const bench_config& config) {
  for (const int n : config.thread_counts) b->Threads(n);
  b->UseRealTime();
}

}  // namespace

void register_threaded_workloads(const allocator_row& row, const bench_config& config, bool balanced_only) {
  const std::string& id = row.id;
  add_thread_counts(add("threads/" + id, [row](benchmark::State& s) { threads_churn(s, row); }),
                    config);
  add_thread_counts(add("server/" + id, [row](benchmark::State& s) { server(s, row); }), config);
  if (balanced_only) return;
  const std::pair<const char*, std::size_t> sizes[] = {{"64", 64}, {"1024", 1024}, {"mixed", 0}};
  for (const auto& [name, size] : sizes) {
    add("prodcons/" + id + "/" + name,
        [row, size = size](benchmark::State& s) { prodcons(s, row, size); })
        ->Threads(2)
        ->UseRealTime();
  }
  for (const int wave : kChurnWaves) {
    add("churn/" + id + "/" + std::to_string(wave), [row, wave](benchmark::State& s) {
      churn(s, row, wave);
    })->UseRealTime();
  }
  // One invocation: 64 threads started, used and parked.
  add("idle/" + id + "/" + std::to_string(kIdleThreads),
      [row](benchmark::State& s) { idle(s, row); })
      ->Iterations(1)
      ->UseRealTime();
}

}  // namespace syncpool_bench::internal
