// Tests of what pool<T>'s interface accepts and refuses: move-only
// factories, a custom deleter type, bad local_capacity values, how a lease
// lets its object go, and the statistics vocabulary it shares with
// pool_resource.
//
//   ./bazelw test //tests:pool_api_test
//
// The element types pool<T> refuses at compile time (arrays, void,
// references, ...) cannot be tested by a program that compiles: CMake's
// compile_fail.pool_* tests check those (tests/CMakeLists.txt).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"

namespace {

struct widget {
  explicit widget(int v = 0) : value(v) {}
  int value;
};

using widget_pool = syncpool::pool<widget>;

// ---------------------------------------------------------------------------
// Factories

// Owns a unique_ptr, so it can be moved but not copied: std::function could
// not hold it.
struct numbering_factory {
  std::unique_ptr<int> next = std::make_unique<int>(0);
  std::unique_ptr<widget> operator()() { return std::make_unique<widget>(++*next); }
};
static_assert(!std::is_copy_constructible_v<numbering_factory>);

TEST(PoolFactory, AcceptsAMoveOnlyFactory) {
  widget_pool p(numbering_factory{});
  std::unique_ptr<widget> a = p.get();
  std::unique_ptr<widget> b = p.get();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->value, 1);
  EXPECT_EQ(b->value, 2);
  widget* raw = a.get();
  p.put(std::move(a));
  EXPECT_EQ(p.get().get(), raw);  // cached: the factory did not run
  EXPECT_EQ(p.stats().misses, 2u);
}

TEST(PoolFactory, AcceptsAMoveOnlyLambda) {
  auto first = std::make_unique<widget>(7);
  widget_pool p([first = std::move(first)]() mutable {
    return first != nullptr ? std::move(first) : std::make_unique<widget>(8);
  });
  EXPECT_EQ(p.get()->value, 7);
  EXPECT_EQ(p.get()->value, 8);
}

TEST(PoolFactory, IsDestroyedWithThePool) {
  auto token = std::make_shared<int>(0);
  {
    widget_pool p([token] { return std::make_unique<widget>(*token); });
    EXPECT_EQ(token.use_count(), 2);
  }
  EXPECT_EQ(token.use_count(), 1);
}

TEST(PoolFactory, EmptyStdFunctionOrNullPointerMeansNoFactory) {
  widget_pool from_function(std::function<std::unique_ptr<widget>()>{});
  EXPECT_EQ(from_function.get(), nullptr);
  std::unique_ptr<widget> (*null_fn)() = nullptr;
  widget_pool from_pointer(null_fn);
  EXPECT_EQ(from_pointer.get(), nullptr);
}

TEST(PoolFactory, AFactoryOfADerivedTypeServesABasePool) {
  struct base {
    virtual ~base() = default;
    virtual int id() const { return 0; }
  };
  struct derived : base {
    int id() const override { return 1; }
  };
  syncpool::pool<base> p([] { return std::make_unique<derived>(); });
  EXPECT_EQ(p.get()->id(), 1);
}

// ---------------------------------------------------------------------------
// A deleter type of the pool's own

std::atomic<int> g_deleted{0};

struct counting_delete {
  void operator()(widget* w) const noexcept {
    g_deleted.fetch_add(1);
    delete w;
  }
};

using counted_pool = syncpool::pool<widget, counting_delete>;
static_assert(std::is_same_v<counted_pool::pointer, std::unique_ptr<widget, counting_delete>>);
static_assert(std::is_same_v<decltype(std::declval<counted_pool&>().get()), counted_pool::pointer>);

template <class Pool, class Ptr>
concept can_put = requires(Pool& p, Ptr obj) { p.put(std::move(obj)); };

TEST(PoolDeleter, PutTakesAUniquePtrWithThePoolsDeleterAndOnlyThat) {
  static_assert(can_put<counted_pool, std::unique_ptr<widget, counting_delete>>);
  // A pointer with another deleter would be destroyed the wrong way.
  static_assert(!can_put<counted_pool, std::unique_ptr<widget>>);
  static_assert(!can_put<widget_pool, std::unique_ptr<widget, counting_delete>>);
  static_assert(can_put<widget_pool, std::unique_ptr<widget>>);

  g_deleted = 0;
  counted_pool p;
  p.put(counted_pool::pointer(new widget(5)));
  counted_pool::pointer back = p.get();
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->value, 5);
  back.reset();
  EXPECT_EQ(g_deleted.load(), 1);
}

TEST(PoolDeleter, ThePoolDestroysWhatItCachesWithItsDeleter) {
  g_deleted = 0;
  {
    counted_pool p([] { return counted_pool::pointer(new widget()); });
    for (int i = 0; i < 3; ++i) p.put(counted_pool::pointer(new widget(i)));
    EXPECT_EQ(g_deleted.load(), 0);
  }
  EXPECT_EQ(g_deleted.load(), 3);  // ~pool

  syncpool::pool_options<widget> keep_none;
  keep_none.retain_if = [](const widget&) { return false; };
  counted_pool picky(keep_none);
  picky.put(counted_pool::pointer(new widget()));
  EXPECT_EQ(g_deleted.load(), 4);  // refused by retain_if

  counted_pool aged;
  aged.put(counted_pool::pointer(new widget()));
  syncpool::collect();
  syncpool::collect();
  EXPECT_EQ(aged.stats().cached, 0u);
  EXPECT_EQ(g_deleted.load(), 5);  // collect()
}

// ---------------------------------------------------------------------------
// lease

