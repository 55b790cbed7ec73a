// design_floors: the least a per-thread cache of each of two shapes costs on
// compare_allocators' own workloads, next to pool_resource, to tell what
// pool_resource's design costs from what its implementation adds.
//
//   ./bazelw run -c opt //bench:design_floors -- --benchmark_filter='batch|server|pair/.*/64$'
//
// Rows (the same workload code as compare_allocators, bench/workloads.h):
//   pool_resource     syncpool::pool_resource over new_delete_resource(),
//                     its upstream counted, as in allocator_benchmarks_glibc
//   floor_array       per thread and class, a stack of pointers (what
//                     pool_resource's thread caches are): pop and push, no
//                     bound, no revocation, no statistics
//   floor_intrusive   per thread and class, a free list threaded through the
//                     free blocks themselves (what tcmalloc's thread caches
//                     and mimalloc's pages are): pop and push, nothing else
//
// The floors are models, not allocators: blocks come from 64 KiB chunks
// carved per thread and class and never go back; the state is one per
// thread for the whole process, not one per resource (a per-instance
// resource must first find the calling thread's cache for that instance,
// which a floor skips), and it carries over from one benchmark to the next,
// where pool_resource starts afresh. Hence one thread only, and only the
// workloads that stay bounded on one thread: pair, batch, containers,
// threads and server. Both use pool_resource's size classes (read from
// stats()), so their blocks are the sizes pool_resource hands out.
//
// bench/design_floors.sh runs it alternated with allocator_benchmarks_tcmalloc
// on the same CPU and prints each row's ratio to tcmalloc's. The floors'
// fast paths are as lean as this harness allows (one table load for the
// class, static TLS, no frame, slow paths out of line): a floor that lost
// to pool_resource would measure the model, not the shape.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <new>
#include <optional>
#include <vector>

#include "bench/counting_resource.h"
#include "bench/workload_support.h"
#include "bench/workloads.h"
#include "syncpool/pool_resource.h"

namespace syncpool_bench {
namespace {

// pool_resource's class ladder up to kFloorLimit; larger requests (a hash
// table's buckets) go to operator new and delete.
constexpr std::size_t kFloorLimit = std::size_t{64} << 10;
constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
constexpr std::size_t kMaxClasses = 128;

// Plain globals, filled once by main() before any benchmark: a floor's
// lookup is one load, with no initialization guard to test.
std::size_t g_class_bytes[kMaxClasses];
uint8_t g_class_by_eighth[kFloorLimit / 8];  // (rounded size - 1) / 8 -> class

void read_class_ladder() {
  std::size_t n = 0;
  for (const auto& c : syncpool::pool_resource().stats().classes) {
    if (c.block_size > kFloorLimit) break;
    if (n == kMaxClasses) break;
    g_class_bytes[n++] = c.block_size;
  }
  if (n == 0 || g_class_bytes[n - 1] != kFloorLimit) {
    std::fprintf(stderr, "design_floors: pool_resource's classes changed; adjust kMaxClasses\n");
    std::abort();
  }
  std::size_t k = 0;
  for (std::size_t e = 0; e < kFloorLimit / 8; ++e) {
    while (g_class_bytes[k] < (e + 1) * 8) ++k;  // the smallest class holding 8(e + 1) bytes
    g_class_by_eighth[e] = static_cast<uint8_t>(k);
  }
}

// The class of a request (kNoClass: none), rounded up to its alignment
// first, as pool_resource does, so that every block of a class is aligned
// for the requests it serves: (bytes - 1) | (alignment - 1) is the rounded
// size less one (and huge for 0 bytes, which takes the large path). Sizes
// between two multiples of 8 share the larger's class: at most one class up
// for sizes under 32, the ladder's finest step.
constexpr std::size_t kNoClass = SIZE_MAX;
inline std::size_t class_of(std::size_t bytes, std::size_t alignment) {
  const std::size_t last = (bytes - 1) | (alignment - 1);
  if (last >= kFloorLimit || alignment > 64) return kNoClass;
  return g_class_by_eighth[last / 8];
}

// Out of line, as every slow path: the floors' fast paths then save no
// register.
[[gnu::noinline]] void* allocate_large(std::size_t bytes, std::size_t alignment) {
  return ::operator new(bytes, std::align_val_t{alignment});
}
[[gnu::noinline]] void deallocate_large(void* p, std::size_t alignment) { ::operator delete(p, std::align_val_t{alignment}); }

// What both floors share: per thread, a chunk per class to carve from.
struct carver {
  std::array<char*, kMaxClasses> next{};
  std::array<char*, kMaxClasses> end{};

