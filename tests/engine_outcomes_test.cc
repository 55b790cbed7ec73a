// What the engine's second design promises, checked end to end:
//
//   - Parked threads hold nothing: live threads that used every size class
//     (or a pool<T>) and then park keep nothing after two collect() cycles
//     run from another thread (where membarrier() is available).
//   - No heap: a pool_resource over a monotonic_buffer_resource on a stack
//     buffer makes no global allocation, across classes, sizes and threads;
//     constructing one allocates nothing of any kind.
//   - A thread's cache is bounded by the thread_cache_bytes budget.
//
// This binary replaces the global operator new to count calls (per thread,
// while a thread says it is measuring).

#include <malloc.h>

#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"
#include "tests/replaced_new.h"
#include "tests/test_resources.h"

namespace {

std::atomic<uint64_t> g_counted_news{0};
thread_local bool t_measuring = false;

}  // namespace

void* syncpool_test::replaced_new(std::size_t n, std::size_t alignment, bool nothrow) {
  if (t_measuring) g_counted_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = heap_new(n, alignment)) return p;
  if (nothrow) return nullptr;
  throw std::bad_alloc();
}
void syncpool_test::replaced_delete(void* p) noexcept { std::free(p); }

namespace {

using syncpool::pool_resource;
using syncpool_test::counting_resource;

// Every class of a default pool_resource, once each (and a few sizes in
// between), with a blocks' worth kept per class so that caches fill.
std::vector<std::size_t> every_class(const pool_resource& r) {
  std::vector<std::size_t> sizes;
  for (const auto& c : r.stats().classes) sizes.push_back(c.block_size);
  return sizes;
}

void use_every_class(pool_resource& r, const std::vector<std::size_t>& sizes, int per_class) {
  std::vector<std::pair<void*, std::size_t>> held;
  for (std::size_t size : sizes) {
    for (int i = 0; i < per_class; ++i) held.emplace_back(r.allocate(size), size);
  }
  for (auto& [p, n] : held) r.deallocate(p, n);
}

// The bookkeeping of a thread's cache: the classes' shares add up to
// `reserved`, within the budget; each class holds at most its share, in an
// array at least that large.
void expect_consistent_shares(const syncpool::internal::thread_cache* c) {
  using syncpool::internal::batch;
  uint64_t shares = 0;
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    const auto& cs = c->cls[i];
    shares += uint64_t{cs.capacity} * cs.weight;
    EXPECT_LE(cs.count(), cs.capacity) << "class " << c->base + i;
    EXPECT_LE(cs.capacity, cs.array) << "class " << c->base + i;
    if (cs.items == nullptr) {
      EXPECT_EQ(cs.array, 0u) << "class " << c->base + i;
    } else {
      EXPECT_LE(cs.array, batch::of_items(cs.items)->capacity) << "class " << c->base + i;
    }
  }
  EXPECT_EQ(shares, c->reserved);
  EXPECT_LE(c->reserved, c->budget);
}

// From a thread of its own: uses every class of 256 B to 2 KiB, 64 blocks
// each, far past each one's room (an eighth of the budget: together they
// could take twice a 16 KiB budget), and returns the thread's one cache.
const syncpool::internal::thread_cache* fill_with_medium_classes(pool_resource& r,
                                                                 const std::vector<std::size_t>& sizes) {
  std::vector<std::size_t> medium;
  for (std::size_t size : sizes) {
    if (size >= 256 && size <= 2048) medium.push_back(size);
  }
  EXPECT_GE(medium.size(), 16u);
  use_every_class(r, medium, 64);
  const syncpool::internal::thread_cache* c = syncpool::internal::t_thread.owned;
  EXPECT_TRUE(c != nullptr && c->tnext == nullptr) << "one cache";
  return c;
}

bool membarrier_here() { return syncpool::internal::asymmetric_fence_available(); }

