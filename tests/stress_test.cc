// A thread storm over both faces, bounded by operation counts (never by
// time), run plain, under ASan and under TSan (smaller counts there).
//
//   - 12 threads (8 under a sanitizer) allocate from shared pool_resources,
//     through pmr containers and directly, and free blocks that other
//     threads allocated, handed over through queues; every block carries a
//     pattern that is checked before it is freed (an overlap shows);
//   - a pool<T> with `reset` and `retain_if`, where every object carries an
//     "in use" flag: get() handing one object to two threads is caught;
//   - a thread looping syncpool::collect() and member collect(), and a
//     syncpool::collector at 200 us;
//   - short-lived threads that free blocks and put objects from
//     thread_local destructors (after syncpool's own exit hook ran);
//   - resources and pools destroyed while other threads, alive and parked,
//     still hold cached state for them.
//
// At the end every upstream is back to zero live bytes and every object of
// the pool<T> has been destroyed exactly once.

#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"
#include "tests/test_resources.h"

namespace {

using syncpool::pool_resource;
using syncpool_test::check_block;
using syncpool_test::counting_resource;
using syncpool_test::fill_block;

#if defined(__SANITIZE_THREAD__) || defined(SYNCPOOL_TEST_ASAN)
constexpr int kThreads = 8;
constexpr int kRounds = 4;
constexpr int kOpsPerRound = 8000;
constexpr int kShortLived = 8;
#else
constexpr int kThreads = 12;
constexpr int kRounds = 6;
constexpr int kOpsPerRound = 30000;
constexpr int kShortLived = 24;
#endif

struct block {
  pool_resource* owner;
  void* p;
  std::size_t bytes;
  std::size_t alignment;
  uint32_t seed;
};

// Blocks on their way to the thread that frees them.
class handoff {
 public:
  void push(const block& b) {
    std::lock_guard<std::mutex> lock(mu_);
    q_.push_back(b);
  }
  bool pop(block* b) {
    std::lock_guard<std::mutex> lock(mu_);
    if (q_.empty()) return false;
    *b = q_.front();
    q_.pop_front();
    return true;
  }

 private:
  std::mutex mu_;
  std::deque<block> q_;
};

constexpr std::size_t kSizes[] = {8, 13, 24, 64, 96, 200, 512, 1000, 2048, 4096, 6000, 20000, 70000};

block allocate_block(pool_resource& r, std::minstd_rand& rng, uint32_t seed) {
  const std::size_t bytes = kSizes[rng() % std::size(kSizes)] + rng() % 8;
  const std::size_t alignment = std::size_t{1} << (rng() % 7);
  void* p = r.allocate(bytes, alignment);
  if (reinterpret_cast<uintptr_t>(p) % alignment != 0) std::abort();
  fill_block(p, bytes, seed);
  return block{&r, p, bytes, alignment, seed};
}

// False when the block's pattern changed while it was allocated.
bool free_block(const block& b) {
  const bool intact = check_block(b.p, b.bytes, b.seed);
  b.owner->deallocate(b.p, b.bytes, b.alignment);
  return intact;
}

// --- pool<T> whose objects know when they are handed out twice -------------

struct pooled {
  static std::atomic<long>& alive() {
    static std::atomic<long> n{0};
    return n;
  }
  pooled() { alive().fetch_add(1); }
  ~pooled() {
    if (destroyed.exchange(true)) std::abort();  // destroyed twice
    alive().fetch_sub(1);
  }
  std::atomic<bool> in_use{false};
  std::atomic<bool> destroyed{false};
  std::string payload;
};

using pooled_pool = syncpool::pool<pooled>;

std::unique_ptr<pooled_pool> make_pooled_pool() {
  syncpool::pool_options<pooled> options;
  options.reset = [](pooled& p) { p.payload.clear(); };
  // Drops some objects on put(), as a size limit would.
  options.retain_if = [](const pooled& p) { return p.payload.size() < 48; };
  options.local_capacity = 4;
  return std::make_unique<pooled_pool>([] { return std::make_unique<pooled>(); }, options);
}

bool use_pooled(pooled_pool& p, std::minstd_rand& rng) {
  std::unique_ptr<pooled> o = p.get();
  if (o == nullptr || o->in_use.exchange(true)) return false;  // handed out twice
  const bool was_reset = o->payload.empty();
  o->payload.assign(rng() % 64, 'p');
  o->in_use.store(false);
  p.put(std::move(o));
  return was_reset;
}

// --- one round --------------------------------------------------------------

struct round_state {
  counting_resource up;
  std::unique_ptr<pool_resource> shared;
  std::unique_ptr<pool_resource> nested;  // over `shared`
  std::unique_ptr<pooled_pool> objects;
  std::vector<handoff> queues = std::vector<handoff>(kThreads);
  std::atomic<bool> corrupt{false};
  std::atomic<uint64_t> operations{0};

