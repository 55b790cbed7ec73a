// The parts of pool_resource below its size classes:
//
//   serialized_upstream  calls to the upstream resource, behind one lock
//                        (new_delete_resource()'s excepted, see below)
//   meta_arena           the resource's bookkeeping memory (thread caches,
//                        class state, chunk lists), carved from slabs taken
//                        from upstream: nothing comes from the global heap
//   direct_set           blocks given out one upstream call each (the classes
//                        above 4 KiB and requests no class serves), so that
//                        release() can return them
//   poison / unpoison    ASan annotations for blocks held in caches
//
// None of them calls upstream while holding its own lock, so an upstream
// may call back into syncpool (collect() when it is short of memory).

#ifndef SYNCPOOL_SRC_RESOURCE_PARTS_H_
#define SYNCPOOL_SRC_RESOURCE_PARTS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>

#include "absl/base/thread_annotations.h"
#include "syncpool/internal/mutex.h"

#if defined(__SANITIZE_ADDRESS__)
#define SYNCPOOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYNCPOOL_ASAN 1
#endif
#endif

#ifdef SYNCPOOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace syncpool {
namespace internal {

// Blocks sitting in a cache are poisoned under ASan, so that a use after
// deallocate is reported at the faulting access. Only blocks whose size is a
// multiple of ASan's 8-byte granule: neighbouring blocks of the classes 10,
// 12, 20 and 28 share granules, and two threads updating one shadow byte
// would race and report false errors. Those few classes go unpoisoned.
inline constexpr bool poisonable(std::size_t block_size) noexcept { return block_size % 8 == 0; }

inline void poison(void* p, std::size_t n) noexcept {
#ifdef SYNCPOOL_ASAN
  if (poisonable(n)) ASAN_POISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

inline void unpoison(void* p, std::size_t n) noexcept {
#ifdef SYNCPOOL_ASAN
  if (poisonable(n)) ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
  (void)p;
  (void)n;
#endif
}

// A resource's upstream, behind one lock that serializes the calls to it,
// as every standard library's synchronized_pool_resource does: the usual
// upstreams (monotonic_buffer_resource, unsynchronized_pool_resource) are
// not thread-safe. Recursive, because an upstream may call back into
// syncpool (collect() when it runs short), and what that gives back comes
// to the same upstream on the same thread. Never taken on the hot path, and
// never while another syncpool lock is held.
//
// new_delete_resource() (the default upstream) is thread-safe by the
// standard's word, so its calls skip the lock: a resource made per request
// gives a chunk per class back at its end, and the lock was a tenth of that
// cost. (fork() still takes the lock: glibc's malloc has atfork handlers of
// its own.)
class serialized_upstream {
 public:
  explicit serialized_upstream(std::pmr::memory_resource* r) noexcept : r_(r) {}
  serialized_upstream(const serialized_upstream&) = delete;
  serialized_upstream& operator=(const serialized_upstream&) = delete;

  void* allocate(std::size_t bytes, std::size_t alignment) {
    if (thread_safe()) return r_->allocate(bytes, alignment);
    recursive_lock_guard lock(mu_);
    const call_frame frame(this);
    return r_->allocate(bytes, alignment);
  }
  void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    if (thread_safe()) return r_->deallocate(p, bytes, alignment);
    recursive_lock_guard lock(mu_);
    const call_frame frame(this);
    r_->deallocate(p, bytes, alignment);
  }
  std::pmr::memory_resource* resource() const noexcept { return r_; }
  recursive_mutex& mu() noexcept { return mu_; }

  // Whether the calling thread is inside any resource's locked upstream call.
  static bool inside_a_call() noexcept { return t_frames != nullptr; }
  // Whether the calling thread may call this upstream now without waiting
  // for a thread that may wait for it: it is inside no resource's locked
  // upstream call, or inside this one's (the lock is recursive), or this
  // upstream takes no lock. A thread inside resource B's upstream call that
  // runs a callback into syncpool (collect() when the upstream is short)
  // must not wait for resource A's upstream lock: another thread may hold
  // A's and be on its way into B (A over B, directly or through a wrapper),
  // and with a callback into A from B's upstream on a second thread, the
  // two waited for each other (a probe found it, 2 threads, nested
  // resources, collect() in both upstreams).
  bool may_call_now() const noexcept {
    if (thread_safe() || t_frames == nullptr) return true;
    for (const call_frame* f = t_frames; f != nullptr; f = f->next) {
      if (f->up == this) return true;
    }
    return false;
  }

 private:
  // The locked upstream calls the thread is inside, innermost first.
  struct call_frame {
    explicit call_frame(const serialized_upstream* u) noexcept : up(u), next(t_frames) { t_frames = this; }
    ~call_frame() { t_frames = next; }
    call_frame(const call_frame&) = delete;
    call_frame& operator=(const call_frame&) = delete;
    const serialized_upstream* const up;
    const call_frame* const next;
  };
  static inline thread_local constinit const call_frame* t_frames = nullptr;

  // Asked each call, not stored: a resource's size is fixed by its ABI.
  // Under ASan the lock stays: GCC 12's ASan allocator takes no locks
  // around fork(), so a child forked while another thread is inside
  // malloc can hang there; with the lock, fork's prepare handler waits
  // for syncpool's own upstream calls to finish (fork_test found it).
  bool thread_safe() const noexcept {
#ifdef SYNCPOOL_ASAN
    return false;
#else
    return r_ == std::pmr::new_delete_resource();
#endif
  }

  std::pmr::memory_resource* const r_;
  recursive_mutex mu_;
};

// Bookkeeping memory from upstream, in buckets of 16 B .. 4 KiB (see
// bucket_bytes) carved from slabs (1 KiB first, doubling to 16 KiB), each
// bucket with a free list; larger requests go to upstream one by one.
// Objects are aligned to min(the lowest set bit of their bucket, 64).
// release() returns every slab.
class meta_arena {
 public:
  meta_arena() = default;
  meta_arena(const meta_arena&) = delete;
  meta_arena& operator=(const meta_arena&) = delete;