TEST(ParkedThreads, SixtyFourParkedThreadsHoldNoUpstreamMemoryAfterTwoCollects) {
  if (!membarrier_here()) GTEST_SKIP() << "membarrier() refused here: idle threads are out of reach (documented)";
#if defined(__SANITIZE_THREAD__)
  constexpr int kThreads = 16;
#else
  constexpr int kThreads = 64;
#endif
  counting_resource up;
  {
    pool_resource r(&up);
    const std::vector<std::size_t> sizes = every_class(r);
    std::latch used(kThreads), park_over(1);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&] {
        use_every_class(r, sizes, 3);
        used.count_down();
        park_over.wait();  // alive, idle, caches full
      });
    }
    used.wait();
    const auto before = r.stats();
    EXPECT_GT(before.total.upstream_bytes, 0u);
    EXPECT_GT(before.total.cached_bytes, 0u);
    EXPECT_EQ(before.total.thread_caches, static_cast<uint64_t>(kThreads));
    // Two cycles, from a thread of their own.
    std::thread([] {
      syncpool::collect();
      syncpool::collect();
    }).join();
    const auto after = r.stats();
    for (const auto& c : after.classes) {
      if (c.upstream_bytes != 0) {
        ADD_FAILURE() << "class " << c.block_size << " holds " << c.upstream_bytes << " bytes, cached " << c.cached
                      << ", misses " << c.misses;
      }
    }
    EXPECT_EQ(after.total.upstream_bytes, 0u)
        << "bookkeeping " << after.bookkeeping_bytes << ", cached " << after.total.cached << ", thread caches "
        << after.total.thread_caches;
    EXPECT_EQ(after.total.cached, 0u);
    EXPECT_EQ(after.total.thread_caches, 0u);
    EXPECT_EQ(up.live_bytes(), 0u);
    // The parked threads come back to a fresh resource.
    park_over.count_down();
    for (auto& t : threads) t.join();
    use_every_class(r, sizes, 1);
  }
  EXPECT_EQ(up.live_bytes(), 0u);
  EXPECT_TRUE(up.errors().empty());
}

struct alive_counted {
  static std::atomic<long>& alive() {
    static std::atomic<long> n{0};
    return n;
  }
  alive_counted() { alive().fetch_add(1); }
  ~alive_counted() { alive().fetch_sub(1); }
};

TEST(ParkedThreads, ThirtyTwoParkedThreadsKeepNoPooledObjectAfterTwoCollects) {
  if (!membarrier_here()) GTEST_SKIP() << "membarrier() refused here: idle threads are out of reach (documented)";
  constexpr int kThreads = 32;
  syncpool::pool<alive_counted> p([] { return std::make_unique<alive_counted>(); });
  std::latch used(kThreads), park_over(1);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      std::vector<std::unique_ptr<alive_counted>> v;
      for (uint32_t k = 0; k < p.local_capacity(); ++k) v.push_back(p.get());
      for (auto& o : v) p.put(std::move(o));
      used.count_down();
      park_over.wait();
    });
  }
  used.wait();
  EXPECT_EQ(alive_counted::alive().load(), static_cast<long>(kThreads * p.local_capacity()));
  std::thread([] {
    syncpool::collect();
    syncpool::collect();
  }).join();
  EXPECT_EQ(alive_counted::alive().load(), 0) << "objects parked threads still hold";
  EXPECT_EQ(p.stats().cached, 0u);
  park_over.count_down();
  for (auto& t : threads) t.join();
}

TEST(NoHeap, ConstructionAllocatesNothingOfAnyKind) {
  counting_resource up;
  const std::size_t malloc_before = mallinfo2().uordblks;
  t_measuring = true;
  const uint64_t news = g_counted_news.load();
  {
    pool_resource a(&up);
    pool_resource b(std::pmr::pool_options{16, 4096}, &up);
    syncpool::pool_resource_options o;
    o.thread_cache_bytes = 1 << 12;
    pool_resource c(o, &up);
    EXPECT_EQ(g_counted_news.load(), news) << "operator new during construction";
    EXPECT_EQ(mallinfo2().uordblks, malloc_before) << "malloc during construction";
    EXPECT_EQ(up.allocate_calls(), 0u) << "upstream during construction";
  }
  t_measuring = false;
  EXPECT_EQ(up.allocate_calls(), 0u);
}

