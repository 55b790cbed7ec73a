// pool_resource's size classes, seen through the public API only:
// stats().classes[i].block_size lists them, and which class's counters move
// tells which class served a request.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "syncpool/internal/engine.h"
#include "syncpool/pool_resource.h"

namespace {

using syncpool::pool_resource;
using syncpool::pool_resource_stats;

std::vector<std::size_t> class_sizes(const pool_resource& r) {
  std::vector<std::size_t> v;
  for (const auto& c : r.stats().classes) v.push_back(c.block_size);
  return v;
}

uint64_t served(const pool_resource_stats::counts& c) {
  return c.local_hits + c.stolen + c.victim_hits + c.misses;
}

// Index of the one class whose "served" count differs between two snapshots;
// -1 when none moved, -2 when several did.
int moved_class(const pool_resource_stats& before, const pool_resource_stats& after) {
  int found = -1;
  for (std::size_t i = 0; i < after.classes.size(); ++i) {
    if (served(after.classes[i]) != served(before.classes[i])) {
      if (found != -1) return -2;
      found = static_cast<int>(i);
    }
  }
  return found;
}

TEST(SizeClasses, StartAtEightAndIncreaseStrictlyUpToTheLargest) {
  pool_resource r;
  const auto sizes = class_sizes(r);
  ASSERT_FALSE(sizes.empty());
  EXPECT_EQ(sizes.front(), 8u);
  for (std::size_t i = 1; i < sizes.size(); ++i) {
    EXPECT_LT(sizes[i - 1], sizes[i]) << "class " << i;
  }
  EXPECT_EQ(sizes.back(), r.options().largest_required_pool_block);
  EXPECT_GE(sizes.back(), std::size_t{64} << 10);
}

TEST(SizeClasses, MatchTheDocumentedLadder) {
  // pool_resource.h: 8, 10, 12, 16, 20, 24, 28, 32, then four classes per
  // power of two up to 128 and eight above.
  pool_resource r;
  const auto sizes = class_sizes(r);
  std::vector<std::size_t> want = {8, 10, 12, 16, 20, 24, 28, 32};
  for (std::size_t p = 32; p < 128; p *= 2) {
    for (std::size_t k = 1; k <= 4; ++k) want.push_back(p + k * p / 4);
  }
  for (std::size_t p = 128; want.back() < r.options().largest_required_pool_block; p *= 2) {
    for (std::size_t k = 1; k <= 8; ++k) want.push_back(p + k * p / 8);
  }
  EXPECT_EQ(sizes, want);
}

TEST(SizeClasses, EveryClassIsAMultipleOfTheAlignmentsItServes) {
  // A class serves requests rounded up to a power-of-two alignment; a block at
  // chunk_base + i * size is aligned only if size is a multiple of every
  // alignment whose rounded requests land in this class.
  pool_resource r;
  const auto sizes = class_sizes(r);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::size_t prev = i == 0 ? 0 : sizes[i - 1];
    for (std::size_t a = 1; a <= sizes[i]; a *= 2) {
      const std::size_t first_multiple = (prev / a + 1) * a;  // smallest multiple of a above prev
      if (first_multiple <= sizes[i]) {
        EXPECT_EQ(sizes[i] % a, 0u) << "class " << sizes[i] << " serves alignment " << a;
      }
    }
  }
}

// Allocates every request size from 1 to the largest class (alignment 1, so
// that the request is exactly r bytes) and checks which class served it.
//
// stats() is taken only where the class changes: each request is freed
// before the next, and a thread's cache is LIFO, so the next request gets the
// same block back exactly when it is served by the same class (blocks of
// different classes never share an address while nothing goes upstream).
// Where the block changes, the request is repeated between two snapshots to
// see which class's counters move.
void check_every_size(pool_resource& r) {
  // Blocks must stay cached for that: no young phase, whose chunks go
  // upstream with their last block.
  syncpool::internal::testing_hooks::end_young_phase(r);
  const auto sizes = class_sizes(r);
  const std::size_t largest = r.options().largest_required_pool_block;
  int cls = -1;
  void* prev = nullptr;
  for (std::size_t req = 1; req <= largest; ++req) {
    void* p = r.allocate(req, 1);
    if (p != prev) {
      r.deallocate(p, req, 1);
      const pool_resource_stats before = r.stats();
      p = r.allocate(req, 1);
      const int c = moved_class(before, r.stats());
      ASSERT_GE(c, 0) << "request " << req << ": no single class served it (" << c << ")";
      ASSERT_GE(c, cls) << "request " << req << ": classes must not decrease with the size";
      cls = c;
    }
    const std::size_t block = sizes[static_cast<std::size_t>(cls)];
    ASSERT_GE(block, req) << "request " << req;
    // The class is the smallest that fits.
    if (cls > 0) {
      ASSERT_LT(sizes[static_cast<std::size_t>(cls) - 1], req) << "request " << req;
    }
    if (req >= 8) {
      // Waste at most 25% of the request, at most 12.5% above 128 bytes.
      const std::size_t waste = block - req;
      if (req > 128) {
        ASSERT_LE(waste * 8, req) << "request " << req << " -> class " << block;
      } else {
        ASSERT_LE(waste * 4, req) << "request " << req << " -> class " << block;
      }
    } else {
      ASSERT_EQ(block, 8u) << "request " << req;
    }
    r.deallocate(p, req, 1);
    prev = p;
  }
  EXPECT_EQ(static_cast<std::size_t>(cls), sizes.size() - 1);
  EXPECT_EQ(r.stats().direct_allocations, 0u);
}