TEST(PoolLease, BecomesAUniquePtrOrSharedPtrOnlyThroughRelease) {
  using lease = widget_pool::lease;
  static_assert(!std::is_convertible_v<lease, std::unique_ptr<widget>>);
  static_assert(!std::is_constructible_v<std::unique_ptr<widget>, lease>);
  static_assert(!std::is_convertible_v<lease, std::shared_ptr<widget>>);
  static_assert(!std::is_constructible_v<std::shared_ptr<widget>, lease>);
  static_assert(!std::is_convertible_v<lease&, widget*>);
  static_assert(!std::is_copy_constructible_v<lease>);

  widget_pool p([] { return std::make_unique<widget>(); });
  std::unique_ptr<widget> owned = p.borrow().release();
  std::shared_ptr<widget> shared = p.borrow().release();
  ASSERT_NE(owned, nullptr);
  ASSERT_NE(shared, nullptr);
  EXPECT_NE(owned.get(), shared.get());
  EXPECT_EQ(p.stats().cached, 0u);  // neither went back

  { auto kept = p.borrow(); }
  EXPECT_EQ(p.stats().cached, 1u);  // a lease not released goes back
}

TEST(PoolLease, ReleaseLeavesTheLeaseEmpty) {
  widget_pool p([] { return std::make_unique<widget>(3); });
  auto l = p.borrow();
  ASSERT_TRUE(l);
  std::unique_ptr<widget> w = l.release();
  EXPECT_FALSE(l);
  EXPECT_EQ(l.get(), nullptr);
  EXPECT_EQ(w->value, 3);
  l.reset();  // nothing to put back
  EXPECT_EQ(p.stats().cached, 0u);
}

// ---------------------------------------------------------------------------
// pool_options::local_capacity

// The message of the std::invalid_argument that `make` throws ("" if none).
template <class Make>
std::string invalid_argument_from(Make make) {
  try {
    make();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

syncpool::pool_options<widget> capacity(uint32_t n) {
  syncpool::pool_options<widget> o;
  o.local_capacity = n;
  return o;
}

TEST(PoolOptions, LocalCapacityZeroThrowsInvalidArgument) {
  const std::string what = invalid_argument_from([] { widget_pool p(capacity(0)); });
  EXPECT_NE(what.find("local_capacity is 0"), std::string::npos) << what;
  EXPECT_NE(what.find("between 1 and 4096"), std::string::npos) << what;
}

TEST(PoolOptions, LocalCapacityAboveTheMaximumThrowsInvalidArgument) {
  static_assert(syncpool::pool_options<widget>::max_local_capacity == 4096);
  const std::string huge = invalid_argument_from([] { widget_pool p(capacity(4'000'000'000u)); });
  EXPECT_NE(huge.find("local_capacity is 4000000000"), std::string::npos) << huge;
  const std::string one_over = invalid_argument_from([] {
    widget_pool p([] { return std::make_unique<widget>(); }, capacity(4097));
  });
  EXPECT_NE(one_over.find("local_capacity is 4097"), std::string::npos) << one_over;
}

TEST(PoolOptions, LocalCapacityAtTheBoundsIsAccepted) {
  widget_pool one(capacity(1));
  EXPECT_EQ(one.local_capacity(), 1u);
  widget_pool most(capacity(syncpool::pool_options<widget>::max_local_capacity));
  EXPECT_EQ(most.local_capacity(), 4096u);
  for (int i = 0; i < 5000; ++i) most.put(std::make_unique<widget>(i));
  EXPECT_EQ(most.stats().cached, 5000u);
}

// ---------------------------------------------------------------------------
// One statistics vocabulary

uint64_t served(const syncpool::pool_stats& s) {
  return s.local_hits + s.stolen + s.victim_hits + s.misses;
}

TEST(StatsVocabulary, EveryPoolGetIsCountedOnce) {
  widget_pool p([] { return std::make_unique<widget>(); });
  std::vector<std::unique_ptr<widget>> held;
  for (int i = 0; i < 20; ++i) held.push_back(p.get());
  for (auto& w : held) p.put(std::move(w));
  syncpool::collect();
  for (int i = 0; i < 30; ++i) p.put(p.get());
  const syncpool::pool_stats s = p.stats();
  EXPECT_EQ(served(s), 50u);
  EXPECT_EQ(s.misses, 20u);
}

TEST(StatsVocabulary, PoolResourceClassesUseTheSameNames) {
  static_assert(std::is_base_of_v<syncpool::pool_stats, syncpool::pool_resource_stats::counts>);
  syncpool::pool_resource r;
  syncpool::internal::testing_hooks::end_young_phase(r);  // so that something is cached
  const std::size_t largest = r.options().largest_required_pool_block;
  std::vector<std::pair<void*, std::size_t>> live;
  uint64_t calls = 0;
  for (std::size_t size : {8u, 64u, 64u, 200u, 4096u, 64u}) {
    live.emplace_back(r.allocate(size), size);
    ++calls;
  }
  live.emplace_back(r.allocate(largest + 1), largest + 1);  // straight to upstream
  ++calls;
  for (auto [p, size] : live) r.deallocate(p, size);
  for (int i = 0; i < 3; ++i) {
    r.deallocate(r.allocate(64), 64);
    ++calls;
  }

  const syncpool::pool_resource_stats s = r.stats();
  EXPECT_EQ(s.direct_allocations, 1u);
  EXPECT_EQ(served(s.total), calls);  // a direct request counts as a miss
  uint64_t cached = 0;
  std::size_t cached_bytes = 0;
  for (const auto& c : s.classes) {
    EXPECT_EQ(c.cached * c.block_size, c.cached_bytes) << "class " << c.block_size;
    cached += c.cached;
    cached_bytes += c.cached_bytes;
  }
  EXPECT_GT(cached, 0u);
  EXPECT_EQ(s.total.cached, cached);
  EXPECT_EQ(s.total.cached_bytes, cached_bytes);
}

}  // namespace