TEST(NoHeap, OverAMonotonicBufferOnTheStackNothingComesFromTheGlobalHeap) {
  // All of the resource's memory, bookkeeping included, must come from this
  // buffer: the monotonic resource has no upstream to fall back on. (Static
  // rather than on the stack only because 32 MiB would not fit there.)
  alignas(64) static std::byte buffer[32 << 20];
  std::pmr::monotonic_buffer_resource mono(buffer, sizeof buffer, std::pmr::null_memory_resource());
  {
    pool_resource r(&mono);
    const std::vector<std::size_t> sizes = every_class(r);
    // Only the resource's own calls are counted (the test's vectors are
    // set up before).
    auto allocate = [&](std::size_t n) {
      t_measuring = true;
      void* p = r.allocate(n);
      t_measuring = false;
      return p;
    };
    auto deallocate = [&](void* p, std::size_t n) {
      t_measuring = true;
      r.deallocate(p, n);
      t_measuring = false;
    };
    auto work = [&](int seed) {
      std::vector<std::pair<void*, std::size_t>> held, rest;
      held.reserve(sizes.size() * 8);
      rest.reserve(sizes.size() * 8);
      for (int round = 0; round < 4; ++round) {
        for (std::size_t i = 0; i < sizes.size(); ++i) {
          const std::size_t n = sizes[(i * 7 + static_cast<std::size_t>(seed) + round) % sizes.size()] - (i % 3);
          held.emplace_back(allocate(n), n);
        }
        for (std::size_t i = 0; i < held.size(); i += 2) deallocate(held[i].first, held[i].second);
        rest.clear();
        for (std::size_t i = 1; i < held.size(); i += 2) rest.push_back(held[i]);
        held.swap(rest);
      }
      t_measuring = true;
      {
        std::pmr::vector<std::pmr::string> strings(&r);
        for (int i = 0; i < 200; ++i) strings.emplace_back(std::size_t(10 + i), 'x');
      }
      t_measuring = false;
      for (auto& [p, n] : held) deallocate(p, n);
    };
    // The debug checks (--config=debug_checks) keep their records on the
    // global heap, and count those calls: only they may be there.
    auto checker_calls = [] { return syncpool::internal::testing_hooks::checker_heap_calls(); };
    const uint64_t news = g_counted_news.load() - checker_calls();
    std::thread a(work, 1), b(work, 2);
    a.join();
    b.join();
    work(3);
    EXPECT_EQ(g_counted_news.load() - checker_calls(), news) << "global operator new calls";
    t_measuring = true;
    syncpool::collect();
    r.release();
    t_measuring = false;
    EXPECT_EQ(g_counted_news.load() - checker_calls(), news) << "global operator new calls in collect() or release()";
  }
}

// A thread that only frees blocks another thread allocated (a consumer)
// hands them on a batch at a time and keeps no more than one batch per
// class: what it holds serves only the producer, which makes new blocks
// while they sit here. (It kept the newest half of a 64-slot share, 32 to
// 64 blocks per class.)
TEST(CrossThreadFrees, AConsumerKeepsAtMostABatchPerClass) {
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  const std::vector<std::size_t> sizes = {64, 256, 1024, 1536};
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t size : sizes) {
    for (int i = 0; i < 1000; ++i) blocks.emplace_back(r.allocate(size), size);
  }
  const uint64_t misses = r.stats().total.misses;
  std::thread([&] {
    for (auto [p, n] : blocks) r.deallocate(p, n);
    const syncpool::internal::thread_cache* c = syncpool::internal::t_thread.owned;
    ASSERT_NE(c, nullptr);
    uint32_t classes = 0;
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      const auto& cs = c->cls[i];
      if (cs.weight == 0 || (cs.count() == 0 && cs.capacity == 0)) continue;
      ++classes;
      // A batch is half the class's most slots (pool_resource.cc: an eighth
      // of the budget, 2 to 64 blocks); a one-way class holds no more than
      // 4 KiB of it, or 8 blocks (engine.cc: kOneWayBytes).
      const uint64_t slots = std::clamp<uint64_t>(c->budget / (8 * cs.weight), 2, 64);
      const uint64_t most = std::min<uint64_t>(slots / 2, std::max<uint64_t>(4096 / cs.weight, 8));
      EXPECT_LE(cs.count(), most) << "class of " << cs.weight << " B";
      EXPECT_LE(cs.capacity, most) << "class of " << cs.weight << " B";
    }
    EXPECT_EQ(classes, sizes.size());
    expect_consistent_shares(c);
  }).join();
  // Nothing lost (the producer's cache holds a few blocks it carved ahead):
  // the producer gets every block back, and makes none.
  EXPECT_GE(r.stats().total.cached, blocks.size());
  for (auto& [p, n] : blocks) p = r.allocate(n);
  EXPECT_EQ(r.stats().total.misses, misses);
  for (auto [p, n] : blocks) r.deallocate(p, n);
}