TEST(SizeClasses, EveryRequestSizeGoesToTheSmallestFittingClassWithBoundedWaste) {
  pool_resource r;
  check_every_size(r);
}

TEST(SizeClasses, LargestPossibleLadderUpToOneMebibyte) {
  pool_resource r(std::pmr::pool_options{0, std::size_t{1} << 20});
  EXPECT_EQ(r.options().largest_required_pool_block, std::size_t{1} << 20);
  check_every_size(r);
}

TEST(SizeClasses, SmallerLargestBlockKeepsTheSameLadder) {
  pool_resource r(std::pmr::pool_options{0, 1000});
  EXPECT_EQ(r.options().largest_required_pool_block, 1024u);
  check_every_size(r);
  // One byte more than the largest class goes straight to upstream.
  const uint64_t direct = r.stats().direct_allocations;
  void* p = r.allocate(1025, 1);
  EXPECT_EQ(r.stats().direct_allocations, direct + 1);
  r.deallocate(p, 1025, 1);
}

TEST(SizeClasses, ZeroByteRequestsUseTheSmallestClass) {
  pool_resource r;
  const auto before = r.stats();
  void* p = r.allocate(0, 1);
  EXPECT_EQ(moved_class(before, r.stats()), 0);
  r.deallocate(p, 0, 1);
}

// Every size around the fast path's table (up to 4 KiB) at every pooled
// alignment: aligned as asked, and all of it writable at once (ASan and the
// pattern check catch a block that is too small or shared).
TEST(SizeClasses, EverySizeAtEveryPooledAlignmentIsAlignedAndWhole) {
  pool_resource r;
  for (std::size_t align = 1; align <= 64; align *= 2) {
    std::vector<std::pair<unsigned char*, std::size_t>> blocks;
    for (std::size_t req = 1; req <= 4200; ++req) {
      auto* p = static_cast<unsigned char*>(r.allocate(req, align));
      ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << req << "/" << align;
      std::memset(p, static_cast<int>(req & 0xff), req);
      blocks.emplace_back(p, req);
    }
    for (const auto& [p, req] : blocks) {
      for (std::size_t i = 0; i < req; i += 61) {
        ASSERT_EQ(p[i], static_cast<unsigned char>(req & 0xff)) << req << "/" << align;
      }
      r.deallocate(p, req, align);
    }
  }
}

TEST(SizeClasses, AlignmentRoundsTheRequestUp) {
  // (bytes, alignment) is served by the class of bytes rounded up to the
  // alignment (at least the alignment itself), for alignments up to 64;
  // more aligned requests go straight to upstream, aligned as asked.
  pool_resource r;
  const auto sizes = class_sizes(r);
  for (std::size_t align = 1; align <= 4096; align *= 2) {
    for (std::size_t req : {std::size_t{1}, std::size_t{9}, std::size_t{33}, std::size_t{129},
                            std::size_t{1000}, std::size_t{2047}, std::size_t{4000}, std::size_t{4096},
                            std::size_t{4097}}) {
      const std::size_t rounded = std::max((req + align - 1) / align * align, align);
      const auto before = r.stats();
      void* p = r.allocate(req, align);
      const auto after = r.stats();
      const int c = moved_class(before, after);
      // Above 4 KiB a class's blocks are plain upstream blocks, aligned as
      // upstream aligns by default: more aligned requests go there directly.
      if (align > 64 || (rounded > 4096 && align > alignof(std::max_align_t))) {
        EXPECT_EQ(c, -1) << req << "/" << align;
        EXPECT_EQ(after.direct_allocations, before.direct_allocations + 1) << req << "/" << align;
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << req << "/" << align;
        r.deallocate(p, req, align);
        continue;
      }
      ASSERT_GE(c, 0) << req << "/" << align;
      const std::size_t block = sizes[static_cast<std::size_t>(c)];
      EXPECT_GE(block, rounded) << req << "/" << align;
      if (c > 0) {
        EXPECT_LT(sizes[static_cast<std::size_t>(c) - 1], rounded) << req << "/" << align;
      }
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << req << "/" << align;
      r.deallocate(p, req, align);
    }
  }
}

}  // namespace
