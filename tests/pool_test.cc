// Tests of syncpool::pool<T>, syncpool::collect(), syncpool::collector and
// syncpool::flush_thread_cache().
//
//   ./bazelw test //tests:pool_test
//   ./bazelw test --config=asan //tests:pool_test
//   ./bazelw test --config=tsan //tests:pool_test
//
// No test reads a clock to judge speed. The collector tests poll for an
// outcome under a generous deadline, and two tests that would otherwise hang
// forever on a deadlock use a watchdog.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool.h"

namespace {

// Runs syncpool::collect() in a loop on its own thread until stop().
class collect_in_background {
 public:
  collect_in_background()
      : thread_([this] {
          while (!stop_.load()) {
            syncpool::collect();
            std::this_thread::yield();
          }
        }) {}
  ~collect_in_background() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

using namespace std::chrono_literals;

// Sanitizers make every operation 5-20x slower; the concurrent tests do fewer
// iterations there so the whole file stays fast.
#if defined(__SANITIZE_THREAD__)
constexpr int kSlowdown = 2;
#else
constexpr int kSlowdown = 1;
#endif

// ---------------------------------------------------------------------------
// Objects that count their constructions and destructions.

struct counters {
  std::atomic<int64_t> constructed{0};
  std::atomic<int64_t> destroyed{0};
};

struct tracked {
  explicit tracked(counters* c, int t = 0) : owner(c), tag(t) { owner->constructed.fetch_add(1); }
  ~tracked() { owner->destroyed.fetch_add(1); }
  tracked(const tracked&) = delete;
  tracked& operator=(const tracked&) = delete;

  counters* const owner;
  int tag;
  int value = 0;
};

using tracked_pool = syncpool::pool<tracked>;

// A factory making tracked objects with `tag`, counting its calls in `calls`.
auto factory_for(counters& c, std::atomic<int>* calls = nullptr, int tag = 0) {
  return [&c, calls, tag] {
    if (calls != nullptr) calls->fetch_add(1);
    return std::make_unique<tracked>(&c, tag);
  };
}

template <class T>
syncpool::pool_options<T> with_capacity(uint32_t local_capacity) {
  syncpool::pool_options<T> o;
  o.local_capacity = local_capacity;
  return o;
}

// Takes everything a pool without factory hands out until it is empty.
std::vector<std::unique_ptr<tracked>> drain_pool(tracked_pool& p, size_t limit = 100000) {
  std::vector<std::unique_ptr<tracked>> out;
  while (out.size() < limit) {
    std::unique_ptr<tracked> o = p.get();
    if (o == nullptr) break;
    out.push_back(std::move(o));
  }
  return out;
}

std::set<tracked*> pointers_of(const std::vector<std::unique_ptr<tracked>>& v) {
  std::set<tracked*> s;
  for (const auto& o : v) s.insert(o.get());
  return s;
}

// Polls `done` until it holds, sleeping 1 ms between tries, at most 60,000
// tries (far more than any machine needs; a liveness check, not a speed
// check, so it counts tries rather than reading a clock).
template <class Pred>
bool eventually(Pred done) {
  for (int tries = 0; tries < 60000; ++tries) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

// ---------------------------------------------------------------------------
// get / put basics

TEST(PoolTest, PutThenGetReturnsSameObjectOnOneThread) {
  counters c;
  tracked_pool p(factory_for(c));
  std::unique_ptr<tracked> o = p.get();
  ASSERT_NE(o, nullptr);
  tracked* raw = o.get();
  p.put(std::move(o));
  std::unique_ptr<tracked> again = p.get();
  EXPECT_EQ(again.get(), raw);
  EXPECT_EQ(c.constructed.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(PoolTest, ManyPutsThenGetsReturnTheSameObjects) {
  counters c;
  tracked_pool p;
  std::vector<std::unique_ptr<tracked>> objs;
  for (int i = 0; i < 50; ++i) objs.push_back(std::make_unique<tracked>(&c, i));
  const std::set<tracked*> put_ptrs = pointers_of(objs);
  for (auto& o : objs) p.put(std::move(o));
  EXPECT_EQ(p.stats().cached, 50u);
  auto back = drain_pool(p);
  EXPECT_EQ(pointers_of(back), put_ptrs);
  EXPECT_EQ(p.stats().cached, 0u);
  EXPECT_EQ(c.constructed.load(), 50);
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(PoolTest, GetWithoutFactoryOnEmptyPoolReturnsNull) {
  tracked_pool p;
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_EQ(p.stats().misses, 2u);
  syncpool::pool<int> q(with_capacity<int>(3));
  EXPECT_EQ(q.get(), nullptr);
  EXPECT_EQ(q.local_capacity(), 3u);
}

TEST(PoolTest, PutNullptrIsIgnored) {
  std::atomic<int> resets{0};
  std::atomic<int> retain_calls{0};
  tracked_pool p(syncpool::pool_options<tracked>{
      .reset = [&](tracked&) { resets.fetch_add(1); },
      .retain_if = [&](const tracked&) { retain_calls.fetch_add(1); return true; }});
  p.put(nullptr);
  p.put(std::unique_ptr<tracked>());
  EXPECT_EQ(p.stats().cached, 0u);
  EXPECT_EQ(p.get(), nullptr);
  EXPECT_EQ(resets.load(), 0);
  EXPECT_EQ(retain_calls.load(), 0);
}

// (A capacity of 0 or above the maximum throws: pool_api_test.)
TEST(PoolTest, LocalCapacityOfOneStillCachesEverything) {
  tracked_pool one(with_capacity<tracked>(1));
  EXPECT_EQ(one.local_capacity(), 1u);
  tracked_pool dflt;
  EXPECT_EQ(dflt.local_capacity(), 8u);
  counters c;
  for (int i = 0; i < 10; ++i) one.put(std::make_unique<tracked>(&c, i));
  EXPECT_EQ(drain_pool(one).size(), 10u);
}

TEST(PoolTest, FactoryCalledOnlyWhenEmpty) {
  counters c;
  std::atomic<int> calls{0};
  tracked_pool p(factory_for(c, &calls));
  auto a = p.get();
  auto b = p.get();
  EXPECT_EQ(calls.load(), 2);
  p.put(std::move(a));
  p.put(std::move(b));
  auto x = p.get();
  auto y = p.get();
  EXPECT_EQ(calls.load(), 2);  // both came from the cache
  auto z = p.get();
  EXPECT_EQ(calls.load(), 3);  // cache empty again
  EXPECT_NE(x, nullptr);
  EXPECT_NE(y, nullptr);
  EXPECT_NE(z, nullptr);
  for (int round = 0; round < 100; ++round) {
    p.put(std::move(x));
    x = p.get();
  }
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(c.constructed.load(), 3);
}

TEST(PoolTest, FactoryMayReturnNullOrThrow) {
  bool fail = true;
  syncpool::pool<int> nulls([] { return std::unique_ptr<int>(); });
  EXPECT_EQ(nulls.get(), nullptr);
  syncpool::pool<int> throwing([&fail]() -> std::unique_ptr<int> {
    if (fail) throw std::runtime_error("no");
    return std::make_unique<int>(5);
  });
  EXPECT_THROW(throwing.get(), std::runtime_error);
  fail = false;
  auto v = throwing.get();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 5);
  throwing.put(std::move(v));
  EXPECT_EQ(throwing.stats().cached, 1u);
}

// ---------------------------------------------------------------------------
// collect() and the victim generation

TEST(PoolTest, VictimSurvivesOneCollectButNotTwo) {
  counters c;
  std::atomic<int> calls{0};
  tracked_pool p(factory_for(c, &calls));
  std::unique_ptr<tracked> o = p.get();
  tracked* raw = o.get();
  p.put(std::move(o));

  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 0);
  EXPECT_EQ(p.stats().cached, 1u);
  const uint64_t victim_hits = p.stats().victim_hits;
  std::unique_ptr<tracked> again = p.get();
  EXPECT_EQ(again.get(), raw);
  EXPECT_EQ(p.stats().victim_hits, victim_hits + 1);
  EXPECT_EQ(calls.load(), 1);

  p.put(std::move(again));
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 0);
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 1);
  EXPECT_EQ(p.stats().cached, 0u);
  std::unique_ptr<tracked> fresh = p.get();
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(c.constructed.load(), 2);
}

TEST(PoolTest, CollectAgesObjectsInEveryTierOfTheCallingThread) {
  counters c;
  tracked_pool p;
  // 40 puts with capacity 8: most spill to the shared queue, 8 stay private.
  for (int i = 0; i < 40; ++i) p.put(std::make_unique<tracked>(&c, i));
  EXPECT_EQ(p.stats().cached, 40u);
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 0);
  EXPECT_EQ(p.stats().cached, 40u);
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 40);
  EXPECT_EQ(p.stats().cached, 0u);
  EXPECT_EQ(p.get(), nullptr);
}