  round_state() {
    std::pmr::pool_options small_chunks;
    small_chunks.max_blocks_per_chunk = 16;
    shared = std::make_unique<pool_resource>(&up);
    nested = std::make_unique<pool_resource>(small_chunks, shared.get());
    objects = make_pooled_pool();
  }
};

void drain_queue(round_state& st, int id) {
  block b;
  while (st.queues[id].pop(&b)) {
    if (!free_block(b)) st.corrupt.store(true);
  }
}

// A thread's share of a round: mixed work until its operations are done.
// It then keeps its blocks until `done_with_blocks`, frees them, and parks
// at `parked`, alive, with its caches still full, while the main thread
// destroys the round's resources and pool.
void worker(int id, round_state& st, std::barrier<>& done_with_blocks, std::barrier<>& parked,
            std::barrier<>& resume) {
  std::minstd_rand rng(static_cast<uint32_t>(id * 7919 + 1));
  std::vector<block> mine;
  {
    std::pmr::vector<std::pmr::string> strings(st.nested.get());
    std::pmr::map<int, std::pmr::string> index(st.shared.get());
    uint32_t seed = static_cast<uint32_t>(id) << 24;
    for (int op = 0; op < kOpsPerRound; ++op) {
      pool_resource& r = (op & 1) ? *st.shared : *st.nested;
      switch (rng() % 8) {
        case 0:
        case 1:
          mine.push_back(allocate_block(r, rng, ++seed));
          break;
        case 2:
          if (!mine.empty()) {  // to another thread, which frees it
            st.queues[(id + 1 + rng() % (kThreads - 1)) % kThreads].push(mine.back());
            mine.pop_back();
          }
          break;
        case 3:
          drain_queue(st, id);
          break;
        case 4:
          if (!mine.empty()) {
            if (!free_block(mine.back())) st.corrupt.store(true);
            mine.pop_back();
          }
          break;
        case 5:
          strings.emplace_back(rng() % 100, static_cast<char>('a' + id % 26));
          if (strings.size() > 50) strings.erase(strings.begin(), strings.begin() + 25);
          index[static_cast<int>(rng() % 200)].assign(rng() % 60, 'm');
          break;
        case 6:
          if (!use_pooled(*st.objects, rng)) st.corrupt.store(true);
          break;
        case 7:
          if (rng() % 64 == 0) syncpool::flush_thread_cache();
          break;
      }
    }
    st.operations.fetch_add(kOpsPerRound, std::memory_order_relaxed);
  }
  done_with_blocks.arrive_and_wait();
  drain_queue(st, id);
  for (const block& b : mine) {
    if (!free_block(b)) st.corrupt.store(true);
  }
  parked.arrive_and_wait();  // the main thread destroys the round now
  resume.arrive_and_wait();
}

// --- short-lived threads that free from thread_local destructors ------------

struct late_free {
  std::vector<block> blocks;
  pooled_pool* pool = nullptr;
  std::unique_ptr<pooled> obj;
  bool* intact = nullptr;
  ~late_free() {
    for (const block& b : blocks) {
      if (!free_block(b)) *intact = false;
    }
    if (pool != nullptr) pool->put(std::move(obj));
  }
};

void short_lived_thread(round_state& st, uint32_t seed, bool* intact) {
  // Constructed before this thread's first call into syncpool, so it is
  // destroyed after syncpool's thread-exit hook.
  static thread_local late_free late;
  late.intact = intact;
  std::minstd_rand rng(seed);
  for (int i = 0; i < 6; ++i) late.blocks.push_back(allocate_block(*st.shared, rng, seed + i));
  for (int i = 0; i < 20; ++i) {
    block b = allocate_block(*st.nested, rng, seed + 100 + i);
    if (!free_block(b)) *intact = false;
  }
  late.pool = st.objects.get();
  late.obj = st.objects->get();
}

TEST(StressTest, ThreadStormOverBothFacesWithCollectorsAndTeardown) {
  syncpool::collector gc(std::chrono::microseconds(200));
  std::atomic<bool> stop_collecting{false};
  round_state* current = nullptr;
  std::mutex current_mu;
  // Loops syncpool::collect() and the current round's member collect().
  std::thread collecting([&] {
    while (!stop_collecting.load()) {
      syncpool::collect();
      std::lock_guard<std::mutex> lock(current_mu);
      if (current != nullptr) {
        current->shared->collect();
        current->nested->collect();
      }
    }
  });

  std::barrier<> done_with_blocks(kThreads);
  std::barrier<> parked(kThreads + 1);
  std::barrier<> resume(kThreads + 1);
  uint64_t operations = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto st = std::make_unique<round_state>();
    {
      std::lock_guard<std::mutex> lock(current_mu);
      current = st.get();
    }
    std::vector<std::thread> threads;
    for (int id = 0; id < kThreads; ++id) {
      threads.emplace_back(worker, id, std::ref(*st), std::ref(done_with_blocks), std::ref(parked),
                           std::ref(resume));
    }
    std::vector<bool> intact(kShortLived, true);
    for (int i = 0; i < kShortLived; ++i) {
      bool ok = true;
      std::thread(short_lived_thread, std::ref(*st), static_cast<uint32_t>(round * 1000 + i * 37), &ok).join();
      intact[i] = ok;
    }
    parked.arrive_and_wait();
    // Every worker is alive and parked with cached state for these: destroy
    // them under the threads' feet.
    {
      std::lock_guard<std::mutex> lock(current_mu);
      current = nullptr;
    }
    EXPECT_FALSE(st->corrupt.load()) << "round " << round;
    for (int i = 0; i < kShortLived; ++i) EXPECT_TRUE(intact[i]) << "round " << round << ", thread " << i;
    operations += st->operations.load();
    st->objects.reset();
    st->nested.reset();
    st->shared.reset();
    EXPECT_EQ(st->up.live_bytes(), 0u) << "round " << round;
    EXPECT_TRUE(st->up.errors().empty()) << "round " << round;
    resume.arrive_and_wait();
    for (auto& t : threads) t.join();
  }
  stop_collecting.store(true);
  collecting.join();
  EXPECT_EQ(pooled::alive().load(), 0) << "objects of pool<T> not destroyed";
  std::printf("stress: %llu operations on %d threads (+%d short-lived) over %d rounds, %llu collector cycles\n",
              static_cast<unsigned long long>(operations), kThreads, kShortLived * kRounds, kRounds,
              static_cast<unsigned long long>(gc.cycles()));
}

}  // namespace