TEST(CrossThreadFrees, AConsumerWhoseBudgetGrewStillKeepsAFewKiBPerClass) {
  // The consumer spills again and again, so its budget grows (a larger
  // budget: larger batches, fewer spills); its one-way classes stay small.
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  const std::vector<std::size_t> sizes = {256, 1024};
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (int i = 0; i < 4000; ++i) {
    for (std::size_t size : sizes) blocks.emplace_back(r.allocate(size), size);
  }
  std::thread([&] {
    for (auto [p, n] : blocks) r.deallocate(p, n);
    // (Else this test shows nothing: with the first budget, a batch is
    // already no more than the one-way bound.)
    ASSERT_GT(syncpool::internal::testing_hooks::thread_budget(r), 64u << 10);
    const syncpool::internal::thread_cache* c = syncpool::internal::t_thread.owned;
    ASSERT_NE(c, nullptr);
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      const auto& cs = c->cls[i];
      if (cs.weight == 0) continue;
      // 4 KiB of blocks, or 8 (engine.cc: kOneWayBytes, kOneWayMinItems).
      const uint64_t most = std::max<uint64_t>(4096 / cs.weight, 8);
      EXPECT_LE(cs.count(), most) << "class of " << cs.weight << " B";
      EXPECT_LE(cs.capacity, most) << "class of " << cs.weight << " B";
    }
    expect_consistent_shares(c);
  }).join();
  const uint64_t misses = r.stats().total.misses;
  for (auto& [p, n] : blocks) p = r.allocate(n);
  EXPECT_EQ(r.stats().total.misses, misses);  // every block came back
  for (auto [p, n] : blocks) r.deallocate(p, n);
}

// Allocates `n` blocks of `size` here and frees them on a thread of their
// own, which then runs `after` (its cache still alive).
template <class F>
void freed_by_another_thread(pool_resource& r, std::size_t size, int n, F after) {
  std::vector<void*> blocks;
  for (int i = 0; i < n; ++i) blocks.push_back(r.allocate(size));
  std::thread([&] {
    for (void* p : blocks) r.deallocate(p, size);
    after();
  }).join();
}

TEST(CrossThreadFrees, AConsumerAtItsOneWayBoundDoesNotGrowItsBudget) {
  // 256-byte blocks: at the first budget (64 KiB) a batch is 16 blocks,
  // already the one-way bound (4 KiB), so a larger budget would buy the
  // consumer nothing, and take from the growth its resource's threads share.
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  freed_by_another_thread(r, 256, 8000, [&] {
    EXPECT_EQ(syncpool::internal::testing_hooks::thread_budget(r), 64u << 10);
  });
  EXPECT_EQ(syncpool::internal::testing_hooks::growth_granted(r), 0u);
}

TEST(CrossThreadFrees, AThreadThatNeedsAFewBlocksTakesAFewFromTheDepot) {
  // A worker that lives for a few blocks of a class (a thread per task)
  // takes a few of the depot's blocks into its cache, not a batch: the
  // rest serve the other threads, and its arrays stay small.
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  freed_by_another_thread(r, 64, 256, [] {});  // its cache goes to the depot at exit
  std::thread([&] {
    const uint64_t misses = r.stats().total.misses;
    void* p = r.allocate(64);
    EXPECT_EQ(r.stats().total.misses, misses);  // from the depot, not made anew
    const syncpool::internal::thread_cache* c = syncpool::internal::t_thread.owned;
    ASSERT_NE(c, nullptr);
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      EXPECT_LE(c->cls[i].capacity, 4u);
      EXPECT_LE(c->cls[i].count(), 4u);
    }
    expect_consistent_shares(c);
    // The next refills double it (up to a batch).
    std::vector<void*> more;
    for (int i = 0; i < 40; ++i) more.push_back(r.allocate(64));
    uint32_t most = 0;
    for (uint32_t i = 0; i < c->nclasses; ++i) most = std::max<uint32_t>(most, c->cls[i].capacity);
    EXPECT_GE(most, 16u);
    for (void* q : more) r.deallocate(q, 64);
    r.deallocate(p, 64);
  }).join();
}