TEST(PoolTest, GetRenewsAVictimSoItSurvivesAnotherCycle) {
  counters c;
  tracked_pool p;
  p.put(std::make_unique<tracked>(&c));
  for (int cycle = 0; cycle < 10; ++cycle) {
    syncpool::collect();
    auto o = p.get();
    ASSERT_NE(o, nullptr) << "cycle " << cycle;
    p.put(std::move(o));
  }
  EXPECT_EQ(c.constructed.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 0);
}

// ---------------------------------------------------------------------------
// Other threads: exited, idle, flushed

TEST(PoolTest, ObjectsOfAnExitedThreadAreStolen) {
  counters c;
  tracked_pool p;
  std::set<tracked*> put_ptrs;
  std::thread t([&] {
    for (int i = 0; i < 20; ++i) {
      auto o = std::make_unique<tracked>(&c, i);
      put_ptrs.insert(o.get());
      p.put(std::move(o));
    }
  });
  t.join();
  EXPECT_EQ(p.stats().cached, 20u);
  auto got = drain_pool(p);
  EXPECT_EQ(pointers_of(got), put_ptrs);
  const syncpool::pool_stats s = p.stats();
  EXPECT_GT(s.stolen, 0u);
  EXPECT_EQ(s.victim_hits, 0u);
  EXPECT_EQ(s.misses, 1u);  // the last get(), which found nothing
  EXPECT_EQ(s.cached, 0u);
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(PoolTest, ObjectsOfAnExitedThreadAreDestroyedByTwoCollects) {
  counters c;
  tracked_pool p;
  std::thread t([&] {
    for (int i = 0; i < 20; ++i) p.put(std::make_unique<tracked>(&c, i));
  });
  t.join();
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 0);
  EXPECT_EQ(p.stats().cached, 20u);
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 20);
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
  EXPECT_EQ(p.stats().cached, 0u);
}

