// pool_resource's debug mode (SYNCPOOL_DEBUG_CHECKS, --config=debug_checks):
// a double deallocate, or a deallocate with another size or alignment than
// the allocate, aborts with a message naming the block. Runs against a build
// of the library with the checks on (//:syncpool_debug_checks).
//
// Also: under AddressSanitizer, a pooled block is poisoned while it sits in
// the pool, so writing to it after deallocate is reported.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory_resource>
#include <new>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool_resource.h"
#include "tests/replaced_new.h"
#include "tests/test_resources.h"

// Global operator new, counted and made to fail on demand, in the calling
// thread only.
namespace {
thread_local bool t_fail_new = false;
thread_local uint64_t t_news = 0;
}  // namespace

void* syncpool_test::replaced_new(std::size_t n, std::size_t alignment, bool nothrow) {
  if (!t_fail_new) {
    ++t_news;
    if (void* p = heap_new(n, alignment)) return p;
  }
  if (nothrow) return nullptr;
  throw std::bad_alloc();
}
void syncpool_test::replaced_delete(void* p) noexcept { std::free(p); }

namespace {

using syncpool::pool_resource;
using syncpool_test::counting_resource;

class PoolResourceDebug : public ::testing::Test {
 protected:
  // Threads may have run before a death test: fork+exec, not plain fork.
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// One of each kind of block: chunked class, direct class, oversize, and
// over-aligned (straight upstream).
struct shape {
  std::size_t bytes;
  std::size_t alignment;
};
const shape kShapes[] = {{1, 1}, {64, 8}, {1000, 16}, {4096, 4096}, {20000, 16}, {200000, 64}, {5000, 256}};

constexpr const char* kNotAllocated =
    "syncpool::pool_resource: deallocate\\(0x[0-9a-f]+, [0-9]+, [0-9]+\\): the block was not "
    "allocated by this resource, or was already deallocated \\(double deallocate\\)";

TEST_F(PoolResourceDebug, CorrectUseIsNeverFlagged) {
  // Every size and alignment, cross-thread deallocation, release() with
  // blocks outstanding, collect(): no false alarm.
  counting_resource up;
  {
    pool_resource pool(&up);
    std::vector<void*> blocks;
    std::vector<shape> shapes;
    for (std::size_t align = 1; align <= 4096; align *= 2) {
      for (std::size_t n = 0; n <= 70000; n = n < 300 ? n + 1 : n * 5 / 4) {
        blocks.push_back(pool.allocate(n, align));
        shapes.push_back({n, align});
      }
    }
    std::thread([&] {
      for (std::size_t i = 0; i < blocks.size(); i += 2) {
        pool.deallocate(blocks[i], shapes[i].bytes, shapes[i].alignment);
      }
    }).join();
    syncpool::collect();
    for (std::size_t i = 1; i < blocks.size(); i += 2) {
      pool.deallocate(blocks[i], shapes[i].bytes, shapes[i].alignment);
    }
    // release() with blocks outstanding forgets them; then all is fresh.
    for (const shape& s : kShapes) (void)pool.allocate(s.bytes, s.alignment);
    pool.release();
    for (const shape& s : kShapes) {
      void* p = pool.allocate(s.bytes, s.alignment);
      pool.deallocate(p, s.bytes, s.alignment);
    }
  }
  EXPECT_EQ(up.live_bytes(), 0u);
}

TEST_F(PoolResourceDebug, DoubleDeallocateAborts) {
  for (const shape& s : kShapes) {
    EXPECT_DEATH(
        {
          pool_resource pool;
          void* p = pool.allocate(s.bytes, s.alignment);
          pool.deallocate(p, s.bytes, s.alignment);
          pool.deallocate(p, s.bytes, s.alignment);
        },
        kNotAllocated)
        << s.bytes << "/" << s.alignment;
  }
}

TEST_F(PoolResourceDebug, DoubleDeallocateOnAnotherThreadAborts) {
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(48);
        std::thread([&] { pool.deallocate(p, 48); }).join();
        pool.deallocate(p, 48);
      },
      kNotAllocated);
}

