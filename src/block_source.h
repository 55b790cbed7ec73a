// Where pool_resource's blocks come from when no cache tier has one, and
// where they go when the engine destroys them (two collect cycles unused).
//
//   chunk_heap     classes up to 4 KiB: blocks carved from aligned chunks of
//                  upstream memory; a chunk whose blocks have all come back
//                  goes back upstream at once.
//   direct_blocks  larger classes and oversize requests: one upstream
//                  allocation per block, remembered so that release() can
//                  return blocks that are still allocated.
//
// Both are thread-safe behind their own mutex; they sit under the engine's
// caches, so they are only reached once per batch of blocks. Neither holds
// its mutex while it calls upstream: every upstream call goes through the
// resource's serialized_upstream instead, whose lock is taken alone.

#ifndef SYNCPOOL_SRC_BLOCK_SOURCE_H_
#define SYNCPOOL_SRC_BLOCK_SOURCE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <mutex>

#include <unordered_map>

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

// A resource's upstream, behind one lock that serializes every call to it,
// as every standard library's synchronized_pool_resource does: the usual
// upstreams (monotonic_buffer_resource, unsynchronized_pool_resource) are
// not thread-safe. Never taken on the hot path (once per chunk or large
// block), and never while another syncpool lock is held.
class serialized_upstream {
 public:
  explicit serialized_upstream(std::pmr::memory_resource* r) noexcept : r_(r) {}
  serialized_upstream(const serialized_upstream&) = delete;
  serialized_upstream& operator=(const serialized_upstream&) = delete;

  void* allocate(std::size_t bytes, std::size_t alignment) {
    recursive_lock_guard lock(mu_);
    return r_->allocate(bytes, alignment);
  }
  void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    recursive_lock_guard lock(mu_);
    r_->deallocate(p, bytes, alignment);
  }
  std::pmr::memory_resource* resource() const noexcept { return r_; }
  recursive_mutex& mu() noexcept { return mu_; }

 private:
  std::pmr::memory_resource* const r_;
  recursive_mutex mu_;
};

// Bookkeeping at the END of each chunk, so that blocks start at the chunk's
// (chunk-size aligned) base and every block is aligned to its size's lowest
// set bit.
struct chunk_header {
  void* free_list;  // blocks given back, linked through their first word
  uint32_t carved;  // blocks handed out by the bump pointer so far
  uint32_t free_count;
  chunk_header* prev;  // available list (has a free or uncarved block)
  chunk_header* next;
  chunk_header* all_prev;  // every chunk, for release()
  chunk_header* all_next;
  bool available;
};

class chunk_heap {
 public:
  // Blocks of `block_size` bytes in chunks of `chunk_bytes` (a power of two),
  // at most `max_blocks` of them per chunk.
  chunk_heap(std::size_t block_size, std::size_t chunk_bytes, std::size_t max_blocks) noexcept;
  ~chunk_heap() = default;  // release() first
  chunk_heap(const chunk_heap&) = delete;
  chunk_heap& operator=(const chunk_heap&) = delete;

  // Fills out[0..n) with up to `want` blocks (poisoned); returns n >= 1.
  // Throws what upstream throws when it has to grow and gets nothing.
  std::size_t take(serialized_upstream& upstream, void** out, std::size_t want);
  // Gives blocks back; chunks that become entirely free go upstream.
  void give_back(serialized_upstream& upstream, void* const* blocks, std::size_t n) noexcept;
  // Returns every chunk upstream, whatever is in use.
  void release(serialized_upstream& upstream) noexcept;

  std::size_t upstream_bytes() const noexcept { return upstream_bytes_.load(std::memory_order_relaxed); }
  std::size_t blocks_per_chunk() const noexcept { return blocks_per_chunk_; }
  mutex& mu() noexcept { return mu_; }

 private:
  chunk_header* header_of(void* block) const noexcept;
  char* base_of(chunk_header* h) const noexcept;
  // The free list's link lives in a free block's first bytes, which may be
  // neither aligned for a pointer nor (under ASan) addressable.
  void* read_link(void* block) const noexcept;
  void write_link(void* block, void* next) const noexcept;
  void make_available(chunk_header* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void make_unavailable(chunk_header* h) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Carves up to `want` blocks from h into out[n..); returns the new n.
  std::size_t carve(chunk_header* h, void** out, std::size_t n, std::size_t want)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes h out of every list and links it on `*to_free` (through `next`),
  // to be given upstream once the lock is dropped.
  void unlink_chunk(chunk_header* h, chunk_header** to_free) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Gives upstream the chunks unlink_chunk() set aside. Lock not held.
  void free_chunks(serialized_upstream& upstream, chunk_header* list) noexcept;

  const std::size_t block_size_;
  const std::size_t chunk_bytes_;
  const std::size_t blocks_per_chunk_;
  mutex mu_;
  chunk_header* available_ ABSL_GUARDED_BY(mu_) = nullptr;
  chunk_header* all_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<std::size_t> upstream_bytes_{0};
};

class direct_blocks {
 public:
  direct_blocks() = default;
  direct_blocks(const direct_blocks&) = delete;
  direct_blocks& operator=(const direct_blocks&) = delete;

  void* allocate(serialized_upstream& upstream, std::size_t bytes, std::size_t alignment);
  // Aborts with a message when `p` is not a live block of this set: that is
  // a double deallocate or a pointer from elsewhere.
  void deallocate(serialized_upstream& upstream, void* p, std::size_t bytes,
                  std::size_t alignment) noexcept;
  void release(serialized_upstream& upstream) noexcept;

  std::size_t upstream_bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  uint64_t allocations() const noexcept { return allocations_.load(std::memory_order_relaxed); }
  mutex& mu() noexcept { return mu_; }

 private:
  struct shape {
    std::size_t bytes;
    std::size_t alignment;
  };
  mutex mu_;
  std::unordered_map<void*, shape> live_ ABSL_GUARDED_BY(mu_);
  std::atomic<std::size_t> bytes_{0};
  std::atomic<uint64_t> allocations_{0};
};

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_SRC_BLOCK_SOURCE_H_
