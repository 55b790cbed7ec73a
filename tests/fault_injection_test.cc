// Fault injection: every allocation syncpool can depend on fails in turn.
//
//   1. The upstream resource throws std::bad_alloc at its N-th call, for
//      every N from 1 to one past the number of calls a clean run makes; in
//      three setups: plain, nested (a pool_resource over a pool_resource),
//      and max_blocks_per_chunk (many small upstream calls).
//   2. The global operator new (this binary replaces it) fails at its N-th
//      call, for every N likewise: bookkeeping of both faces.
//
// After each run: nothing leaked (the upstream's live bytes and this
// binary's count of live operator-new blocks are back where they were),
// stats() agreed with the upstream's own count while the resource lived,
// the resource was usable once the failures stopped, and every pool<T>
// object was destroyed once.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"
#include "tests/replaced_new.h"
#include "tests/test_resources.h"

// --- the global operator new, counted and made to fail on demand ------------

namespace {

std::atomic<long> g_live_news{0};
std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_calls{0};
std::atomic<uint64_t> g_fail_at{0};  // 0: never
std::atomic<uint64_t> g_injected{0};

}  // namespace

void* syncpool_test::replaced_new(std::size_t n, std::size_t alignment, bool nothrow) {
  if (g_armed.load(std::memory_order_relaxed)) {
    const uint64_t call = g_calls.fetch_add(1) + 1;
    if (call == g_fail_at.load()) {
      g_injected.fetch_add(1);
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
  }
  void* p = heap_new(n, alignment);
  if (p == nullptr) {
    if (nothrow) return nullptr;
    throw std::bad_alloc();
  }
  g_live_news.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void syncpool_test::replaced_delete(void* p) noexcept {
  if (p == nullptr) return;
  g_live_news.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}

namespace {

using syncpool::pool_resource;
using syncpool_test::counting_resource;

// An upstream that tracks its live bytes without the global heap (so that
// failing operator new cannot break the test's own bookkeeping).
class malloc_resource : public std::pmr::memory_resource {
 public:
  std::size_t live_bytes() const { return live_.load(); }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    alignment = std::max(alignment, sizeof(void*));
    void* p = std::aligned_alloc(alignment, (std::max<std::size_t>(bytes, 1) + alignment - 1) & ~(alignment - 1));
    if (p == nullptr) throw std::bad_alloc();
    live_.fetch_add(bytes);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
    live_.fetch_sub(bytes);
    std::free(p);
  }
  bool do_is_equal(const std::pmr::memory_resource& o) const noexcept override { return this == &o; }
  std::atomic<std::size_t> live_{0};
};

struct tracked {
  static std::atomic<long>& alive() {
    static std::atomic<long> n{0};
    return n;
  }
  tracked() { alive().fetch_add(1); }
  ~tracked() { alive().fetch_sub(1); }
  char payload[48] = {};
};

constexpr std::size_t kSizes[] = {8, 24, 64, 100, 256, 1000, 4096, 5000, 20000, 100000};

// The work done while faults are injected; every step may fail with
// bad_alloc and the next one goes on. Returns the failures it saw.
int exercise(pool_resource& r, std::pmr::memory_resource& up_view, std::size_t (*upstream_live)(),
             bool* stats_agree) {
  int failures = 0;
  std::vector<std::pair<void*, std::size_t>> held;
  auto check_stats = [&] {
    if (upstream_live != nullptr && r.stats().total.upstream_bytes != upstream_live()) *stats_agree = false;
  };
  for (std::size_t i = 0; i < 40; ++i) {
    const std::size_t n = kSizes[i % std::size(kSizes)] + i;
    try {
      void* p = r.allocate(n, std::size_t{1} << (i % 5));
      held.emplace_back(p, n | (std::size_t{i % 5} << 56));
    } catch (const std::bad_alloc&) {
      ++failures;
    }
    check_stats();
  }
  for (std::size_t i = 0; i < held.size(); i += 2) {
    r.deallocate(held[i].first, held[i].second & ((std::size_t{1} << 56) - 1), std::size_t{1} << (held[i].second >> 56));
  }
  check_stats();
  try {
    std::pmr::vector<std::pmr::string> v(&r);
    for (int i = 0; i < 30; ++i) v.emplace_back(std::string(20 + i * 7, 'x'));
  } catch (const std::bad_alloc&) {
    ++failures;
  }
  syncpool::collect();
  r.collect();
  check_stats();
  for (std::size_t i = 1; i < held.size(); i += 2) {
    r.deallocate(held[i].first, held[i].second & ((std::size_t{1} << 56) - 1), std::size_t{1} << (held[i].second >> 56));
  }
  syncpool::flush_thread_cache();
  syncpool::collect();
  syncpool::collect();
  check_stats();
  (void)up_view;
  return failures;
}

// Once the failures stop, the resource works.
bool usable(pool_resource& r) {
  std::vector<std::pair<void*, std::size_t>> v;
  for (std::size_t n : kSizes) v.emplace_back(r.allocate(n), n);
  for (auto& [p, n] : v) r.deallocate(p, n);
  return true;
}

// --- 1. upstream failures ------------------------------------------------------

enum class setup { plain, nested, small_chunks };

counting_resource* g_up = nullptr;
std::size_t up_live() { return g_up->live_bytes(); }

struct upstream_run {
  uint64_t upstream_calls = 0;
  int failures = 0;
};

upstream_run run_with_upstream_failure(setup s, uint64_t fail_at) {
  upstream_run out;
  counting_resource up;
  g_up = &up;
  bool stats_agree = true;
  {
    std::pmr::pool_options options;
    if (s == setup::small_chunks) options.max_blocks_per_chunk = 2;
    pool_resource base(options, &up);
    pool_resource nested(&base);
    pool_resource& r = s == setup::nested ? nested : base;
    up.fail_on_call(fail_at);
    out.failures = exercise(r, up, s == setup::nested ? nullptr : &up_live, &stats_agree);
    up.fail_on_call(0);
    EXPECT_TRUE(usable(r)) << "fail_at " << fail_at;
    if (s == setup::nested) {
      EXPECT_EQ(base.stats().total.upstream_bytes, up.live_bytes());
    }
    out.upstream_calls = up.allocate_calls();
  }
  EXPECT_TRUE(stats_agree) << "stats() disagreed with upstream; fail_at " << fail_at;
  EXPECT_EQ(up.live_bytes(), 0u) << "leak; fail_at " << fail_at;
  EXPECT_TRUE(up.errors().empty()) << "fail_at " << fail_at;
  g_up = nullptr;
  return out;
}

uint64_t g_total_injected = 0;

void every_upstream_failure(setup s) {
  const uint64_t clean_calls = run_with_upstream_failure(s, 0).upstream_calls;
  ASSERT_GT(clean_calls, 3u);
  int runs_with_failures = 0;
  for (uint64_t n = 1; n <= clean_calls + 1; ++n) {
    if (run_with_upstream_failure(s, n).failures > 0) ++runs_with_failures;
  }
  // Most of the calls must have been made while the work could fail (the
  // rest are the usable() check's).
  EXPECT_GT(runs_with_failures, 0);
  g_total_injected += clean_calls + 1;
  std::printf("upstream failures (%s): %llu runs, %d saw a bad_alloc\n",
              s == setup::plain ? "plain" : s == setup::nested ? "nested" : "max_blocks_per_chunk",
              static_cast<unsigned long long>(clean_calls + 1), runs_with_failures);
}

TEST(FaultInjection, UpstreamFailsAtEveryCallPlain) { every_upstream_failure(setup::plain); }
TEST(FaultInjection, UpstreamFailsAtEveryCallNested) { every_upstream_failure(setup::nested); }
TEST(FaultInjection, UpstreamFailsAtEveryCallSmallChunks) { every_upstream_failure(setup::small_chunks); }

// --- 2. operator new failures --------------------------------------------------

malloc_resource* g_mup = nullptr;
std::size_t mup_live() { return g_mup->live_bytes(); }

// Both faces on a fresh thread (so that its caches go at its exit),
// with operator new failing at call `fail_at`. Returns operator new calls.
uint64_t run_with_new_failure(uint64_t fail_at, bool* ok) {
  uint64_t calls = 0;
  std::thread([&] {
    malloc_resource up;
    g_mup = &up;
    bool stats_agree = true;
    g_calls.store(0);
    g_fail_at.store(fail_at);
    g_armed.store(true);
    try {
      pool_resource r(&up);
      syncpool::pool<tracked> objects([] { return std::make_unique<tracked>(); });
      exercise(r, up, &mup_live, &stats_agree);
      for (int i = 0; i < 20; ++i) {
        try {
          std::vector<std::unique_ptr<tracked>> got;
          for (int k = 0; k < 12; ++k) got.push_back(objects.get());
          for (auto& o : got) objects.put(std::move(o));
        } catch (const std::bad_alloc&) {
        }
      }
      g_armed.store(false);
      if (!usable(r)) *ok = false;
      objects.put(std::make_unique<tracked>());
    } catch (const std::bad_alloc&) {
      // The constructor (of either face) failed: nothing to use.
    }
    g_armed.store(false);
    calls = g_calls.load();
    if (!stats_agree) *ok = false;
    if (up.live_bytes() != 0) *ok = false;
    g_mup = nullptr;
  }).join();
  return calls;
}

TEST(FaultInjection, OperatorNewFailsAtEveryCall) {
  bool ok = true;
  // Warm up the process-wide state that lives forever (the engine registry,
  // fork handlers), so that what remains after a run is a leak.
  run_with_new_failure(0, &ok);
  const long baseline = g_live_news.load();
  const uint64_t clean_calls = run_with_new_failure(0, &ok);
  ASSERT_TRUE(ok);
  ASSERT_GT(clean_calls, 10u);
  EXPECT_EQ(g_live_news.load(), baseline);
  for (uint64_t n = 1; n <= clean_calls + 1; ++n) {
    ok = true;
    g_injected.store(0);
    run_with_new_failure(n, &ok);
    EXPECT_TRUE(ok) << "fail_at " << n;
    EXPECT_EQ(g_live_news.load(), baseline) << "operator new blocks leaked; fail_at " << n;
    EXPECT_EQ(tracked::alive().load(), 0) << "fail_at " << n;
    if (n <= clean_calls) {
      EXPECT_EQ(g_injected.load(), 1u) << "fail_at " << n;
    }
  }
  g_total_injected += clean_calls + 1;
  std::printf("operator new failures: %llu runs\n", static_cast<unsigned long long>(clean_calls + 1));
}

}  // namespace
