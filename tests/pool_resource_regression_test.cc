// Regression tests for library bugs found while testing pool_resource.
// Each runs its scenario in a child process (EXPECT_EXIT), so that a crash
// fails that test only and shows the library's message.
//
// Each section describes its bug as it was found. While a bug is open, its
// test fails (in the configurations named at the section); once fixed, it
// passes and guards against the bug's return.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <memory_resource>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool_resource.h"
#include "tests/test_resources.h"

namespace {

using syncpool::pool_resource;
using syncpool_test::counting_resource;

class PoolResourceRegression : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// --- Bug 1 (all builds; caught reliably by ASan) ---------------------------
// A block deallocated on a thread after that thread's pool caches were torn
// down (from a thread_local destructor that runs after syncpool's exit hook)
// goes to the engine's orphans in a one-item batch (engine::put_slow,
// make_batch(1)). A thread that later takes that batch keeps it as its
// `spare` (engine::refill), and spill()/take_slots() then use the spare as if
// it had local_capacity slots: memcpy of local_capacity/2 pointers into a
// batch with room for one, a heap buffer overflow.

struct deallocate_at_thread_exit {
  std::pmr::memory_resource* resource = nullptr;
  void* p = nullptr;
  std::size_t bytes = 0;
  ~deallocate_at_thread_exit() {
    if (resource != nullptr) resource->deallocate(p, bytes);
  }
};

void deallocate_during_thread_exit_then_spill() {
  counting_resource up;
  {
    pool_resource pool(&up);
    std::thread([&pool] {
      // Constructed before the thread's first call into the pool, so it is
      // destroyed after the pool's per-thread exit hook.
      static thread_local deallocate_at_thread_exit late;
      late.p = pool.allocate(64);
      late.bytes = 64;
      late.resource = &pool;
    }).join();
    // This thread takes the one-block batch first (orphans are LIFO), then
    // frees more than it keeps privately: its cache spills into that batch.
    for (int round = 0; round < 4; ++round) {
      std::vector<void*> v;
      for (int i = 0; i < 1000; ++i) v.push_back(pool.allocate(64));
      for (void* p : v) pool.deallocate(p, 64);
      pool.collect();
    }
  }
  if (up.live_bytes() != 0) std::abort();
}

TEST_F(PoolResourceRegression, DeallocateDuringThreadExitThenSpillDoesNotOverflowABatch) {
  EXPECT_EXIT(
      {
        deallocate_during_thread_exit_then_spill();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 2 (ASan builds only) -----------------------------------------------
// Blocks of the direct classes (above 4 KiB) are poisoned when deallocated
// into the cache, and handed back to upstream still poisoned (by
// direct_blocks::deallocate from the engine's destroy, and by
// direct_blocks::release). The upstream owns that memory again: an upstream
// that writes to memory it gets back (debug fill, an intrusive free list, a
// monotonic_buffer_resource reused after release()) is reported for
// use-after-poison. chunk_heap::free_chunk unpoisons; direct blocks do not.

void give_back_direct_blocks_to_a_scribbling_upstream(bool through_collect) {
  counting_resource up;
  up.set_scribble_on_free(true);
  {
    pool_resource pool(&up);
    for (std::size_t n : {5000, 8192, 20000, 65536}) {
      void* p = pool.allocate(n);
      pool.deallocate(p, n);
    }
    if (through_collect) {
      pool.collect();
      pool.collect();
    } else {
      pool.release();
    }
  }
  if (up.live_bytes() != 0) std::abort();
}

TEST_F(PoolResourceRegression, DirectClassBlocksGoBackToUpstreamUnpoisonedByCollect) {
  EXPECT_EXIT(
      {
        give_back_direct_blocks_to_a_scribbling_upstream(true);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(PoolResourceRegression, DirectClassBlocksGoBackToUpstreamUnpoisonedByRelease) {
  EXPECT_EXIT(
      {
        give_back_direct_blocks_to_a_scribbling_upstream(false);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 3 (all builds) ------------------------------------------------------
// Destroying (or release()-ing) a pool_resource while another thread runs
// syncpool::collect() (e.g. a syncpool::collector) frees memory that
// collect() is still giving back. engine::age() takes the victim generation
// under its lock and destroys it after unlocking (destroy_chain ->
// size_class::destroy_blocks); meanwhile ~resource_impl -> release() drains
// the engine and returns every chunk and direct block upstream. ~engine does
// wait for collectors (pins_), but only after release() has freed
// everything. The collector then calls chunk_heap::give_back on freed chunks
// (heap-use-after-free) or direct_blocks::deallocate on blocks release()
// already returned ("not a live block of this resource" + abort).
//
// The test makes the interleaving deterministic: the upstream holds the
// collecting thread inside its first deallocate until the destroying thread
// has returned blocks upstream (or 1 s passed: with the bug fixed, release()
// waits for the collector and the test just takes 1 s longer).

void destroy_while_collecting() {
  counting_resource up;
  auto pool = std::make_unique<pool_resource>(&up);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(pool->allocate(8192));
  for (void* p : blocks) pool->deallocate(p, 8192);
  syncpool::collect();  // the cached blocks are the victim generation now

  std::mutex mu;
  std::condition_variable cv;
  std::thread::id collector_id;
  bool collector_inside = false;
  bool destroyer_returned_blocks = false;
  up.set_deallocate_hook([&](void*, std::size_t, std::size_t) {
    std::unique_lock<std::mutex> lock(mu);
    if (std::this_thread::get_id() == collector_id) {
      if (!collector_inside) {
        collector_inside = true;
        cv.notify_all();
        cv.wait_for(lock, std::chrono::seconds(1), [&] { return destroyer_returned_blocks; });
      }
    } else {
      destroyer_returned_blocks = true;
      cv.notify_all();
    }
  });
  std::thread collector([&] {
    {
      std::lock_guard<std::mutex> lock(mu);
      collector_id = std::this_thread::get_id();
    }
    syncpool::collect();  // destroys the victims: gives them back upstream
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return collector_inside; });
  }
  pool.reset();  // while the collector is half-way through the victims
  collector.join();
  up.set_deallocate_hook(nullptr);
  if (up.live_bytes() != 0 || !up.errors().empty()) std::abort();
}

TEST_F(PoolResourceRegression, DestroyingAResourceWhileAnotherThreadCollects) {
  EXPECT_EXIT(
      {
        destroy_while_collecting();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 4 (all builds; caught reliably by ASan) ---------------------------
// With options.largest_required_pool_block below 1 KiB (the fast path's
// table limit, kTableLimit, then; 4 KiB now), pool_resource::do_allocate /
// do_deallocate index classes_[class_index_small(rounded)] for any rounded
// size up to 1 KiB
// without checking it against the number of classes: a request of, say, 500
// bytes on a resource whose largest class is 64 reads a size_class past the
// end of the array (and, on deallocate, poisons/caches through it). Native
// builds usually get away with it (the garbage engine's checks fail and the
// slow path sends the request upstream); ASan reports a heap-buffer-overflow.

void small_largest_block(std::size_t largest) {
  counting_resource up;
  {
    pool_resource pool(std::pmr::pool_options{0, largest}, &up);
    for (std::size_t n : {std::size_t{9}, std::size_t{100}, std::size_t{500}, std::size_t{1000},
                          std::size_t{1024}, std::size_t{2000}, std::size_t{4096}}) {
      if (n <= pool.options().largest_required_pool_block) continue;
      void* p = pool.allocate(n, 1);
      void* q = pool.allocate(n, 8);
      pool.deallocate(q, n, 8);
      pool.deallocate(p, n, 1);
    }
  }
  if (up.live_bytes() != 0 || !up.errors().empty()) std::abort();
}

TEST_F(PoolResourceRegression, SmallLargestRequiredPoolBlockFastPathStaysInBounds) {
  for (std::size_t largest : {std::size_t{8}, std::size_t{64}, std::size_t{500}, std::size_t{2048}}) {
    EXPECT_EXIT(
        {
          small_largest_block(largest);
          std::exit(0);
        },
        ::testing::ExitedWithCode(0), "")
        << "largest_required_pool_block = " << largest;
  }
}

// --- Bug 5 (ASan builds only) ----------------------------------------------
// Classes 10, 12, 20 and 28 are not multiples of ASan's 8-byte shadow
// granule, so neighbouring blocks share a shadow byte. do_allocate's
// unpoison and do_deallocate's poison read-modify-write that byte without
// synchronization (ASAN_(UN)POISON_MEMORY_REGION is not atomic): when two
// threads own neighbours, one thread's poison of its block can re-poison the
// shared granule right after the other thread unpoisoned its block, and the
// other thread's next write to its own live block is reported as
// use-after-poison (a false positive that aborts the program).

void neighbours_on_two_threads(std::size_t size) {
  pool_resource pool;
  // Carve a contiguous run of blocks on this thread, then hand every other
  // one to a second thread: neighbours now belong to different threads.
  std::vector<char*> run;
  for (int i = 0; i < 32; ++i) run.push_back(static_cast<char*>(pool.allocate(size, 1)));
  std::vector<char*> mine, theirs;
  for (std::size_t i = 0; i < run.size(); ++i) (i % 2 == 0 ? mine : theirs).push_back(run[i]);
  auto churn = [&pool, size](std::vector<char*> blocks) {
    for (int round = 0; round < 50000; ++round) {
      for (char*& p : blocks) {
        std::memset(p, round & 0xff, size);  // our own, live block
        pool.deallocate(p, size, 1);
        p = static_cast<char*>(pool.allocate(size, 1));  // LIFO: the same block again
      }
    }
    for (char* p : blocks) pool.deallocate(p, size, 1);
  };
  std::thread other(churn, theirs);
  churn(mine);
  other.join();
}

TEST_F(PoolResourceRegression, NeighbouringBlocksOnTwoThreadsAreNotFalselyPoisoned) {
#ifndef SYNCPOOL_TEST_ASAN
  GTEST_SKIP() << "an AddressSanitizer bug: needs --config=asan";
#endif
  for (std::size_t size : {std::size_t{10}, std::size_t{12}, std::size_t{20}, std::size_t{28}}) {
    EXPECT_EXIT(
        {
          neighbours_on_two_threads(size);
          std::exit(0);
        },
        ::testing::ExitedWithCode(0), "")
        << "size " << size;
  }
}

// --- Bug 6 (UBSan: --config=asan) ---------------------------------------------
// chunk_heap links free blocks through their first word
// (*static_cast<void**>(block) in chunk_heap::give_back and take). Blocks of
// classes 10, 12, 20 and 28 sit at base + i * size, so most are not 8-byte
// aligned: a misaligned void* store/load, undefined behaviour (UBSan:
// "store to misaligned address ... requires 8 byte alignment"; a fault on
// strict-alignment targets). std::memcpy of the link would be fine.

void free_list_of_small_odd_classes() {
  counting_resource up;
  {
    pool_resource pool(&up);
    for (std::size_t size : {std::size_t{10}, std::size_t{12}, std::size_t{20}, std::size_t{28}}) {
      std::vector<void*> v;
      for (int i = 0; i < 100; ++i) v.push_back(pool.allocate(size, 1));
      void* kept = v.back();  // keeps the chunk alive
      v.pop_back();
      for (void* p : v) pool.deallocate(p, size, 1);
      pool.collect();
      pool.collect();  // the cached blocks go back onto their chunk's free list
      v.clear();
      for (int i = 0; i < 100; ++i) v.push_back(pool.allocate(size, 1));  // and come off it
      for (void* p : v) pool.deallocate(p, size, 1);
      pool.deallocate(kept, size, 1);
    }
  }
  if (up.live_bytes() != 0) std::abort();
}

TEST_F(PoolResourceRegression, ChunkFreeListLinksAreNotAccessedMisaligned) {
  EXPECT_EXIT(
      {
        free_list_of_small_odd_classes();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 7 (ASan builds only: elsewhere the overflow lands unseen) ---------
// An upstream may call back into syncpool on the calling thread: the
// resource over a pool_resource gives it blocks back when a collect() runs
// from inside an upstream call (found by a probe with nested resources and
// an upstream that collects). The engine's slow paths held a reference to
// the thread's class table, or its range, across their calls for memory:
//   - engine::cover_class copied the old table into a new one sized for
//     the range it saw before asking for memory; a call back that covered
//     a class outside that range (a deallocate of another thread's block)
//     had widened the table meanwhile, and the copy wrote past the new one;
//   - engine::grow_slots (after new_batch), make_room_in_array (after
//     grow_slots) and release_share (after each spill) kept using the old
//     table, which that call back had freed.
// The upstream here gives another thread's blocks back to the resource at
// its k-th call from a point on, for every k, while this thread's cache
// walks up (or down) the classes, so that some of those calls come from
// inside cover_class and grow_slots, whatever the arena's slab sizes.

class calling_back_upstream : public counting_resource {
 public:
  enum action { give_back = 1, flush = 2, collect = 4 };
  void arm(std::pmr::memory_resource* target, std::vector<std::pair<void*, std::size_t>> blocks, int k,
           int actions) {
    target_ = target;
    blocks_ = std::move(blocks);
    countdown_ = k;
    actions_ = actions;
  }
  std::vector<std::pair<void*, std::size_t>> take_back() { return std::move(blocks_); }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (countdown_ > 0 && --countdown_ == 0) {
      if ((actions_ & give_back) != 0) {
        for (auto [p, n] : blocks_) target_->deallocate(p, n);
        blocks_.clear();
      }
      if ((actions_ & flush) != 0) syncpool::flush_thread_cache();
      if ((actions_ & collect) != 0) syncpool::collect();
    }
    return counting_resource::do_allocate(bytes, alignment);
  }

 private:
  std::pmr::memory_resource* target_ = nullptr;
  std::vector<std::pair<void*, std::size_t>> blocks_;
  int countdown_ = 0;
  int actions_ = 0;
};

void upstream_calls_back_while_the_class_table_grows() {
  using action = calling_back_upstream::action;
  for (const int actions : {int{action::give_back}, action::give_back | action::flush,
                            action::give_back | action::collect}) {
    for (const bool down : {false, true}) {
      for (int k = 1; k <= 64; ++k) {
        calling_back_upstream up;
        {
          pool_resource pool(&up);
          syncpool::internal::testing_hooks::end_young_phase(pool);
          // Blocks of classes at the far end of this thread's walk, from a
          // thread that stays alive (so that this one does not take its
          // cache over, with those classes covered).
          std::vector<std::pair<void*, std::size_t>> far;
          std::promise<void> ready;
          std::promise<void> done;
          std::thread other([&] {
            for (const std::size_t n : down ? std::vector<std::size_t>{8, 16, 24}
                                            : std::vector<std::size_t>{2048, 3072, 4096}) {
              far.emplace_back(pool.allocate(n), n);
            }
            ready.set_value();
            done.get_future().wait();
          });
          ready.get_future().wait();
          up.arm(&pool, far, k, actions);
          std::vector<std::pair<void*, std::size_t>> mine;
          for (std::size_t i = 0; i < 128; ++i) {
            const std::size_t n = down ? 1024 - 8 * i : 8 + 8 * i;
            mine.emplace_back(pool.allocate(n), n);
            std::memset(mine.back().first, 0x5A, n);
          }
          for (auto [p, n] : mine) pool.deallocate(p, n);
          for (auto [p, n] : up.take_back()) pool.deallocate(p, n);
          done.set_value();
          other.join();
        }
        if (up.live_bytes() != 0 || !up.errors().empty()) std::abort();
      }
    }
  }
}

TEST_F(PoolResourceRegression, AnUpstreamThatCallsBackWhileTheClassTableGrows) {
  EXPECT_EXIT(
      {
        upstream_calls_back_while_the_class_table_grows();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 8 (all builds) ------------------------------------------------------
// An upstream that calls syncpool::flush_thread_cache() from its allocate()
// (to get memory back when it runs short) made a flush recurse until the
// stack ran out: a spill needs a batch, the batch memory from upstream,
// whose flush spilled the same class again (found by a probe).

class flushing_upstream : public counting_resource {
 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    syncpool::flush_thread_cache();
    return counting_resource::do_allocate(bytes, alignment);
  }
};

void upstream_that_flushes() {
  flushing_upstream up;
  {
    pool_resource pool(&up);
    std::vector<void*> v;
    for (int i = 0; i < 2000; ++i) v.push_back(pool.allocate(32));
    for (void* p : v) pool.deallocate(p, 32);  // the cache fills and spills
  }
  if (up.live_bytes() != 0 || !up.errors().empty()) std::abort();
}

TEST_F(PoolResourceRegression, AnUpstreamThatFlushesInAllocateDoesNotRecurse) {
  EXPECT_EXIT(
      {
        upstream_that_flushes();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// --- Bug 9 (all builds) ------------------------------------------------------
// Two threads, `outer` over a wrapper over `inner`, both upstreams calling
// back into syncpool (found by a probe, about one run in three). Thread A
// is inside outer's upstream call (outer's upstream lock held) and on its
// way into inner's; thread B is inside inner's upstream call (inner's lock
// held), whose collect() destroyed outer's dead blocks and so waited for
// outer's lock. Now a collect pass run from inside an upstream call only
// ages the resources whose upstream lock the thread does not hold already;
// a later pass destroys what died.

class hooked_upstream : public counting_resource {
 public:
  using counting_resource::counting_resource;
  void set_allocate_hook(std::function<void()> hook) { hook_ = std::move(hook); }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (std::function<void()> hook = std::exchange(hook_, nullptr)) hook();
    return counting_resource::do_allocate(bytes, alignment);
  }

 private:
  std::function<void()> hook_;
};

void collect_in_an_inner_upstream_while_an_outer_one_waits() {
  // A watchdog: at the bug, both threads wait for each other for good.
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(20));
    std::_Exit(3);
  }).detach();
  constexpr std::size_t kDirect = std::size_t{1} << 24;  // past every class: one upstream call each
  hooked_upstream bottom;
  {
    pool_resource inner(&bottom);
    hooked_upstream wrapper(&inner);
    {
      pool_resource outer(&wrapper);
      // A block of outer's that a second cycle finds dead: destroying it
      // takes outer's upstream lock.
      outer.deallocate(outer.allocate(8192), 8192);
      syncpool::collect();
      if (outer.stats().total.cached != 1) std::abort();  // a victim now
      std::promise<void> b_in_inner;
      std::promise<void> a_in_outer;
      bottom.set_allocate_hook([&] {
        b_in_inner.set_value();
        a_in_outer.get_future().wait();
        syncpool::collect();  // inner's upstream lock held
      });
      wrapper.set_allocate_hook([&] {
        b_in_inner.get_future().wait();
        a_in_outer.set_value();
        inner.deallocate(inner.allocate(kDirect), kDirect);  // outer's upstream lock held
      });
      std::thread b([&] { inner.deallocate(inner.allocate(kDirect), kDirect); });
      std::thread a([&] { outer.deallocate(outer.allocate(kDirect), kDirect); });
      a.join();
      b.join();
      // What the callback's pass kept, a pass from here destroys.
      syncpool::collect();
      syncpool::collect();
      if (outer.stats().total.upstream_bytes != 0) std::abort();
    }
  }
  if (bottom.live_bytes() != 0 || !bottom.errors().empty()) std::abort();
}

TEST_F(PoolResourceRegression, ACollectInsideAnUpstreamCallDoesNotWaitForAnotherResourcesUpstream) {
  EXPECT_EXIT(
      {
        collect_in_an_inner_upstream_while_an_outer_one_waits();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// And what such a pass only aged is given back by the passes after it: the
// pass used to take an idle resource off the active list while skipping its
// idle reset, and no later pass visited it again (found in review).
void resource_aged_from_inside_an_upstream_call_is_given_back_later() {
  counting_resource x_up;
  hooked_upstream y_up;
  {
    pool_resource x(&x_up);
    pool_resource y(&y_up);
    constexpr std::size_t kBig = std::size_t{4} << 20;
    x.deallocate(x.allocate(kBig), kBig);
    y_up.set_allocate_hook([] { syncpool::collect(); });
    y.deallocate(y.allocate(kBig), kBig);  // the hook runs inside y's upstream call
    for (int i = 0; i < 4; ++i) syncpool::collect();
    if (x_up.live_bytes() != 0) std::abort();
  }
  if (x_up.live_bytes() != 0 || y_up.live_bytes() != 0) std::abort();
}

TEST_F(PoolResourceRegression, WhatACollectInsideAnUpstreamCallKeptIsGivenBackLater) {
  EXPECT_EXIT(
      {
        resource_aged_from_inside_an_upstream_call_is_given_back_later();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