TEST(PoolTest, StealsFromAnIdleThread) {
  counters c;
  std::atomic<int> calls{0};
  tracked_pool p(factory_for(c, &calls));
  constexpr int kPut = 64;
  const int capacity = static_cast<int>(p.local_capacity());
  ASSERT_LT(capacity, kPut);
  std::set<tracked*> put_ptrs;
  std::latch filled(1);
  std::latch release(1);
  std::thread a([&] {
    for (int i = 0; i < kPut; ++i) {
      auto o = std::make_unique<tracked>(&c, 1);
      put_ptrs.insert(o.get());
      p.put(std::move(o));
    }
    filled.count_down();
    release.wait();  // alive, but not using the pool
  });
  filled.wait();
  // Only A's private cache (at most local_capacity objects) is out of reach.
  std::vector<std::unique_ptr<tracked>> got;
  for (int i = 0; i < kPut - capacity; ++i) got.push_back(p.get());
  EXPECT_EQ(calls.load(), 0);
  for (const auto& o : got) EXPECT_TRUE(put_ptrs.count(o.get())) << "not one of A's objects";
  EXPECT_EQ(pointers_of(got).size(), got.size());  // all distinct
  EXPECT_GT(p.stats().stolen, 0u);
  release.count_down();
  a.join();
  // A exited: its private objects are reachable now too.
  for (int i = 0; i < capacity; ++i) got.push_back(p.get());
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(pointers_of(got), put_ptrs);
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(PoolTest, FlushThreadCacheLetsOtherThreadsSteal) {
  counters c;
  tracked_pool p;
  std::set<tracked*> put_ptrs;
  std::latch put_done(1), flush_now(1), flushed(1), release(1);
  std::thread a([&] {
    for (int i = 0; i < 4; ++i) {  // fewer than local_capacity: all private
      auto o = std::make_unique<tracked>(&c, i);
      put_ptrs.insert(o.get());
      p.put(std::move(o));
    }
    put_done.count_down();
    flush_now.wait();
    syncpool::flush_thread_cache();
    flushed.count_down();
    release.wait();
  });
  put_done.wait();
  EXPECT_EQ(p.get(), nullptr);  // private to A
  flush_now.count_down();
  flushed.wait();
  const uint64_t stolen = p.stats().stolen;
  auto got = drain_pool(p);
  EXPECT_EQ(pointers_of(got), put_ptrs);
  EXPECT_GT(p.stats().stolen, stolen);
  release.count_down();
  a.join();
  EXPECT_EQ(c.destroyed.load(), 0);
}

TEST(PoolTest, FlushedIdleThreadObjectsAreDestroyedByTwoCollects) {
  counters c;
  tracked_pool p;
  std::latch flushed(1), release(1);
  std::thread a([&] {
    for (int i = 0; i < 5; ++i) p.put(std::make_unique<tracked>(&c, i));
    syncpool::flush_thread_cache();
    flushed.count_down();
    release.wait();
  });
  flushed.wait();
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 0);
  syncpool::collect();
  EXPECT_EQ(c.destroyed.load(), 5);
  release.count_down();
  a.join();
}

// A live thread's private cache is aged when the thread next uses the pool:
// after `cycles` collects while it was idle.
struct private_cache_aging {
  int64_t destroyed_while_idle = -1;
  int64_t destroyed_after_use = -1;
  bool got_object = false;
  uint64_t victim_hits = 0;
};

private_cache_aging age_private_cache(int cycles) {
  counters c;
  tracked_pool p;
  private_cache_aging out;
  std::latch filled(1), collected(1);
  std::thread a([&] {
    for (int i = 0; i < 3; ++i) p.put(std::make_unique<tracked>(&c, i));  // private
    filled.count_down();
    collected.wait();
    const uint64_t victim_hits = p.stats().victim_hits;
    std::unique_ptr<tracked> o = p.get();
    out.got_object = (o != nullptr);
    out.victim_hits = p.stats().victim_hits - victim_hits;
    out.destroyed_after_use = c.destroyed.load();
  });
  filled.wait();
  for (int i = 0; i < cycles; ++i) syncpool::collect();
  out.destroyed_while_idle = c.destroyed.load();
  collected.count_down();
  a.join();
  return out;
}

TEST(PoolTest, IdleThreadsPrivateObjectsMissingOneCycleBecomeVictims) {
  const private_cache_aging r = age_private_cache(1);
  EXPECT_EQ(r.destroyed_while_idle, 0);
  EXPECT_EQ(r.destroyed_after_use, 0);
  EXPECT_TRUE(r.got_object);  // from the victim generation
  EXPECT_EQ(r.victim_hits, 1u);
}

TEST(PoolTest, IdleThreadsPrivateObjectsMissingTwoCyclesAreDestroyedWhileIdle) {
  if (!syncpool::internal::asymmetric_fence_available()) GTEST_SKIP() << "no membarrier() here";
  const private_cache_aging r = age_private_cache(2);
  EXPECT_EQ(r.destroyed_while_idle, 3);  // the collector reached the idle thread's cache
  EXPECT_EQ(r.destroyed_after_use, 3);
  EXPECT_FALSE(r.got_object);
}

// Where membarrier() is refused, a collector cannot take an idle thread's
// cache: the owner ages it itself on its next call.
class without_membarrier {
 public:
  without_membarrier() { syncpool::internal::testing_hooks::pretend_no_membarrier(true); }
  ~without_membarrier() { syncpool::internal::testing_hooks::pretend_no_membarrier(false); }
};

TEST(PoolTest, WithoutMembarrierIdleThreadsObjectsMissingOneCycleBecomeVictimsOnNextUse) {
  without_membarrier fallback;
  const private_cache_aging r = age_private_cache(1);
  EXPECT_EQ(r.destroyed_while_idle, 0);
  EXPECT_EQ(r.destroyed_after_use, 0);
  EXPECT_TRUE(r.got_object);  // from the victim generation
  EXPECT_EQ(r.victim_hits, 1u);
}

TEST(PoolTest, WithoutMembarrierIdleThreadsObjectsMissingTwoCyclesAreDestroyedOnNextUse) {
  without_membarrier fallback;
  const private_cache_aging r = age_private_cache(2);
  EXPECT_EQ(r.destroyed_while_idle, 0);  // out of the collector's reach
  EXPECT_EQ(r.destroyed_after_use, 3);   // destroyed, not handed out
  EXPECT_FALSE(r.got_object);
}

TEST(PoolTest, StatsSayWhetherIdleThreadsAreReachable) {
  tracked_pool p;
  EXPECT_EQ(p.stats().idle_threads_reachable, syncpool::internal::asymmetric_fence_available());
  without_membarrier fallback;
  EXPECT_FALSE(p.stats().idle_threads_reachable);
}

// ---------------------------------------------------------------------------
// Destruction of the pool, thread exit

