// Regression tests for faults a careful (or careless) user can hit: issue 7's
// list, one section per fault. Each scenario that could crash or hang runs in
// a child process (EXPECT_EXIT) with a watchdog, so that a crash or a
// deadlock fails its own test and the suite goes on.
//
// Every test here failed before its fix (noted per section: in which builds).

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <latch>
#include <limits>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"
#include "tests/test_resources.h"

namespace {

using syncpool::pool;
using syncpool::pool_resource;
using syncpool_test::counting_resource;
using hooks = syncpool::internal::testing_hooks;

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Runs `body` in a child process that must exit with status 0 within
// `seconds` (a deadlock ends it with SIGALRM).
template <class F>
void run_in_child(F body, unsigned seconds = 20) {
  EXPECT_EXIT(
      {
        alarm(seconds);
        body();
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

#define CHILD_CHECK(cond)                                                              \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::_Exit(3);                                                                   \
    }                                                                                  \
  } while (0)

// ---------------------------------------------------------------------------
// Fault 1: a T destructor that re-enters its own pool while a thread ages its
// private slots. After two collect() cycles run elsewhere, the owner's next
// call destroys its slots; the destructors ran while the objects were still
// in the slots, so a re-entrant get() was handed an object being destroyed
// (heap-use-after-free / double free), and a re-entrant put() wrote into the
// array being destroyed (lost, or a double free when it spilled).

// Every object alive, so that a double destruction or a leak is seen.
struct live_set {
  std::mutex mu;
  std::set<const void*> live;
  long constructed = 0;
  long destroyed = 0;
  bool double_destroy = false;
};

live_set& lives() {
  static live_set s;
  return s;
}

enum class reenter { none, get, put, put_many, collect, flush };

struct reentrant_obj {
  explicit reentrant_obj(pool<reentrant_obj>* p = nullptr, reenter how = reenter::none)
      : owner(p), how(how) {
    std::lock_guard<std::mutex> lock(lives().mu);
    lives().live.insert(this);
    ++lives().constructed;
  }
  ~reentrant_obj() {
    {
      std::lock_guard<std::mutex> lock(lives().mu);
      if (lives().live.erase(this) != 1) lives().double_destroy = true;
      ++lives().destroyed;
    }
    switch (how) {
      case reenter::none:
        break;
      case reenter::get: {
        // Takes an object and keeps it a while: it must be a live one.
        std::unique_ptr<reentrant_obj> o = owner->get();
        if (o != nullptr) {
          std::lock_guard<std::mutex> lock(lives().mu);
          if (lives().live.count(o.get()) != 1) lives().double_destroy = true;
        }
        break;
      }
      case reenter::put:
        owner->put(std::make_unique<reentrant_obj>());
        break;
      case reenter::put_many:
        // More than the slots hold: spills while the old slots are destroyed.
        for (int i = 0; i < 40; ++i) owner->put(std::make_unique<reentrant_obj>());
        break;
      case reenter::collect:
        syncpool::collect();
        break;
      case reenter::flush:
        syncpool::flush_thread_cache();
        break;
    }
  }
  pool<reentrant_obj>* owner;
  reenter how;
};

void age_private_slots_with_reentrant_destructors(reenter how) {
  {
    syncpool::pool_options<reentrant_obj> options;
    options.local_capacity = 8;
    pool<reentrant_obj> p([] { return std::make_unique<reentrant_obj>(); }, options);
    // This thread caches objects in its private slots, three of them
    // re-entrant and five plain ones (so a re-entrant get() finds some).
    std::vector<std::unique_ptr<reentrant_obj>> objs;
    for (int i = 0; i < 5; ++i) objs.push_back(std::make_unique<reentrant_obj>());
    for (int i = 0; i < 3; ++i) objs.push_back(std::make_unique<reentrant_obj>(&p, how));
    for (auto& o : objs) p.put(std::move(o));
    // Another thread runs two cycles: the slots missed both.
    std::thread([] {
      syncpool::collect();
      syncpool::collect();
    }).join();
    // This call finds the epoch moved by two and destroys its slots.
    std::unique_ptr<reentrant_obj> got = p.get();
    CHILD_CHECK(got != nullptr);
    {
      std::lock_guard<std::mutex> lock(lives().mu);
      CHILD_CHECK(lives().live.count(got.get()) == 1);
    }
    p.put(std::move(got));
    for (int i = 0; i < 50; ++i) p.put(std::make_unique<reentrant_obj>());
    syncpool::collect();
    syncpool::collect();
  }
  std::lock_guard<std::mutex> lock(lives().mu);
  CHILD_CHECK(!lives().double_destroy);
  CHILD_CHECK(lives().constructed == lives().destroyed);
  CHILD_CHECK(lives().live.empty());
}

TEST_F(Reliability, DestructorReentersGetWhileSlotsAreAged) {
  run_in_child([] { age_private_slots_with_reentrant_destructors(reenter::get); });
}
TEST_F(Reliability, DestructorReentersPutWhileSlotsAreAged) {
  run_in_child([] { age_private_slots_with_reentrant_destructors(reenter::put); });
}
TEST_F(Reliability, DestructorReentersPutPastCapacityWhileSlotsAreAged) {
  run_in_child([] { age_private_slots_with_reentrant_destructors(reenter::put_many); });
}
TEST_F(Reliability, DestructorCallsCollectWhileSlotsAreAged) {
  run_in_child([] { age_private_slots_with_reentrant_destructors(reenter::collect); });
}
TEST_F(Reliability, DestructorCallsFlushThreadCacheWhileSlotsAreAged) {
  run_in_child([] { age_private_slots_with_reentrant_destructors(reenter::flush); });
}

// ---------------------------------------------------------------------------
// Fault 2: the member pool_resource::collect() racing release() on another
// thread: collect() gave blocks back to chunks that release() had just
// returned upstream (heap-use-after-free under ASan, or the abort "not a
// live block").

TEST_F(Reliability, MemberCollectRacesRelease) {
  run_in_child([] {
    counting_resource up;
    {
      pool_resource pool(&up);
      std::atomic<bool> stop{false};
      std::thread collector([&] {
        while (!stop.load()) pool.collect();
      });
      for (int round = 0; round < 300; ++round) {
        std::vector<std::pair<void*, std::size_t>> v;
        for (std::size_t i = 0; i < 64; ++i) {
          const std::size_t n = 8 + (i * 97) % 9000;
          v.emplace_back(pool.allocate(n), n);
        }
        for (std::size_t i = 0; i < v.size(); i += 2) pool.deallocate(v[i].first, v[i].second);
        pool.release();
      }
      stop.store(true);
      collector.join();
    }
    CHILD_CHECK(up.errors().empty());
    CHILD_CHECK(up.live_bytes() == 0);
  });
}

// ---------------------------------------------------------------------------
// Fault 3: upstream calls were not serialized. An upstream that is not
// thread-safe (unsynchronized_pool_resource, monotonic_buffer_resource) was
// called from several threads at once.

// Counts calls that overlap another call in progress.
class overlap_counting_resource : public std::pmr::memory_resource {
 public:
  uint64_t overlaps() const { return overlaps_.load(); }
  uint64_t calls() const { return calls_.load(); }

 private:
  struct entry {
    explicit entry(overlap_counting_resource* r) : r_(r) {
      r_->calls_.fetch_add(1);
      if (r_->inside_.fetch_add(1) != 0) r_->overlaps_.fetch_add(1);
      // Stay inside a little, so that an unserialized caller is caught.
      for (int i = 0; i < 200; ++i) r_->spin_.fetch_add(1, std::memory_order_relaxed);
    }
    ~entry() { r_->inside_.fetch_sub(1); }
    overlap_counting_resource* r_;
  };
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    entry e(this);
    return backing_.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    entry e(this);
    backing_.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }

  std::atomic<int> inside_{0};
  std::atomic<uint64_t> overlaps_{0};
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> spin_{0};
  // Itself thread-safe, so that the test measures overlap without crashing.
  std::pmr::synchronized_pool_resource backing_;
};

// Sizes from several chunked classes, the direct classes (> 4 KiB) and
// oversize requests (> 64 KiB).
constexpr std::size_t kMixedSizes[] = {8, 24, 64, 200, 1000, 4000, 6000, 20000, 70000, 200000};

void churn(std::pmr::memory_resource& r, int thread, int rounds) {
  std::vector<std::pair<void*, std::size_t>> held;
  for (int round = 0; round < rounds; ++round) {
    for (std::size_t i = 0; i < 40; ++i) {
      const std::size_t n = kMixedSizes[(i + round + thread) % std::size(kMixedSizes)];
      void* p = r.allocate(n);
      syncpool_test::fill_block(p, n, static_cast<uint32_t>(i + round));
      held.emplace_back(p, n);
    }
    for (std::size_t i = 0; i < held.size(); ++i) {
      const std::size_t n = held[i].second;
      if (!syncpool_test::check_block(held[i].first, n, static_cast<uint32_t>(i + round))) std::abort();
      r.deallocate(held[i].first, n);
    }
    held.clear();
    if (round % 8 == thread % 8) syncpool::flush_thread_cache();
  }
}

TEST_F(Reliability, UpstreamCallsAreSerialized) {
  overlap_counting_resource up;
  {
    pool_resource pool(&up);
    syncpool::collector gc(std::chrono::microseconds(200));
    std::atomic<bool> stop{false};
    std::thread member_collect([&] {
      while (!stop.load()) {
        pool.collect();
        std::this_thread::yield();
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&pool, t] { churn(pool, t, 150); });
    for (auto& t : threads) t.join();
    stop.store(true);
    member_collect.join();
    EXPECT_GT(up.calls(), 100u);
  }
  EXPECT_EQ(up.overlaps(), 0u);
}

// The everyday setup the fault broke: pool_resource over a resource that is
// not thread-safe, used from several threads.
TEST_F(Reliability, OverANonThreadSafeUpstreamFromManyThreads) {
  run_in_child([] {
    std::pmr::unsynchronized_pool_resource unsync;
    {
      pool_resource pool(&unsync);
      syncpool::collector gc(std::chrono::microseconds(200));
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t) threads.emplace_back([&pool, t] { churn(pool, t, 100); });
      for (auto& t : threads) t.join();
    }
    std::byte buffer[1 << 16];
    std::pmr::monotonic_buffer_resource mono(buffer, sizeof buffer);
    {
      pool_resource pool(&mono);
      std::vector<std::thread> threads;
      for (int t = 0; t < 2; ++t) threads.emplace_back([&pool, t] { churn(pool, t, 20); });
      for (auto& t : threads) t.join();
    }
  });
}

// ---------------------------------------------------------------------------
// Fault 5: a request above largest_required_pool_block goes to upstream
// unchanged, whatever its size; the resource itself throws nothing of its
// own (it used to throw bad_alloc for SIZE_MAX - 1 without asking upstream).

class recording_resource : public std::pmr::memory_resource {
 public:
  std::size_t last_bytes = 0;
  std::size_t last_alignment = 0;
  int calls = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    last_bytes = bytes;
    last_alignment = alignment;
    ++calls;
    throw std::bad_alloc();
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

TEST_F(Reliability, OversizeRequestsReachUpstreamUnchanged) {
  const std::size_t max = std::numeric_limits<std::size_t>::max();
  for (auto [bytes, alignment] : {std::pair{max - 1, std::size_t{1024}}, std::pair{max, std::size_t{1}},
                                  std::pair{max - 3, std::size_t{1} << 20}, std::pair{std::size_t{1} << 40, std::size_t{8}}}) {
    recording_resource up;
    pool_resource pool(&up);
    EXPECT_THROW((void)pool.allocate(bytes, alignment), std::bad_alloc);
    EXPECT_EQ(up.calls, 1) << bytes << "/" << alignment;
    EXPECT_EQ(up.last_bytes, bytes);
    EXPECT_EQ(up.last_alignment, alignment);
  }
}

// ---------------------------------------------------------------------------
// Fault 6: epoch wrap. An engine's epoch was `serial << 32 | cycles`, so an
// engine 2^32 serials later (or 2^32 cycles on) had the epoch of a dead one.
// A record the dead engine left in a thread's table then passed the new
// engine's fast-path check: objects put there were in no list of the new
// engine and leaked silently. Now a thread's table entries are matched by a
// 64-bit key unique to each engine, and a dying engine clears the entries
// that point at its caches, so that even a key that came round again finds
// nothing.

struct counted {
  static std::atomic<long>& alive() {
    static std::atomic<long> n{0};
    return n;
  }
  counted() { alive().fetch_add(1); }
  ~counted() { alive().fetch_sub(1); }
};

TEST_F(Reliability, AKeyThatComesRoundAgainDoesNotRevivePoolsLeftInThreads) {
  run_in_child([] {
    uint64_t key;
    {
      pool<counted> a;
      a.put(std::make_unique<counted>());  // this thread's table points at a's cache
      key = hooks::key_of(hooks::engine_of(a));
    }
    CHILD_CHECK(counted::alive().load() == 0);
    // The next engine gets the dead one's key, as after a wrap.
    hooks::set_next_engine_key(key);
    {
      pool<counted> b;
      CHILD_CHECK(hooks::key_of(hooks::engine_of(b)) == key);
      for (int i = 0; i < 4; ++i) b.put(std::make_unique<counted>());
      CHILD_CHECK(b.stats().cached == 4);
    }
    CHILD_CHECK(counted::alive().load() == 0);
    // And the old aliasing distance (2^32) is no distance at all now.
    hooks::set_next_engine_key(key + (uint64_t{1} << 32));
    {
      pool<counted> c;
      for (int i = 0; i < 4; ++i) c.put(std::make_unique<counted>());
      CHILD_CHECK(c.stats().cached == 4);
    }
    CHILD_CHECK(counted::alive().load() == 0);
  });
}

TEST_F(Reliability, CyclesPastTwoToTheThirtyTwoStillAge) {
  run_in_child([] {
    pool<counted> p;
    p.put(std::make_unique<counted>());  // the thread's cache exists
    (void)p.get();
    hooks::set_cycle(hooks::engine_of(p), (uint64_t{1} << 32) - 2);
    for (int cycle = 0; cycle < 4; ++cycle) {
      p.put(std::make_unique<counted>());
      syncpool::collect();
      CHILD_CHECK(p.stats().cached == 1);  // a victim now
      syncpool::collect();
      CHILD_CHECK(p.stats().cached == 0);
      CHILD_CHECK(counted::alive().load() == 0);
    }
  });
}

// ---------------------------------------------------------------------------
// Fault 7: a pool kept alive only by its own cached objects. collect()
// destroyed the last object, which destroyed the pool, whose engine then
// waited forever for the pin the same thread held.

struct keeps_its_pool_alive {
  std::shared_ptr<pool<keeps_its_pool_alive>> home;
};

TEST_F(Reliability, PoolKeptAliveOnlyByItsCachedObjectsIsCollected) {
  run_in_child([] {
    for (int variant = 0; variant < 3; ++variant) {
      auto p = std::make_shared<pool<keeps_its_pool_alive>>();
      for (int i = 0; i < 3; ++i) p->put(std::make_unique<keeps_its_pool_alive>(keeps_its_pool_alive{p}));
      std::weak_ptr<pool<keeps_its_pool_alive>> watch = p;
      p.reset();
      // Within reach of another thread's collect().
      syncpool::flush_thread_cache();
      if (variant == 0) {
        syncpool::collect();
        syncpool::collect();
      } else if (variant == 1) {
        std::thread([] {
          syncpool::collect();
          syncpool::collect();
        }).join();
      } else {
        syncpool::collector gc(std::chrono::microseconds(100));
        for (int i = 0; i < 10000 && !watch.expired(); ++i) std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      CHILD_CHECK(watch.expired());
    }
  });
}

// ---------------------------------------------------------------------------
// Fault 8: deallocate(nullptr, n) cached the null pointer; a later allocate
// handed it out, and collect() on another thread crashed writing a free-list
// link through it.

// libstdc++ declares memory_resource::deallocate's pointer nonnull, so UBSan
// (and g++'s -Wnonnull) object to the call itself; a user still makes it.
__attribute__((no_sanitize("undefined"), noinline)) void deallocate_null(std::pmr::memory_resource& r,
                                                                      std::size_t n) {
  void* volatile null = nullptr;
  r.deallocate(null, n);
}

TEST_F(Reliability, DeallocateNullIsANoOp) {
  run_in_child([] {
    counting_resource up;
    {
      pool_resource pool(&up);
      for (std::size_t n : {1, 64, 4096, 10000, 1000000}) deallocate_null(pool, n);
      for (std::size_t n : {1, 64, 4096, 10000}) {
        for (int i = 0; i < 3; ++i) {
          void* p = pool.allocate(n);
          CHILD_CHECK(p != nullptr);
          pool.deallocate(p, n);
        }
      }
      std::thread([] {
        syncpool::collect();
        syncpool::collect();
        syncpool::collect();
      }).join();
    }
    CHILD_CHECK(up.live_bytes() == 0);
    CHILD_CHECK(up.errors().empty());
  });
}

// ---------------------------------------------------------------------------
// Fault 9: an upstream that calls syncpool::collect() when it is asked for
// memory (collect, then retry). A class lock was held across the upstream
// call, and the collect gave blocks back to that same class: deadlock.

// On its `trigger`-th allocate, runs `before_collect`, then collects twice.
class collecting_upstream : public std::pmr::memory_resource {
 public:
  std::function<void()> before_collect;
  int trigger = 2;
  int allocates = 0;
  counting_resource backing;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (++allocates == trigger) {
      if (before_collect) before_collect();
      syncpool::collect();
      syncpool::collect();
    }
    return backing.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    backing.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
};

TEST_F(Reliability, UpstreamThatCallsCollectDoesNotDeadlock) {
  if (!syncpool::internal::asymmetric_fence_available()) GTEST_SKIP() << "no membarrier() here";
  run_in_child([] {
    collecting_upstream up;
    up.trigger = 0;  // armed below
    {
      pool_resource pool(&up);
      // The class's first chunks (4 + 8 + 16 + 32 blocks), held here...
      std::vector<void*> held;
      for (int i = 0; i < 60; ++i) held.push_back(pool.allocate(64));
      // ...then freed into another thread's cache, which stays alive and
      // idle: out of this thread's reach, within a collector's.
      std::latch freed(1), done(1);
      std::thread parked([&] {
        for (void* p : held) pool.deallocate(p, 64);
        freed.count_down();
        done.wait();
      });
      freed.wait();
      // This thread grows the same class; the upstream call that brings the
      // next chunk collects twice, which takes the parked cache, destroys
      // its blocks and gives their chunks back upstream, re-entrantly,
      // while the class is being grown.
      up.trigger = up.allocates + 1;
      for (int i = 0; up.allocates < up.trigger; ++i) {
        (void)pool.allocate(64);
        CHILD_CHECK(i < 100000);
      }
      CHILD_CHECK(up.backing.deallocate_calls() >= 1);  // chunks went back
      done.count_down();
      parked.join();
      // Usable afterwards, upstream included.
      std::vector<void*> v;
      for (int i = 0; i < 5000; ++i) v.push_back(pool.allocate(64));
      for (void* p : v) pool.deallocate(p, 64);
    }
    CHILD_CHECK(up.backing.live_bytes() == 0);
    CHILD_CHECK(up.backing.errors().empty());
  });
}

uint64_t served(const syncpool::pool_stats& s) { return s.local_hits + s.stolen + s.victim_hits + s.misses; }

TEST_F(Reliability, StatsTotalsCountEveryAllocateAcrossAnIdleResetAndRelease) {
  // An idle reset and release() give the classes' state back upstream; their
  // counters used to go with it, and the direct classes' blocks (above
  // 4 KiB) were then counted as requests sent straight to upstream.
  counting_resource up;
  pool_resource r(&up);
  std::thread([&] {  // its cache goes to the depot when it exits
    for (const auto& [size, n] : {std::pair<std::size_t, int>{64, 300}, {5000, 50}, {70000, 50}}) {
      std::vector<void*> v;
      for (int i = 0; i < n; ++i) v.push_back(r.allocate(size));
      for (void* p : v) r.deallocate(p, size);
    }
  }).join();
  auto s = r.stats();
  EXPECT_EQ(served(s.total), 400u);
  EXPECT_EQ(s.direct_allocations, 50u);  // the 70,000-byte ones; 5,000 B is a class
  for (int i = 0; i < 3; ++i) r.collect();
  s = r.stats();
  if (syncpool::internal::asymmetric_fence_available()) {
    ASSERT_EQ(s.total.upstream_bytes, 0u) << "reset";
  }
  EXPECT_EQ(served(s.total), 400u);
  EXPECT_EQ(s.direct_allocations, 50u);
  r.deallocate(r.allocate(64), 64);
  EXPECT_EQ(served(r.stats().total), 401u);
  void* held = r.allocate(100);  // still out at release()
  (void)held;
  r.release();
  s = r.stats();
  EXPECT_EQ(served(s.total), 402u);
  EXPECT_EQ(s.direct_allocations, 50u);
  EXPECT_EQ(s.total.upstream_bytes, 0u);
  EXPECT_EQ(up.live_bytes(), 0u);
}

TEST_F(Reliability, AnUpstreamMayReadStatsWhileReleaseAndTheDestructorGiveItBack) {
  // release() held the lock that stats() takes while it called upstream's
  // deallocate: an upstream that logged the resource's stats there hung.
  counting_resource up;
  up.set_scribble_on_free(true);  // nothing may be read from memory given back
  std::atomic<pool_resource*> watched{nullptr};
  std::atomic<int> reads{0};
  up.set_deallocate_hook([&](void*, std::size_t, std::size_t) {
    if (pool_resource* r = watched.load()) {
      (void)r->stats();
      reads.fetch_add(1);
    }
  });
  {
    pool_resource r(&up);
    watched = &r;
    for (int round = 0; round < 2; ++round) {
      std::vector<void*> held;
      for (int i = 0; i < 1000; ++i) held.push_back(r.allocate(100));
      held.push_back(r.allocate(70000));
      if (round == 0) {
        r.release();
        EXPECT_GT(reads.load(), 0);
        EXPECT_EQ(up.live_bytes(), 0u);
      }
    }
    reads = 0;
  }  // the destructor gives the second round back
  EXPECT_GT(reads.load(), 0);
  watched = nullptr;
  EXPECT_EQ(up.live_bytes(), 0u);
  EXPECT_TRUE(up.errors().empty());
}

// Throws its own exception at the n-th allocate call from now.
class quota_resource : public std::pmr::memory_resource {
 public:
  struct quota_exceeded : std::runtime_error {
    quota_exceeded() : std::runtime_error("quota exceeded") {}
  };
  void fail_on_call(int n) { fail_at_ = calls_ + n; }
  counting_resource backing;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (++calls_ == fail_at_) throw quota_exceeded();
    return backing.allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    backing.deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
  int calls_ = 0;
  int fail_at_ = 0;
};

TEST_F(Reliability, AnAllocateThrowsOnlyWhatUpstreamThrows) {
  // Bookkeeping takes memory from upstream too (slabs of the arena: a direct
  // block's record, a class's state, a chunk's descriptor); when that call
  // threw, the request threw std::bad_alloc instead.
  for (const std::size_t size : {std::size_t{70000}, std::size_t{5000}, std::size_t{64}}) {
    for (int n = 1; n <= 6; ++n) {
      quota_resource up;
      {
        syncpool::pool_resource_options opts;
        opts.max_blocks_per_chunk = 4;  // no young phase: chunks at once
        pool_resource r(opts, &up);
        up.fail_on_call(n);
        std::vector<void*> got;
        for (int i = 0; i < 40; ++i) {
          try {
            got.push_back(r.allocate(size));
          } catch (const quota_resource::quota_exceeded&) {
          } catch (const std::exception& e) {
            ADD_FAILURE() << size << " B, call " << n << ": " << typeid(e).name() << ": " << e.what();
          }
        }
        for (void* p : got) r.deallocate(p, size);
      }
      EXPECT_EQ(up.backing.live_bytes(), 0u) << size << " B, call " << n;
    }
  }
}

TEST_F(Reliability, ACollectorWithTheLongestIntervalWaits) {
  // libstdc++'s wait_for overflowed at nanoseconds::max(): every wait
  // returned at once, and the collector ran cycles back to back.
  syncpool::collector gc(std::chrono::nanoseconds::max());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(gc.cycles(), 0u);
}

}  // namespace