TEST(CrossThreadFrees, AProducerTakesItsConsumersBatchesWholeInOneTrip) {
  // 1 KiB blocks: a consumer whose budget grew spills them 8 at a time (its
  // one-way bound), while the producer, at its first budget, would take 4
  // (its own batch, half its 8-block share): two depot trips a batch.
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  constexpr int kBlocks = 8000;
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i) blocks.push_back(r.allocate(1024));
  std::thread([&] {
    for (void* p : blocks) r.deallocate(p, 1024);
    ASSERT_GT(syncpool::internal::testing_hooks::thread_budget(r), 64u << 10);
  }).join();
  ASSERT_EQ(syncpool::internal::testing_hooks::thread_budget(r), 64u << 10);
  const auto before = r.stats().total;
  for (void*& p : blocks) p = r.allocate(1024);
  const auto after = r.stats().total;
  EXPECT_EQ(after.misses, before.misses);  // every block came back
  // About one trip per batch of 8 (the consumer's first spills, before its
  // budget grew, were smaller; at a room of 4, 2,000 trips).
  EXPECT_LE(after.stolen - before.stolen, uint64_t{kBlocks / 8 + kBlocks / 64});
  for (void* p : blocks) r.deallocate(p, 1024);
}

TEST(CrossThreadFrees, BatchesAProducerEmptiesGoBackToItsConsumersSpills) {
  // In lockstep, a consumer frees what its producer made a moment before:
  // each batch the producer empties must be one the consumer's next spill
  // can fill, through the class's spares. Here the producer's budget grew
  // first (its own batches of 1 KiB blocks are larger than the consumer's
  // one-way ones), and the batches it emptied used to go to its own spares
  // or back to the arena, where the consumer's spills did not find them:
  // each spill asked the bookkeeping arena for a new one.
  counting_resource up;
  pool_resource r(&up);
  syncpool::internal::testing_hooks::end_young_phase(r);
  constexpr int kRound = 16;
  std::vector<void*> made(kRound);
  std::barrier sync(2);
  std::thread consumer([&] {
    for (int round = 0; round < 800; ++round) {
      sync.arrive_and_wait();  // the producer made a round
      for (void* p : made) r.deallocate(p, 1024);
      sync.arrive_and_wait();
    }
  });
  std::thread([&] {
    std::vector<void*> own(256);
    for (int i = 0; i < 64; ++i) {
      for (void*& p : own) p = r.allocate(1024);
      for (void* p : own) r.deallocate(p, 1024);
    }
    // (An ASSERT here would leave the consumer at the barrier.)
    EXPECT_GT(syncpool::internal::testing_hooks::thread_budget(r), 64u << 10);
    uint32_t arena = 0;
    for (int round = 0; round < 800; ++round) {
      // (The first rounds use up what the producer's own cache holds.)
      if (round == 100) arena = syncpool::internal::testing_hooks::arena_allocations(r);
      for (void*& p : made) p = r.allocate(1024);
      sync.arrive_and_wait();
      sync.arrive_and_wait();  // the consumer freed them
    }
    // 700 rounds, 11,200 blocks, 1,400 spills of 8: a handful of batches.
    EXPECT_LE(syncpool::internal::testing_hooks::arena_allocations(r) - arena, 16u);
  }).join();
  consumer.join();
}

TEST(Budget, AThreadCachesAtMostItsBudgetAllClassesTogether) {
  counting_resource up;
  syncpool::pool_resource_options o;
  o.thread_cache_bytes = 16 << 10;
  pool_resource r(o, &up);
  EXPECT_EQ(r.thread_cache_bytes(), 16u << 10);
  const std::vector<std::size_t> sizes = every_class(r);
  std::thread([&] {
    use_every_class(r, sizes, 8);
    // And some small blocks last, so that the cache holds something.
    use_every_class(r, {64, 128}, 8);
    // Everything this thread freed beyond its budget went to the shared
    // depots; what it keeps for itself fits in 16 KiB.
    uint64_t own = 0;
    using namespace syncpool::internal;
    for (const thread_cache* c = t_thread.owned; c != nullptr; c = c->tnext) {
      uint64_t held = 0;
      for (uint32_t i = 0; i < c->nclasses; ++i) held += uint64_t{c->cls[i].count()} * c->cls[i].weight;
      // What the slots hold is within the classes' shares, and the shares
      // within the budget.
      EXPECT_LE(held, c->reserved);
      expect_consistent_shares(c);
      own += held;
    }
    EXPECT_LE(own, 16u << 10);
    EXPECT_GT(own, 0u);
    EXPECT_GT(r.stats().total.cached_bytes, own);  // the rest is in the depots
  }).join();
}