  [[gnu::noinline]] void* carve(std::size_t cls, std::size_t size) {
    if (next[cls] == end[cls]) {
      const std::size_t bytes = std::max(kChunkBytes, size) / size * size;
      next[cls] = static_cast<char*>(::operator new(bytes, std::align_val_t{64}));
      end[cls] = next[cls] + bytes;
    }
    void* p = next[cls];
    next[cls] += size;
    return p;
  }
};

// The per-class storage of each floor, per thread: empty(), pop() (when
// not empty) and push().
struct pointer_stack {  // floor_array
  void** items = nullptr;
  std::size_t count = 0;
  std::size_t capacity = 0;

  bool empty() const { return count == 0; }
  void* pop() { return items[--count]; }
  void push(void* p) {
    if (count == capacity) return grow_and_push(p);  // a tail call: no frame here
    items[count++] = p;
  }
  [[gnu::noinline]] void grow_and_push(void* p) {
    // Grows, never shrinks: no bound, as a floor.
    capacity = std::max<std::size_t>(64, 2 * capacity);
    void** grown = static_cast<void**>(std::realloc(items, sizeof(void*) * capacity));
    if (grown == nullptr) std::abort();
    items = grown;
    items[count++] = p;
  }
};

struct free_list {  // floor_intrusive: the link is the free block's first word
  void* head = nullptr;

  bool empty() const { return head == nullptr; }
  void* pop() {
    void* p = head;
    head = *static_cast<void**>(p);
    return p;
  }
  void push(void* p) {
    *static_cast<void**>(p) = head;
    head = p;
  }
};

template <class Shelf>
class floor_resource final : public std::pmr::memory_resource {
  struct per_thread {
    std::array<Shelf, kMaxClasses> shelves{};
    carver chunks;
  };
  static per_thread& mine() {
    static thread_local per_thread t;
    return t;
  }

  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    const std::size_t cls = class_of(bytes, alignment);
    if (cls == kNoClass) return allocate_large(bytes, alignment);
    per_thread& t = mine();
    Shelf& shelf = t.shelves[cls];
    if (!shelf.empty()) return shelf.pop();
    return t.chunks.carve(cls, g_class_bytes[cls]);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    const std::size_t cls = class_of(bytes, alignment);
    if (cls == kNoClass) return deallocate_large(p, alignment);
    mine().shelves[cls].push(p);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

template <class Floor>
class floor_row final : public bench_resource {
 public:
  std::pmr::memory_resource* get() override { return &floor_; }

 private:
  Floor floor_;
};

class pool_row final : public bench_resource {
 public:
  std::pmr::memory_resource* get() override { return &resource_; }
  std::optional<std::size_t> upstream_bytes() const override { return upstream_.bytes_outstanding(); }

 private:
  counting_resource upstream_;
  syncpool::pool_resource resource_{&upstream_};
};

template <class Row>
allocator_row row(const char* id) {
  allocator_row r;
  r.id = id;
  r.make = [] { return std::unique_ptr<bench_resource>(std::make_unique<Row>()); };
  return r;
}

}  // namespace
}  // namespace syncpool_bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  using namespace syncpool_bench;
  read_class_ladder();
  // One thread only: benchmark threads are new threads each run, and a
  // floor's per-thread state (chunks carved inside the timed region, lists
  // lost when the thread exits) would measure thread start-up and leak.
  const bench_config config{{1}, 0};
  static const std::vector<allocator_row> rows = {row<pool_row>("pool_resource"),
                                                  row<floor_row<floor_resource<pointer_stack>>>("floor_array"),
                                                  row<floor_row<floor_resource<free_list>>>("floor_intrusive")};
  for (const allocator_row& r : rows) {
    internal::set_fixed_iterations(0);
    internal::set_registering_row(&r);
    internal::register_single_thread_workloads(r);
    internal::register_threaded_workloads(r, config, /*balanced_only=*/true);
    internal::set_registering_row(nullptr);
  }
  benchmark::RunSpecifiedBenchmarks();
  destroy_leftovers();
  benchmark::Shutdown();
  return 0;
}