TEST(PoolTest, DestroyingThePoolDestroysEverythingItCaches) {
  counters c;
  auto p = std::make_unique<tracked_pool>(factory_for(c));
  // The main thread: 20 objects that become victims, then 5 private ones.
  {
    std::vector<std::unique_ptr<tracked>> v;
    for (int i = 0; i < 20; ++i) v.push_back(p->get());
    for (auto& o : v) p->put(std::move(o));
  }
  syncpool::collect();
  for (int i = 0; i < 5; ++i) p->put(std::make_unique<tracked>(&c));
  // An exited thread's objects.
  std::thread exited([&] {
    for (int i = 0; i < 20; ++i) p->put(std::make_unique<tracked>(&c));
  });
  exited.join();
  // A live, idle thread with objects in its private cache and shared queue.
  std::latch filled(1), release(1);
  std::thread idle([&] {
    for (int i = 0; i < 30; ++i) p->put(std::make_unique<tracked>(&c));
    filled.count_down();
    release.wait();
  });
  filled.wait();
  EXPECT_EQ(c.constructed.load(), 75);
  EXPECT_EQ(c.destroyed.load(), 0);
  EXPECT_EQ(p->stats().cached, 75u);
  p.reset();
  EXPECT_EQ(c.destroyed.load(), 75);
  release.count_down();
  idle.join();
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

TEST(PoolTest, ThreadThatUsedAPoolExitsAfterThePoolIsDestroyed) {
  counters c;
  auto p = std::make_unique<tracked_pool>(factory_for(c));
  std::latch filled(1), release(1);
  std::thread t([&] {
    std::vector<std::unique_ptr<tracked>> v;
    for (int i = 0; i < 20; ++i) v.push_back(p->get());
    for (auto& o : v) p->put(std::move(o));
    filled.count_down();
    release.wait();
    // The pool is gone; these must not touch it.
    syncpool::flush_thread_cache();
    syncpool::collect();
  });
  filled.wait();
  p.reset();
  EXPECT_EQ(c.destroyed.load(), 20);
  release.count_down();
  t.join();  // LSan checks that the thread's leftover record was freed
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

TEST(PoolTest, ThreadExitsWhileThePoolLives) {
  counters c;
  {
    tracked_pool p(factory_for(c));
    std::thread t([&] {
      std::vector<std::unique_ptr<tracked>> v;
      for (int i = 0; i < 20; ++i) v.push_back(p.get());
      for (auto& o : v) p.put(std::move(o));
    });
    t.join();
    EXPECT_EQ(p.stats().cached, 20u);
    EXPECT_EQ(p.stats().misses, 20u);  // the exited thread's counters are kept
    EXPECT_EQ(c.destroyed.load(), 0);
  }
  EXPECT_EQ(c.destroyed.load(), 20);
}

// ---------------------------------------------------------------------------
// Options: retain_if, reset

TEST(PoolTest, RetainIfRejectsObject) {
  counters c;
  std::atomic<int> calls{0};
  tracked_pool p(factory_for(c, &calls),
                 {.reset = {}, .retain_if = [](const tracked& t) { return t.value < 100; }});
  auto big = p.get();
  big->value = 1000;
  p.put(std::move(big));
  EXPECT_EQ(c.destroyed.load(), 1);  // destroyed by put itself
  EXPECT_EQ(p.stats().cached, 0u);
  auto next = p.get();
  EXPECT_EQ(calls.load(), 2);  // the rejected object never came back
  EXPECT_EQ(next->value, 0);

  next->value = 5;  // accepted
  tracked* raw = next.get();
  p.put(std::move(next));
  EXPECT_EQ(p.stats().cached, 1u);
  auto kept = p.get();
  EXPECT_EQ(kept.get(), raw);
  EXPECT_EQ(kept->value, 5);
  EXPECT_EQ(calls.load(), 2);
}

TEST(PoolTest, ResetHookRunsOnPut) {
  counters c;
  std::atomic<int> resets{0};
  tracked_pool p(factory_for(c), {.reset =
                                      [&](tracked& t) {
                                        resets.fetch_add(1);
                                        t.value = 0;
                                      },
                                  .retain_if = [](const tracked& t) { return t.value >= 0; }});
  auto o = p.get();
  o->value = 42;
  tracked* raw = o.get();
  p.put(std::move(o));
  EXPECT_EQ(resets.load(), 1);
  auto again = p.get();
  EXPECT_EQ(again.get(), raw);
  EXPECT_EQ(again->value, 0);
  // A rejected object is not reset: it is destroyed.
  again->value = -1;
  p.put(std::move(again));
  EXPECT_EQ(resets.load(), 1);
  EXPECT_EQ(c.destroyed.load(), 1);
}

// ---------------------------------------------------------------------------
// lease

TEST(PoolTest, LeasePutsBackOnScopeExit) {
  counters c;
  std::atomic<int> calls{0};
  tracked_pool p(factory_for(c, &calls));
  tracked* raw = nullptr;
  {
    auto l = p.borrow();
    ASSERT_TRUE(l);
    raw = l.get();
    l->value = 7;
    EXPECT_EQ((*l).value, 7);
    EXPECT_EQ(p.stats().cached, 0u);
  }
  EXPECT_EQ(p.stats().cached, 1u);
  auto o = p.get();
  EXPECT_EQ(o.get(), raw);
  EXPECT_EQ(o->value, 7);
  EXPECT_EQ(calls.load(), 1);
}

TEST(PoolTest, LeaseResetPutsBackNow) {
  counters c;
  tracked_pool p(factory_for(c));
  auto l = p.borrow();
  tracked* raw = l.get();
  l.reset();
  EXPECT_FALSE(l);
  EXPECT_EQ(l.get(), nullptr);
  EXPECT_EQ(p.stats().cached, 1u);
  l.reset();  // no-op on an empty lease
  EXPECT_EQ(p.stats().cached, 1u);
  EXPECT_EQ(p.get().get(), raw);
}

TEST(PoolTest, LeaseReleaseKeepsObjectOut) {
  counters c;
  tracked_pool p(factory_for(c));
  std::unique_ptr<tracked> owned;
  {
    auto l = p.borrow();
    tracked* raw = l.get();
    owned = l.release();
    EXPECT_EQ(owned.get(), raw);
    EXPECT_FALSE(l);
  }
  EXPECT_EQ(p.stats().cached, 0u);
  EXPECT_EQ(c.destroyed.load(), 0);
  ASSERT_NE(owned, nullptr);
  owned.reset();
  EXPECT_EQ(c.destroyed.load(), 1);
}

TEST(PoolTest, MovedFromLeaseIsEmpty) {
  counters c;
  tracked_pool p(factory_for(c));
  tracked_pool::lease b;
  EXPECT_FALSE(b);  // default-constructed
  {
    auto a = p.borrow();
    tracked* raw = a.get();
    b = std::move(a);
    EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): the point of the test
    EXPECT_EQ(a.get(), nullptr);
    EXPECT_EQ(b.get(), raw);
    auto c2 = std::move(b);
    EXPECT_FALSE(b);
    EXPECT_EQ(c2.get(), raw);
    b = std::move(c2);
  }
  EXPECT_EQ(p.stats().cached, 0u);  // only `b` holds it
  EXPECT_TRUE(b);
  // Move-assigning over a full lease puts its old object back.
  auto other = p.borrow();
  tracked* old = b.get();
  b = std::move(other);
  EXPECT_EQ(p.stats().cached, 1u);
  b.reset();
  EXPECT_EQ(p.stats().cached, 2u);
  auto x = p.get();
  auto y = p.get();
  EXPECT_TRUE(x.get() == old || y.get() == old);
  EXPECT_EQ(c.constructed.load(), 2);
}

TEST(PoolTest, BorrowWithoutFactoryOnEmptyPoolGivesEmptyLease) {
  tracked_pool p;
  {
    auto l = p.borrow();
    EXPECT_FALSE(l);
    EXPECT_EQ(l.get(), nullptr);
  }
  EXPECT_EQ(p.stats().cached, 0u);
  counters c;
  p.put(std::make_unique<tracked>(&c));
  auto l = p.borrow();
  EXPECT_TRUE(l);
}

// ---------------------------------------------------------------------------
// collector

TEST(CollectorTest, DestroysIdleObjects) {
  counters c;
  tracked_pool p;
  std::thread t([&] {
    for (int i = 0; i < 10; ++i) p.put(std::make_unique<tracked>(&c));
  });
  t.join();
  for (int i = 0; i < 3; ++i) p.put(std::make_unique<tracked>(&c));
  syncpool::flush_thread_cache();  // so the collector's thread can reach them
  syncpool::collector gc(5ms);
  EXPECT_TRUE(eventually([&] { return gc.cycles() >= 2 && c.destroyed.load() == 13; }))
      << "cycles=" << gc.cycles() << " destroyed=" << c.destroyed.load();
  EXPECT_EQ(p.stats().cached, 0u);
}

TEST(CollectorTest, DestructorStopsItPromptly) {
  // With a one-day interval, a destructor that waited for the interval would
  // hang the test.
  { syncpool::collector gc(std::chrono::hours(24)); }
  syncpool::collector gc(1ms);
  EXPECT_TRUE(eventually([&] { return gc.cycles() >= 3; }));
}

TEST(CollectorTest, NonPositiveIntervalThrows) {
  EXPECT_THROW({ syncpool::collector gc(std::chrono::nanoseconds(0)); }, std::invalid_argument);
  EXPECT_THROW({ syncpool::collector gc(-1ms); }, std::invalid_argument);
}

// ---------------------------------------------------------------------------
// stats()

TEST(PoolTest, StatsFollowAScriptedSequence) {
  counters c;
  tracked_pool p(factory_for(c));
  auto expect = [&p](uint64_t local, uint64_t stolen, uint64_t victim, uint64_t misses,
                     uint64_t cached, int line) {
    const syncpool::pool_stats s = p.stats();
    EXPECT_EQ(s.local_hits, local) << "line " << line;
    EXPECT_EQ(s.stolen, stolen) << "line " << line;
    EXPECT_EQ(s.victim_hits, victim) << "line " << line;
    EXPECT_EQ(s.misses, misses) << "line " << line;
    EXPECT_EQ(s.cached, cached) << "line " << line;
  };
  expect(0, 0, 0, 0, 0, __LINE__);
  auto a = p.get();
  auto b = p.get();
  expect(0, 0, 0, 2, 0, __LINE__);
  p.put(std::move(a));
  p.put(std::move(b));
  expect(0, 0, 0, 2, 2, __LINE__);
  b = p.get();
  expect(1, 0, 0, 2, 1, __LINE__);
  p.put(std::move(b));
  syncpool::collect();
  expect(1, 0, 0, 2, 2, __LINE__);  // both are victims now
  a = p.get();
  b = p.get();
  expect(1, 0, 2, 2, 0, __LINE__);
  auto d = p.get();
  expect(1, 0, 2, 3, 0, __LINE__);
  // Three objects of an exited thread: one steal moves them all here.
  std::thread t([&] {
    for (int i = 0; i < 3; ++i) p.put(std::make_unique<tracked>(&c));
  });
  t.join();
  expect(1, 0, 2, 3, 3, __LINE__);
  auto e = p.get();
  expect(1, 1, 2, 3, 2, __LINE__);
  auto f = p.get();
  auto g = p.get();
  expect(3, 1, 2, 3, 0, __LINE__);
  EXPECT_EQ(c.constructed.load(), 6);
  // Every get() is counted exactly once.
  const syncpool::pool_stats s = p.stats();
  EXPECT_EQ(s.local_hits + s.stolen + s.victim_hits + s.misses, 9u);
}

// A class's item count and its hit counter share one word (the count in
// the low 16 bits): a full cache of the largest capacity, filled and
// emptied many times over, keeps both exact.
TEST(PoolTest, StatsStayExactWithTheLargestLocalCacheFullAndEmptiedRepeatedly) {
  constexpr uint32_t kCap = syncpool::pool_options<int>::max_local_capacity;
  static_assert(kCap < (1u << 16));
  syncpool::pool<int> p(with_capacity<int>(kCap));
  std::vector<std::unique_ptr<int>> objects;
  for (uint32_t i = 0; i < kCap; ++i) objects.push_back(std::make_unique<int>(static_cast<int>(i)));
  constexpr uint64_t kRounds = 40;
  for (uint64_t round = 0; round < kRounds; ++round) {
    for (auto& o : objects) p.put(std::move(o));
    ASSERT_EQ(p.stats().cached, kCap) << "round " << round;
    for (auto& o : objects) {
      o = p.get();
      ASSERT_NE(o, nullptr) << "round " << round;
    }
    ASSERT_EQ(p.stats().cached, 0u) << "round " << round;
  }
  const syncpool::pool_stats s = p.stats();
  EXPECT_EQ(s.local_hits, kRounds * kCap);
  EXPECT_EQ(s.stolen + s.victim_hits + s.misses, 0u);
  // Every object came back exactly once per round.
  std::vector<int> seen;
  for (auto& o : objects) seen.push_back(*o);
  std::sort(seen.begin(), seen.end());
  for (uint32_t i = 0; i < kCap; ++i) ASSERT_EQ(seen[i], static_cast<int>(i));
}

// A pool with hooks takes put()'s out-of-line path; one without skips it.
// Both keep what they are given.
TEST(PoolTest, PutWithAndWithoutHooksCachesTheObject) {
  syncpool::pool<int> plain;
  plain.put(std::make_unique<int>(1));
  EXPECT_EQ(plain.stats().cached, 1u);
  int resets = 0;
  syncpool::pool_options<int> o;
  o.reset = [&resets](int& v) {
    v = 0;
    ++resets;
  };
  syncpool::pool<int> hooked(std::move(o));
  hooked.put(std::make_unique<int>(7));
  hooked.put(nullptr);
  EXPECT_EQ(resets, 1);
  auto back = hooked.get();
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(*back, 0);
}

// ---------------------------------------------------------------------------
// Stress: no object is ever held twice; every object is destroyed once.

// Every stress_obj alive, to catch double destruction even without ASan.
struct registry {
  std::mutex mu;
  std::unordered_set<const void*> live;
  std::atomic<int64_t> constructed{0};
  std::atomic<int64_t> destroyed{0};
  std::atomic<int64_t> double_destroyed{0};
  std::atomic<int64_t> destroyed_while_held{0};
};

registry& the_registry() {
  static registry* r = new registry;
  return *r;
}

struct stress_obj {
  stress_obj() {
    registry& reg = the_registry();
    std::lock_guard<std::mutex> lock(reg.mu);
    reg.live.insert(this);
    reg.constructed.fetch_add(1);
  }
  ~stress_obj() {
    registry& reg = the_registry();
    if (held.load() != 0) reg.destroyed_while_held.fetch_add(1);
    std::lock_guard<std::mutex> lock(reg.mu);
    if (reg.live.erase(this) != 1) reg.double_destroyed.fetch_add(1);
    reg.destroyed.fetch_add(1);
  }
  std::atomic<int> held{0};
  uint64_t scribble = 0;  // plain data: TSan flags two unordered holders
};

void run_stress(uint32_t local_capacity, int threads, int iterations) {
  registry& reg = the_registry();
  const int64_t constructed0 = reg.constructed.load();
  const int64_t destroyed0 = reg.destroyed.load();
  std::atomic<int64_t> double_held{0};
  std::atomic<int64_t> gets{0};
  {
    syncpool::pool<stress_obj> p([] { return std::make_unique<stress_obj>(); },
                                 with_capacity<stress_obj>(local_capacity));
    collect_in_background gc;
    std::vector<std::thread> workers;
    for (int w = 0; w < threads; ++w) {
      workers.emplace_back([&, w] {
        std::mt19937 rng(1234 + w);
        std::vector<std::unique_ptr<stress_obj>> held;
        int64_t my_gets = 0;
        for (int it = 0; it < iterations; ++it) {
          const int depth = (rng() % 2 == 0) ? 1 : 1 + static_cast<int>(rng() % 32);
          for (int d = 0; d < depth; ++d) {
            std::unique_ptr<stress_obj> o = p.get();
            ++my_gets;
            if (o->held.exchange(1) != 0) double_held.fetch_add(1);
            ++o->scribble;
            held.push_back(std::move(o));
          }
          if (rng() % 2 == 0) std::reverse(held.begin(), held.end());
          for (auto& o : held) {
            ++o->scribble;
            o->held.store(0);
            p.put(std::move(o));
          }
          held.clear();
          if (it % 997 == 0) syncpool::flush_thread_cache();
          if (it % 1009 == 0) (void)p.stats();
        }
        gets.fetch_add(my_gets);
      });
    }
    for (auto& t : workers) t.join();
    gc.stop();
    const syncpool::pool_stats s = p.stats();
    EXPECT_EQ(s.local_hits + s.stolen + s.victim_hits + s.misses,
              static_cast<uint64_t>(gets.load()));
    EXPECT_EQ(s.misses, static_cast<uint64_t>(reg.constructed.load() - constructed0));
    EXPECT_EQ(s.cached, static_cast<uint64_t>((reg.constructed.load() - constructed0) -
                                              (reg.destroyed.load() - destroyed0)));
  }
  EXPECT_EQ(double_held.load(), 0);
  EXPECT_EQ(reg.double_destroyed.load(), 0);
  EXPECT_EQ(reg.destroyed_while_held.load(), 0);
  EXPECT_EQ(reg.constructed.load() - constructed0, reg.destroyed.load() - destroyed0);
  std::lock_guard<std::mutex> lock(reg.mu);
  EXPECT_TRUE(reg.live.empty()) << reg.live.size() << " objects never destroyed";
}

TEST(PoolStressTest, NoObjectHeldTwiceDefaultCapacity) { run_stress(8, 6, 20000 / kSlowdown); }

TEST(PoolStressTest, NoObjectHeldTwiceCapacityOne) { run_stress(1, 4, 8000 / kSlowdown); }

TEST(PoolStressTest, NoObjectHeldTwiceLargeCapacity) { run_stress(32, 4, 8000 / kSlowdown); }

// ---------------------------------------------------------------------------
// Pools created and destroyed concurrently; engine ids are reused.

TEST(PoolStressTest, PoolsCreatedAndDestroyedWhileOthersRunAndCollect) {
  counters c;
  std::atomic<int> errors{0};
  std::atomic<int> next_tag{1};
  {
    tracked_pool shared(factory_for(c, nullptr, -1));
    collect_in_background gc;
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w) {
      workers.emplace_back([&, w] {
        std::mt19937 rng(99 + w);
        for (int round = 0; round < 300 / kSlowdown; ++round) {
          const int tag = next_tag.fetch_add(1);
          tracked_pool local(factory_for(c, nullptr, tag),
                             with_capacity<tracked>(1 + static_cast<uint32_t>(rng() % 8)));
          std::vector<std::unique_ptr<tracked>> held;
          for (int i = 0; i < 20; ++i) {
            const int depth = 1 + static_cast<int>(rng() % 12);
            for (int d = 0; d < depth; ++d) {
              held.push_back(local.get());
              if (held.back()->tag != tag) errors.fetch_add(1);  // a stale object
              auto s = shared.get();
              if (s->tag != -1) errors.fetch_add(1);
              shared.put(std::move(s));
            }
            for (auto& o : held) local.put(std::move(o));
            held.clear();
          }
          if (round % 3 == 0) {
            // Leave objects in this thread's private cache of `local` when it
            // dies, and a shared-queue object for the collector to meet.
            local.put(std::make_unique<tracked>(&c, tag));
          }
        }
      });
    }
    for (auto& t : workers) t.join();
    gc.stop();
  }
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

TEST(PoolStressTest, PoolsHandedToAnotherThreadAndDestroyedThereWhileCreatorMovesOn) {
  // Each worker makes a pool, uses it (leaving objects in its private
  // cache), hands it to the next worker and goes on making new pools at once,
  // which take ids that the receiver may be freeing right now by destroying
  // the handed-over pool. The creator's record of that pool is stale while
  // the destructor runs: nothing may free or reuse it under the destructor.
  constexpr int kThreads = 4;
  const int rounds = 150 / kSlowdown;
  struct tagged_pool {
    std::unique_ptr<tracked_pool> pool;
    int tag;
  };
  struct mailbox {
    std::mutex mu;
    std::vector<tagged_pool> items;
  };
  counters c;
  std::atomic<int> errors{0};
  std::atomic<int> next_tag{1};
  std::vector<mailbox> boxes(kThreads);
  std::latch all_sent(kThreads);
  collect_in_background gc;
  auto use = [&](tracked_pool& p, int tag, std::mt19937& rng) {
    std::vector<std::unique_ptr<tracked>> held;
    for (int i = 0; i < 4; ++i) {
      const int depth = 1 + static_cast<int>(rng() % 12);
      for (int d = 0; d < depth; ++d) {
        held.push_back(p.get());
        if (held.back()->tag != tag) errors.fetch_add(1);
      }
      for (auto& o : held) p.put(std::move(o));
      held.clear();
    }
  };
  auto consume = [&](mailbox& box, std::mt19937& rng) {
    std::vector<tagged_pool> got;
    {
      std::lock_guard<std::mutex> lock(box.mu);
      got.swap(box.items);
    }
    for (tagged_pool& tp : got) {
      use(*tp.pool, tp.tag, rng);
      tp.pool.reset();  // the creator is busy with other pools meanwhile
    }
  };
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(555 + w);
      for (int r = 0; r < rounds; ++r) {
        const int tag = next_tag.fetch_add(1);
        auto p = std::make_unique<tracked_pool>(factory_for(c, nullptr, tag),
                                                with_capacity<tracked>(1 + rng() % 8));
        use(*p, tag, rng);
        {
          mailbox& to = boxes[(w + 1) % kThreads];
          std::lock_guard<std::mutex> lock(to.mu);
          to.items.push_back({std::move(p), tag});
        }
        consume(boxes[w], rng);
      }
      all_sent.arrive_and_wait();
      consume(boxes[w], rng);
    });
  }
  for (auto& t : workers) t.join();
  gc.stop();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

