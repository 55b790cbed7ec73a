#include "bench/workloads.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/malloc_resource.h"
#include "bench/workload_support.h"

namespace syncpool_bench {
namespace {

TEST(WorkloadsTest, DefaultThreadCountsReachOversubscription) {
  EXPECT_EQ(thread_counts(2, 0), (std::vector<int>{1, 2, 8, 16, 64}));
  EXPECT_EQ(thread_counts(1, 0), (std::vector<int>{1, 8, 16, 64}));
  EXPECT_EQ(thread_counts(4, 0), (std::vector<int>{1, 2, 4, 8, 16, 64}));
  EXPECT_EQ(thread_counts(12, 0), (std::vector<int>{1, 2, 4, 8, 12, 16, 64}));
  EXPECT_EQ(thread_counts(64, 0), (std::vector<int>{1, 2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(thread_counts(0, 0), (std::vector<int>{1, 8, 16, 64}));  // unknown cores
}

TEST(WorkloadsTest, MaxThreadsGivesPowersOfTwoAndTheMax) {
  EXPECT_EQ(thread_counts(2, 5), (std::vector<int>{1, 2, 4, 5}));
  EXPECT_EQ(thread_counts(2, 8), (std::vector<int>{1, 2, 4, 8}));
  EXPECT_EQ(thread_counts(16, 1), (std::vector<int>{1}));
}

cpu_set_t affinity() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(pthread_getaffinity_np(pthread_self(), sizeof set, &set), 0);
  return set;
}

TEST(CpuPinTest, PinsThreadsToDistinctCpusAndRestores) {
  const cpu_set_t before = affinity();
  if (CPU_COUNT(&before) < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  int cpus[2] = {-1, -1};
  for (int i = 0; i < 2; ++i) {
    std::thread([&, i] {
      const internal::cpu_pin pin(i);
      const cpu_set_t now = affinity();
      ASSERT_EQ(CPU_COUNT(&now), 1);
      cpus[i] = sched_getcpu();
      EXPECT_TRUE(CPU_ISSET(cpus[i], &now));
    }).join();
  }
  EXPECT_NE(cpus[0], cpus[1]);
  EXPECT_TRUE(CPU_ISSET(cpus[0], &before));
  EXPECT_TRUE(CPU_ISSET(cpus[1], &before));
  {
    const internal::cpu_pin pin(0);  // this thread, as Google Benchmark's thread 0
    const cpu_set_t now = affinity();
    EXPECT_EQ(CPU_COUNT(&now), 1);
  }
  const cpu_set_t after = affinity();
  EXPECT_TRUE(CPU_EQUAL(&before, &after));
}

TEST(MallocResourceTest, HonoursEveryAlignmentAndSize) {
  std::pmr::memory_resource* r = malloc_free_resource<libc_malloc>::get();
  for (const std::size_t alignment : {1, 2, 8, 16, 32, 64, 4096}) {
    for (const std::size_t size : {1, 7, 64, 100, 5000}) {
      void* p = r->allocate(size, alignment);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % alignment, 0u) << size << " " << alignment;
      std::memset(p, 0xab, size);
      r->deallocate(p, size, alignment);
    }
  }
  EXPECT_TRUE(r->is_equal(*malloc_free_resource<libc_malloc>::get()));
  EXPECT_FALSE(r->is_equal(*std::pmr::new_delete_resource()));
}

// What the sized free is told: the size as allocated, rounded up to the
// alignment where aligned_alloc served it.
struct recording_malloc {
  static inline std::size_t last_free_size = 0;
  static void* allocate(std::size_t bytes) { return libc_malloc::allocate(bytes); }
  static void* allocate_aligned(std::size_t bytes, std::size_t alignment) {
    EXPECT_EQ(bytes % alignment, 0u);
    return libc_malloc::allocate_aligned(bytes, alignment);
  }
  static void deallocate(void* p, std::size_t bytes, std::size_t alignment) {
    last_free_size = bytes;
    libc_malloc::deallocate(p, bytes, alignment);
  }
};

TEST(MallocResourceTest, SizedFreeGetsTheAllocatedSize) {
  std::pmr::memory_resource* r = malloc_free_resource<recording_malloc>::get();
  r->deallocate(r->allocate(100, 16), 100, 16);
  EXPECT_EQ(recording_malloc::last_free_size, 100u);
  r->deallocate(r->allocate(100, 64), 100, 64);
  EXPECT_EQ(recording_malloc::last_free_size, 128u);
}

}  // namespace
}  // namespace syncpool_bench