  // nullptr when upstream has nothing (it threw).
  void* allocate(serialized_upstream& up, std::size_t bytes, std::size_t alignment) noexcept;
  // The same, but throws what upstream throws.
  void* allocate_or_throw(serialized_upstream& up, std::size_t bytes, std::size_t alignment);
  void deallocate(serialized_upstream& up, void* p, std::size_t bytes, std::size_t alignment) noexcept;

  // Everything the arena took from upstream, detached from it (the arena is
  // as new afterwards): to be given back by free_detached(), out of any lock.
  struct slab {
    slab* next;
    slab* prev;  // large allocations only (they leave one by one)
    std::size_t bytes;
  };
  struct detached {
    slab* slabs = nullptr;
    slab* large = nullptr;
  };
  detached detach() noexcept;
  static void free_detached(serialized_upstream& up, detached d) noexcept;

  std::size_t upstream_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  spin_mutex& mu() noexcept { return mu_; }
  // Objects handed out since the resource was made, wrapping (for tests).
  uint32_t allocations() noexcept {
    spin_lock_guard lock(mu_);
    return allocations_;
  }

  // What an object of `bytes` and `alignment` (at most 64) takes from a slab
  // (at most kLargest; above that, from upstream less the header).
  static std::size_t bucket_bytes(std::size_t bytes, std::size_t alignment) noexcept;
  // The largest object kept in slabs: freeing a larger one calls upstream.
  static constexpr std::size_t kLargestInSlabs = 4096;

 private:
  static constexpr int kBuckets = 40;  // 16, 32, ..., 256, 320, ..., 1024, 1280, ..., 4096
  static constexpr std::size_t kLargest = kLargestInSlabs;
  static constexpr std::size_t kLargeHeader = 64;
  static constexpr std::size_t kHeadsBytes = sizeof(void*) * kBuckets;
  static int bucket_index(std::size_t size) noexcept;  // of a bucket_bytes() result

  spin_mutex mu_;
  // The buckets' free lists, kBuckets heads at the start of the first slab
  // (nullptr until there is one): inline they were a third of a resource's
  // size, and a resource that lives in its young phase (the commonest short
  // life) never makes a slab.
  void** free_ ABSL_GUARDED_BY(mu_) = nullptr;
  char* bump_ ABSL_GUARDED_BY(mu_) = nullptr;
  char* end_ ABSL_GUARDED_BY(mu_) = nullptr;
  slab* slabs_ ABSL_GUARDED_BY(mu_) = nullptr;
  slab* large_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint32_t next_slab_ ABSL_GUARDED_BY(mu_) = 1024;
  uint32_t allocations_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<std::size_t> bytes_{0};
};

// Blocks taken from upstream one call each, by address, in an open
// addressing table from the arena: release() finds them all, and a
// deallocate of something that is not one of them is caught.
class direct_set {
 public:
  direct_set() = default;
  direct_set(const direct_set&) = delete;
  direct_set& operator=(const direct_set&) = delete;

  // Takes a block from upstream and records it. Throws what upstream throws,
  // for the block or for the record's memory. `request`: a request no class
  // serves (counted in requests()), not a block of a direct class.
  void* allocate(serialized_upstream& up, meta_arena& arena, std::size_t bytes, std::size_t alignment,
                 bool request);
  // Aborts with a message when `p` is not a live block of this set: that is
  // a double deallocate or a pointer from elsewhere.
  void deallocate(serialized_upstream& up, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Every live block, detached (the set is empty afterwards), to be given
  // back by free_detached() out of any lock and before the arena that holds
  // the table is freed.
  struct detached {
    void* table;
    uint32_t capacity;
  };
  detached detach() noexcept;
  static void free_detached(serialized_upstream& up, detached d) noexcept;
  // Forgets the table (its memory went with the arena; no block is live).
  void forget() noexcept;

  std::size_t upstream_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  // Requests no class serves, over the set's whole life.
  uint64_t requests() const noexcept { return requests_.load(std::memory_order_relaxed); }
  std::size_t live() const noexcept { return live_.load(std::memory_order_relaxed); }
  spin_mutex& mu() noexcept { return mu_; }

 private:
  struct entry {
    void* p;  // nullptr: empty; kTombstone: deleted
    std::size_t bytes;
    std::size_t alignment;
  };
  static inline void* const kTombstone = reinterpret_cast<void*>(uintptr_t{1});
  entry* find_locked(void* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void insert_locked(const entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  spin_mutex mu_;
  entry* table_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint32_t capacity_ ABSL_GUARDED_BY(mu_) = 0;  // a power of two
  uint32_t used_ ABSL_GUARDED_BY(mu_) = 0;      // live entries and tombstones
  uint32_t entries_ ABSL_GUARDED_BY(mu_) = 0;   // live entries
  std::atomic<std::size_t> live_{0};
  std::atomic<std::size_t> bytes_{0};
  std::atomic<uint64_t> requests_{0};
};

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_SRC_RESOURCE_PARTS_H_
