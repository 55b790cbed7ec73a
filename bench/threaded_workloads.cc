// Workloads 4-6, run by several threads on ONE shared resource: threads
// (each thread churns), prodcons (blocks allocated in one thread are freed
// in another), server (random sizes and lifetimes, blocks handed between
// threads). Timed in wall-clock time; ns/op is for all threads together.

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
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

// ---- 4. threads: each thread keeps a window of 256 blocks of 16..512
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

// ---- 5. prodcons: thread 0 allocates, thread 1 frees, through a bounded
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

// ---- 6. server (larson's shape): 16,384 slots shared by all threads, each
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

void add(benchmark::internal::Benchmark* b, const bench_config& config) {
  for (const int n : config.thread_counts) b->Threads(n);
  b->UseRealTime();
}

}  // namespace

void register_threaded_workloads(const allocator_row& row, const bench_config& config) {
  const std::string& id = row.id;
  add(benchmark::RegisterBenchmark(("threads/" + id).c_str(),
                                   [row](benchmark::State& s) { threads_churn(s, row); }),
      config);
  const std::pair<const char*, std::size_t> sizes[] = {{"64", 64}, {"1024", 1024}, {"mixed", 0}};
  for (const auto& [name, size] : sizes) {
    benchmark::RegisterBenchmark(("prodcons/" + id + "/" + name).c_str(),
                                 [row, size = size](benchmark::State& s) { prodcons(s, row, size); })
        ->Threads(2)
        ->UseRealTime();
  }
  add(benchmark::RegisterBenchmark(("server/" + id).c_str(),
                                   [row](benchmark::State& s) { server(s, row); }),
      config);
}

}  // namespace syncpool_bench::internal