TEST_F(PoolResourceDebug, DeallocateWithTheWrongSizeAborts) {
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(64, 8);
        pool.deallocate(p, 32, 8);
      },
      "syncpool::pool_resource: deallocate\\(0x[0-9a-f]+, 32, 8\\): allocated as \\(64, 8\\); "
      "size and alignment must match");
  // Even when both sizes fall in the same class.
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(60, 8);
        pool.deallocate(p, 64, 8);
      },
      "allocated as \\(60, 8\\); size and alignment must match");
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(200000, 8);
        pool.deallocate(p, 100000, 8);
      },
      "allocated as \\(200000, 8\\); size and alignment must match");
}

TEST_F(PoolResourceDebug, DeallocateWithTheWrongAlignmentAborts) {
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(64, 16);
        pool.deallocate(p, 64, 8);
      },
      "syncpool::pool_resource: deallocate\\(0x[0-9a-f]+, 64, 8\\): allocated as \\(64, 16\\); "
      "size and alignment must match");
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(5000, 256);
        pool.deallocate(p, 5000, 16);
      },
      "allocated as \\(5000, 256\\); size and alignment must match");
}

TEST_F(PoolResourceDebug, DeallocateToAnotherResourceAborts) {
  EXPECT_DEATH(
      {
        pool_resource a;
        pool_resource b;
        void* p = a.allocate(64);
        b.deallocate(p, 64);
      },
      kNotAllocated);
  EXPECT_DEATH(
      {
        pool_resource pool;
        alignas(16) static char not_from_a_pool[64];
        pool.deallocate(not_from_a_pool, 64);
      },
      kNotAllocated);
}

TEST_F(PoolResourceDebug, DeallocateAfterReleaseAborts) {
  // release() invalidates every outstanding block.
  EXPECT_DEATH(
      {
        pool_resource pool;
        void* p = pool.allocate(64);
        pool.release();
        pool.deallocate(p, 64);
      },
      kNotAllocated);
}

TEST_F(PoolResourceDebug, ConstructionAllocatesNothingAndAnUnrecordedBlockGoesBack) {
  // The checks keep their records on the global heap, made at the first
  // allocate: construction stays free of allocations, and an allocate whose
  // record cannot be made throws std::bad_alloc with the block back in the
  // pool (before, the checker was made in a noexcept constructor, and a
  // failing operator new called std::terminate).
  counting_resource up;
  t_news = 0;
  pool_resource pool(&up);
  EXPECT_EQ(t_news, 0u) << "operator new during construction";
  EXPECT_EQ(up.allocate_calls(), 0u);
  // A cached 64-byte block (past the young phase, whose blocks go back to
  // their region instead), and a checker that exists: the next allocate is
  // a hit whose only allocation is its record.
  syncpool::internal::testing_hooks::end_young_phase(pool);
  pool.deallocate(pool.allocate(64), 64);
  const uint64_t cached = pool.stats().total.cached;
  ASSERT_GT(cached, 0u);
  t_fail_new = true;
  EXPECT_THROW(static_cast<void>(pool.allocate(64)), std::bad_alloc);
  t_fail_new = false;
  EXPECT_EQ(pool.stats().total.cached, cached) << "the block whose record failed is held";
  // The pool still works, and its checker never recorded that block.
  void* p = pool.allocate(64);
  pool.deallocate(p, 64);
  EXPECT_DEATH(pool.deallocate(p, 64), kNotAllocated);
}

TEST_F(PoolResourceDebug, WriteAfterDeallocateIsReportedByAsan) {
#ifndef SYNCPOOL_TEST_ASAN
  GTEST_SKIP() << "needs AddressSanitizer (--config=asan)";
#else
  // As in pool_resource_test: a young class's chunk is back upstream.
  for (const bool young : {true, false}) {
    for (std::size_t n : {64, 4096, 8192}) {
      EXPECT_DEATH(
          {
            pool_resource pool;
            if (!young) syncpool::internal::testing_hooks::end_young_phase(pool);
            auto* p = static_cast<volatile char*>(pool.allocate(n));
            p[0] = 1;
            pool.deallocate(const_cast<char*>(p), n);
            p[n / 2] = 2;
          },
          young && n <= 4096 ? "heap-use-after-free" : "use-after-poison")
          << n << (young ? " young" : "");
    }
  }
#endif
}

}  // namespace