TEST(Budget, AClassFreedAfterOthersFilledTheBudgetStillKeepsAFewBlocks) {
  // The budget is shared out as the classes' room (what the fast paths
  // check). Classes that took all of it must not leave a class used later
  // without slots: it takes a few from them.
  syncpool::pool_resource_options o;
  o.thread_cache_bytes = 16 << 10;
  pool_resource r(o);
  const std::vector<std::size_t> sizes = every_class(r);
  std::thread([&] {
    const syncpool::internal::thread_cache* c = fill_with_medium_classes(r, sizes);
    ASSERT_NE(c, nullptr);
    // Now the smallest class (of 16 B or more: smaller requests round up
    // to 16 at the default alignment) that has no room for four blocks
    // left: its four blocks stay in its slots.
    std::size_t small = 0;
    for (std::size_t size : sizes) {
      if (size >= 16 && c->reserved + 4 * size > c->budget) {
        small = size;
        break;
      }
    }
    ASSERT_NE(small, 0u);
    ASSERT_LT(small, 256u) << "the medium classes left much room: " << c->budget - c->reserved;
    void* p[4];
    for (void*& q : p) q = r.allocate(small);
    for (void* q : p) r.deallocate(q, small);
    uint32_t small_count = 0;
    uint64_t held = 0;
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      held += uint64_t{c->cls[i].count()} * c->cls[i].weight;
      if (c->cls[i].weight == small) small_count = c->cls[i].count();
    }
    EXPECT_GE(small_count, 4u);
    EXPECT_LE(held, c->reserved);
    expect_consistent_shares(c);
    // And they come back from there, newest first.
    for (int i = 3; i >= 0; --i) EXPECT_EQ(r.allocate(small), p[i]);
    for (void* q : p) r.deallocate(q, small);
  }).join();
}

TEST(Budget, AHeavyClassTakesOnlyTheRoomItNeedsFromTheOthers) {
  // A block of over a quarter of the budget still gets a slot when the
  // others hold all of it, but the others keep what it does not need (it
  // used to take room for two blocks, and down to three quarters of the
  // budget: every other class spilled everything).
  syncpool::pool_resource_options o;
  o.thread_cache_bytes = 64 << 10;
  pool_resource r(o);
  const std::vector<std::size_t> sizes = every_class(r);
  std::size_t heavy = 0;
  for (std::size_t size : sizes) {
    if (size > (20u << 10) && size <= (28u << 10)) heavy = size;
  }
  ASSERT_NE(heavy, 0u);
  std::thread([&] {
    const syncpool::internal::thread_cache* c = fill_with_medium_classes(r, sizes);
    ASSERT_NE(c, nullptr);
    ASSERT_GT(c->reserved + heavy, c->budget) << "the medium classes left room for the heavy block";
    r.deallocate(r.allocate(heavy), heavy);
    uint64_t medium_held = 0;
    uint32_t heavy_count = 0;
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      if (c->cls[i].weight == heavy) {
        heavy_count = c->cls[i].count();
      } else {
        medium_held += uint64_t{c->cls[i].count()} * c->cls[i].weight;
      }
    }
    EXPECT_EQ(heavy_count, 1u);
    // What is left once the heavy block has its room: the medium classes
    // keep at least a third of the budget.
    EXPECT_GE(medium_held, c->budget / 3);
    expect_consistent_shares(c);
    // A flush gives back the blocks and the shares.
    syncpool::flush_thread_cache();
    EXPECT_EQ(c->reserved, 0u);
    expect_consistent_shares(c);
  }).join();
}

}  // namespace