// A pool destroyed while a thread still has its cache in the thread's
// table, and a new pool built in the very same storage (same address): the
// thread's table entry must not serve the new pool (entries are matched by a
// key unique to each engine, never by address).
TEST(PoolTest, NewPoolAtADestroyedPoolsAddressServesNoStaleObjects) {
  counters c;
  alignas(tracked_pool) unsigned char storage[sizeof(tracked_pool)];
  auto* old_pool = new (storage) tracked_pool();
  tracked_pool* new_pool = nullptr;
  std::latch used(1), replaced(1);
  bool got_null = false;
  int back_tag = 0;
  std::thread t([&] {
    for (int i = 0; i < 3; ++i) old_pool->put(std::make_unique<tracked>(&c, 1));  // private
    used.count_down();
    replaced.wait();
    std::unique_ptr<tracked> o = new_pool->get();
    got_null = (o == nullptr);
    new_pool->put(std::make_unique<tracked>(&c, 2));
    std::unique_ptr<tracked> back = new_pool->get();
    back_tag = back ? back->tag : -1;
    new_pool->put(std::move(back));
    for (int i = 0; i < 20; ++i) new_pool->put(std::make_unique<tracked>(&c, 2));
  });
  used.wait();
  old_pool->~tracked_pool();
  EXPECT_EQ(c.destroyed.load(), 3);
  new_pool = new (storage) tracked_pool();
  ASSERT_EQ(static_cast<void*>(new_pool), static_cast<void*>(storage));
  replaced.count_down();
  t.join();
  EXPECT_TRUE(got_null) << "the new pool handed out an object of the destroyed one";
  EXPECT_EQ(back_tag, 2);
  auto all = drain_pool(*new_pool);
  EXPECT_EQ(all.size(), 21u);
  for (const auto& o : all) EXPECT_EQ(o->tag, 2);
  all.clear();
  new_pool->~tracked_pool();
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

TEST(PoolStressTest, PoolsSharedByThreadsAreReplacedWhileThreadsIdle) {
  // Each round, every worker uses the round's pool and then idles with
  // objects in its private cache; the pool is destroyed and the next round's
  // pool (very likely with the same id) takes its place. collect() runs all
  // along. An object tagged with an older round would be a stale hand-out.
  constexpr int kThreads = 4;
  const int rounds = 60 / kSlowdown;
  counters c;
  std::atomic<int> errors{0};
  std::unique_ptr<tracked_pool> current;
  int current_round = 0;
  std::barrier sync(kThreads + 1);
  collect_in_background gc;
  std::vector<std::thread> workers;
  for (int w = 0; w < kThreads; ++w) {
    workers.emplace_back([&, w] {
      std::mt19937 rng(7 + w);
      std::vector<std::unique_ptr<tracked>> held;
      for (int r = 0; r < rounds; ++r) {
        sync.arrive_and_wait();  // the round's pool exists
        tracked_pool& p = *current;
        const int tag = current_round;
        for (int i = 0; i < 100; ++i) {
          const int depth = 1 + static_cast<int>(rng() % 20);
          for (int d = 0; d < depth; ++d) {
            held.push_back(p.get());
            if (held.back()->tag != tag) errors.fetch_add(1);
          }
          for (auto& o : held) p.put(std::move(o));
          held.clear();
        }
        if (w == 0 && r % 2 == 0) syncpool::flush_thread_cache();
        sync.arrive_and_wait();  // done with it: idle
      }
    });
  }
  for (int r = 0; r < rounds; ++r) {
    current_round = r;
    current = std::make_unique<tracked_pool>(factory_for(c, nullptr, r),
                                             with_capacity<tracked>(1 + static_cast<uint32_t>(r % 9)));
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    current.reset();
    EXPECT_EQ(c.destroyed.load(), c.constructed.load()) << "round " << r;
  }
  for (auto& t : workers) t.join();
  gc.stop();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(c.destroyed.load(), c.constructed.load());
}

// ---------------------------------------------------------------------------
// Found bugs (see the comments).

// Whether every slot array of the calling thread's caches can take as many
// objects as its class says (white-box).
bool this_threads_batches_are_full_size(std::string* why) {
  using namespace syncpool::internal;
  for (const thread_cache* c = t_thread.owned; c != nullptr; c = c->tnext) {
    for (uint32_t i = 0; i < c->nclasses; ++i) {
      const class_slots& cs = c->cls[i];
      if (cs.items == nullptr) continue;
      const uint32_t have = batch::of_items(cs.items)->capacity;
      if (have < cs.capacity) {
        *why = "slot array of capacity " + std::to_string(have) + " < its class's " + std::to_string(cs.capacity);
        return false;
      }
    }
  }
  return true;
}

struct late_putter {
  tracked_pool* pool = nullptr;
  std::unique_ptr<tracked> obj;
  ~late_putter() {
    if (pool != nullptr) pool->put(std::move(obj));
  }
};

// A thread_local whose destructor runs after the pool's per-thread exit hook
// (it was constructed before the thread's first pool call) puts an object.
// put_slow() then wraps it in a batch of capacity 1 and hands it to the
// orphans. A thread that stole that batch used to keep it as a spare
// (refill() did not look at capacities) and later use it as a full-size
// batch: spill() copied local_capacity/2 pointers into it -> heap-buffer-
// overflow (ASan), heap corruption otherwise. Fixed; this guards it.
// The test checks the invariant white-box and stops before the overflow while
// the bug is there, so that it fails cleanly in every build.
TEST(PoolBugTest, PutFromLateThreadLocalDestructorLeavesUndersizedBatch) {
  counters c;
  tracked_pool p;
  std::thread t([&] {
    thread_local late_putter lp;  // before the first pool call of this thread
    lp.pool = &p;
    lp.obj = std::make_unique<tracked>(&c, 7);
    p.put(std::make_unique<tracked>(&c, 1));  // registers the exit hook
  });
  t.join();
  EXPECT_EQ(p.stats().cached, 2u);
  auto a = p.get();  // steals the capacity-1 batch of the late put
  auto b = p.get();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(std::set<int>({a->tag, b->tag}), std::set<int>({1, 7}));
  std::string why;
  ASSERT_TRUE(this_threads_batches_are_full_size(&why))
      << why << ": the next spill()/take_slots() would write past its end";
  // Only reached once fixed: exercise spill and take_slots with it.
  p.put(std::move(a));
  p.put(std::move(b));
  for (int i = 0; i < 3 * static_cast<int>(p.local_capacity()); ++i) {
    p.put(std::make_unique<tracked>(&c));
  }
  syncpool::flush_thread_cache();
  for (int i = 0; i < static_cast<int>(p.local_capacity()); ++i) {
    p.put(std::make_unique<tracked>(&c));
  }
  EXPECT_EQ(drain_pool(p).size(), static_cast<size_t>(c.constructed.load()));
}

struct owns_a_pool {
  syncpool::pool<int> inner;
};

// collect() pins every engine, ages them one by one and destroys victims
// while the pins are held. Destroying a victim whose destructor destroys a
// pool (an object that owns a pool) enters ~engine, which waits for that
// engine's pins to drop to zero, but the pin is held by the very thread that
// waits: collect() never returns (and a syncpool::collector thread hangs the
// same way). Runs in a child process with a watchdog so that the deadlock
// fails this test instead of hanging the suite.
TEST(PoolBugDeathTest, CollectDestroyingAnObjectThatOwnsAPoolDoesNotDeadlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(10);  // watchdog: a deadlock ends the child with SIGALRM
        syncpool::pool<owns_a_pool> outer;
        outer.put(std::make_unique<owns_a_pool>());
        syncpool::collect();  // the object becomes a victim
        syncpool::collect();  // destroys it, and with it `inner`
        std::_Exit(outer.stats().cached == 0 ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

// Counts its destructions, for the test below.
struct counted_item {
  static inline int destroyed = 0;
  ~counted_item() { ++destroyed; }
};
struct counted_owner {
  static inline int destroyed = 0;
  syncpool::pool<counted_item> inner;
  ~counted_owner() { ++destroyed; }
};

TEST(PoolTest, DestroyingAPoolThatOwnsPoolsOutsideCollectWorks) {
  // Objects that own pools, destroyed by the pool's destructor (not by
  // collect()): every owner and every item its pool cached is destroyed.
  counted_item::destroyed = 0;
  counted_owner::destroyed = 0;
  auto outer = std::make_unique<syncpool::pool<counted_owner>>();
  for (int i = 0; i < 10; ++i) {
    auto o = std::make_unique<counted_owner>();
    o->inner.put(std::make_unique<counted_item>());
    outer->put(std::move(o));
  }
  EXPECT_EQ(counted_owner::destroyed, 0);
  EXPECT_EQ(outer->stats().cached, 10u);
  outer.reset();
  EXPECT_EQ(counted_owner::destroyed, 10);
  EXPECT_EQ(counted_item::destroyed, 10);
}

}  // namespace
