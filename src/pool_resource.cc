// pool_resource: size classes, each an engine instance over a block source.
//
// Hot path of allocate (a thread-cache hit): classify (a few ALU ops and one
// table load), engine::try_get() (TLS load, two compares, load/store). No
// lock, no atomic read-modify-write. Deallocate is the mirror image.

#include "syncpool/pool_resource.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "absl/base/optimization.h"
#include "block_source.h"
#include "fork.h"
#include "size_classes.h"
#include "syncpool/internal/engine.h"
#include "syncpool/internal/stats.h"

namespace syncpool {
namespace internal {

namespace {

constexpr std::size_t kDefaultLargest = std::size_t{64} << 10;
// Classes up to this size carve blocks from chunks; larger ones take one
// upstream block each (a chunk of them would pin too much memory).
constexpr std::size_t kLargestChunkedClass = 4096;
constexpr std::size_t kDefaultChunkBytes = std::size_t{64} << 10;
constexpr std::size_t kSmallestChunkBytes = 256;
// What a thread keeps in its private cache per class, in bytes (at least
// one block): the bound on what an idle thread pins.
constexpr std::size_t kLocalBudget = std::size_t{32} << 10;
constexpr uint32_t kMinLocalBlocks = 2;
constexpr uint32_t kMaxLocalBlocks = 128;
// A refill from the block source carves about this much at once (at least
// one block): enough to amortize the lock, little enough that a thread that
// needs a few blocks of a class does not fault in a whole batch.
constexpr std::size_t kRefillBytes = 4096;
// Direct classes serve alignments up to this from plain upstream blocks;
// more goes straight to upstream.
constexpr std::size_t kDirectClassAlignment = alignof(std::max_align_t);

constexpr bool is_power_of_two(std::size_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

}  // namespace

// One size class: an engine caching blocks of one size, over a block source.
struct size_class {
  size_class(serialized_upstream* up, std::size_t size, std::size_t chunk_bytes,
             std::size_t max_blocks)
      : upstream(up),
        block_size(size),
        chunked(size <= kLargestChunkedClass),
        refill_count(static_cast<uint32_t>(
            std::clamp<std::size_t>(kRefillBytes / size, 1, local_capacity_for(size)))),
        chunks(size, chunk_bytes, max_blocks),
        cache(engine_client{&destroy_blocks, this}, engine_config{local_capacity_for(size)}) {}

  static uint32_t local_capacity_for(std::size_t size) noexcept {
    return static_cast<uint32_t>(
        std::clamp<std::size_t>(kLocalBudget / size, kMinLocalBlocks, kMaxLocalBlocks));
  }

  // The engine destroys blocks that went unused for two cycles: they go back
  // to where they came from.
  static void destroy_blocks(void* ctx, void** blocks, std::size_t n) noexcept {
    auto* self = static_cast<size_class*>(ctx);
    if (self->chunked) {
      self->chunks.give_back(*self->upstream, blocks, n);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        self->direct.deallocate(*self->upstream, blocks[i], self->block_size, kDirectClassAlignment);
      }
    }
  }

  // No cached block anywhere: make some, keep the extras in this thread's cache.
  void* refill() {
    if (!chunked) return direct.allocate(*upstream, block_size, kDirectClassAlignment);
    void* blocks[kMaxLocalBlocks];
    const std::size_t n = chunks.take(*upstream, blocks, refill_count);
    cache.put_many(blocks + 1, n - 1);
    return blocks[0];
  }

  std::size_t upstream_bytes() const noexcept {
    return chunked ? chunks.upstream_bytes() : direct.upstream_bytes();
  }

  serialized_upstream* const upstream;
  const std::size_t block_size;
  const bool chunked;
  const uint32_t refill_count;
  chunk_heap chunks;
  direct_blocks direct;
  // Last, so that it is destroyed first: its destruction gives blocks back.
  engine cache;
};

#ifdef SYNCPOOL_DEBUG_CHECKS
// Debug mode: remembers the (size, alignment) of every block handed out, so
// that a double deallocate or a mismatched one is caught with a message.
class allocation_checker {
 public:
  void on_allocate(void* p, std::size_t bytes, std::size_t alignment) {
    lock_guard lock(mu_);
    live_[p] = {bytes, alignment};
  }
  void on_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    lock_guard lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      fail("was not allocated by this resource, or was already deallocated (double deallocate)",
           p, bytes, alignment);
    }
    if (it->second.first != bytes || it->second.second != alignment) {
      std::fprintf(stderr,
                   "syncpool::pool_resource: deallocate(%p, %zu, %zu): allocated as (%zu, %zu); "
                   "size and alignment must match\n",
                   p, bytes, alignment, it->second.first, it->second.second);
      std::abort();
    }
    live_.erase(it);
  }
  void clear() noexcept {
    lock_guard lock(mu_);
    live_.clear();
  }
  mutex& mu() noexcept { return mu_; }

 private:
  [[noreturn]] static void fail(const char* what, void* p, std::size_t bytes, std::size_t alignment) {
    std::fprintf(stderr, "syncpool::pool_resource: deallocate(%p, %zu, %zu): the block %s\n", p,
                 bytes, alignment, what);
    std::abort();
  }
  mutex mu_;
  std::unordered_map<void*, std::pair<std::size_t, std::size_t>> live_ ABSL_GUARDED_BY(mu_);
};
#endif

class resource_impl {
 public:
  resource_impl(std::pmr::memory_resource* upstream, std::pmr::pool_options& options)
      : upstream_(upstream), upstream_fork_(this), blocks_fork_(this) {
    std::size_t largest = options.largest_required_pool_block;
    if (largest == 0) largest = kDefaultLargest;
    largest = std::clamp(largest, kSmallestClass, kLargestClassLimit);
    class_count_ = class_index(largest) + 1;
    largest_ = class_size(class_count_ - 1);
    options.largest_required_pool_block = largest_;

    classes_ = static_cast<size_class*>(
        ::operator new(sizeof(size_class) * class_count_, std::align_val_t{alignof(size_class)}));
    std::size_t most_blocks = 1;
    std::size_t built = 0;
    try {
      for (; built < class_count_; ++built) {
        const std::size_t size = class_size(built);
        std::size_t chunk = kDefaultChunkBytes;
        std::size_t max_blocks = chunk;  // no cap
        if (options.max_blocks_per_chunk != 0 && size <= kLargestChunkedClass) {
          // The user's cap on blocks per upstream call: the smallest chunk
          // that holds that many blocks and the header, carved no further.
          max_blocks = std::min<std::size_t>(options.max_blocks_per_chunk, kDefaultChunkBytes / size);
          chunk = std::clamp(std::bit_ceil(size * max_blocks + sizeof(chunk_header)),
                             kSmallestChunkBytes, kDefaultChunkBytes);
        }
        new (&classes_[built]) size_class(&upstream_, size, chunk, max_blocks);
        if (classes_[built].chunked) {
          most_blocks = std::max(most_blocks, classes_[built].chunks.blocks_per_chunk());
        }
      }
    } catch (...) {
      destroy_classes(built);
      throw;
    }
    options.max_blocks_per_chunk = most_blocks;
    upstream_fork_.enlist();
    blocks_fork_.enlist();
  }

  ~resource_impl() {
    release();
    blocks_fork_.delist();
    upstream_fork_.delist();
    destroy_classes(class_count_);
  }

  // The class serving (bytes, alignment), or nullptr when the request goes
  // straight to upstream (or is bad input: allocate_direct reports it).
  // The fast path in pool_resource handles small, valid requests itself.
  size_class* classify(std::size_t bytes, std::size_t alignment) noexcept {
    if (bytes > largest_ || alignment > largest_ || !is_power_of_two(alignment)) return nullptr;
    const std::size_t rounded = std::max((bytes + alignment - 1) & ~(alignment - 1), alignment);
    if (rounded > largest_) return nullptr;
    size_class* c = &classes_[class_index(rounded)];
    if (!c->chunked && alignment > kDirectClassAlignment) return nullptr;
    return c;
  }

  size_class* classes() const noexcept { return classes_; }

  // Everything but a slot hit: any tier of the engine, a refill from the
  // block source, or upstream directly.
  ABSL_ATTRIBUTE_NOINLINE void* allocate(std::size_t bytes, std::size_t alignment) {
    size_class* c = classify(bytes, alignment);
    if (c == nullptr) return allocate_direct(bytes, alignment);
    void* p = c->cache.try_get();
    if (p == nullptr) p = c->refill();
    unpoison(p, c->block_size);
    return p;
  }

  ABSL_ATTRIBUTE_NOINLINE void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    size_class* c = classify(bytes, alignment);
    if (c == nullptr) return deallocate_direct(p, bytes, alignment);
    poison(p, c->block_size);
    c->cache.put(p);
  }

  // Requests no class serves. As the standard says for requests above
  // largest_required_pool_block: upstream gets them unchanged (same bytes,
  // same alignment), and only what upstream throws is thrown.
  void* allocate_direct(std::size_t bytes, std::size_t alignment) {
    if (!is_power_of_two(alignment)) {
      throw std::invalid_argument("syncpool::pool_resource::allocate: alignment " +
                                  std::to_string(alignment) + " is not a power of two");
    }
    return oversize_.allocate(upstream_, bytes, alignment);
  }

  void deallocate_direct(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    oversize_.deallocate(upstream_, p, bytes, alignment);
  }

  void release() noexcept {
    for (std::size_t i = 0; i < class_count_; ++i) {
      size_class& c = classes_[i];
      c.cache.drain(/*destroy=*/false);  // the blocks go with their chunks
      c.chunks.release(upstream_);
      c.direct.release(upstream_);
    }
    oversize_.release(upstream_);
#ifdef SYNCPOOL_DEBUG_CHECKS
    checker.clear();
#endif
  }

  // Each class pinned while it is aged, so that a release() on another
  // thread waits for the cycle instead of freeing chunks under it.
  void collect() {
    for (std::size_t i = 0; i < class_count_; ++i) classes_[i].cache.age(/*flush_caller=*/true);
  }

  pool_resource_stats stats() const {
    pool_resource_stats s;
    s.classes.reserve(class_count_);
    engine_stats all;
    for (std::size_t i = 0; i < class_count_; ++i) {
      const size_class& c = classes_[i];
      const engine_stats e = c.cache.stats();
      all += e;
      pool_resource_stats::counts k;
      static_cast<pool_stats&>(k) = to_pool_stats(e);
      k.block_size = c.block_size;
      k.cached_bytes = e.cached * c.block_size;
      k.upstream_bytes = c.upstream_bytes();
      s.total.cached_bytes += k.cached_bytes;
      s.total.upstream_bytes += k.upstream_bytes;
      s.classes.push_back(k);
    }
    s.direct_allocations = oversize_.allocations();
    s.direct_bytes = oversize_.upstream_bytes();
    all.misses += s.direct_allocations;  // served by no cache
    static_cast<pool_stats&>(s.total) = to_pool_stats(all);
    s.total.upstream_bytes += s.direct_bytes;
    return s;
  }

#ifdef SYNCPOOL_DEBUG_CHECKS
  allocation_checker checker;
#endif

 private:
  // fork(): the upstream lock is taken first (see src/fork.h), the leaf
  // locks of the block sources last.
  struct upstream_fork final : fork_participant {
    explicit upstream_fork(resource_impl* r) : fork_participant(rank::upstream), impl(r) {}
    void lock_for_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS { impl->upstream_.mu().lock(); }
    void unlock_after_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      impl->upstream_.mu().unlock();
    }
    void reset_after_fork() noexcept override { impl->upstream_.mu().reset_after_fork(); }
    resource_impl* const impl;
  };
  struct blocks_fork final : fork_participant {
    explicit blocks_fork(resource_impl* r) : fork_participant(rank::blocks), impl(r) {}
    void lock_for_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      impl->for_each_block_lock([](mutex& mu) ABSL_NO_THREAD_SAFETY_ANALYSIS { mu.lock(); });
    }
    void unlock_after_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
      impl->for_each_block_lock([](mutex& mu) ABSL_NO_THREAD_SAFETY_ANALYSIS { mu.unlock(); });
    }
    void reset_after_fork() noexcept override {
      impl->for_each_block_lock([](mutex& mu) { mu.reset_after_fork(); });
    }
    resource_impl* const impl;
  };

  template <class F>
  void for_each_block_lock(F f) noexcept {
    for (std::size_t i = 0; i < class_count_; ++i) {
      f(classes_[i].chunks.mu());
      f(classes_[i].direct.mu());
    }
    f(oversize_.mu());
#ifdef SYNCPOOL_DEBUG_CHECKS
    f(checker.mu());
#endif
  }

  void destroy_classes(std::size_t n) noexcept {
    for (std::size_t i = n; i-- > 0;) classes_[i].~size_class();
    ::operator delete(static_cast<void*>(classes_), std::align_val_t{alignof(size_class)});
    classes_ = nullptr;
  }

  serialized_upstream upstream_;
  size_class* classes_ = nullptr;
  std::size_t class_count_ = 0;
  std::size_t largest_ = 0;
  direct_blocks oversize_;
  upstream_fork upstream_fork_;
  blocks_fork blocks_fork_;
};

}  // namespace internal

// ---------------------------------------------------------------------------
// pool_resource

pool_resource::pool_resource() : pool_resource(std::pmr::pool_options{}, std::pmr::get_default_resource()) {}

pool_resource::pool_resource(std::pmr::memory_resource* upstream)
    : pool_resource(std::pmr::pool_options{}, upstream) {}

pool_resource::pool_resource(const std::pmr::pool_options& options)
    : pool_resource(options, std::pmr::get_default_resource()) {}

pool_resource::pool_resource(const std::pmr::pool_options& options, std::pmr::memory_resource* upstream)
    : upstream_(upstream), options_(options) {
  if (upstream == nullptr) throw std::invalid_argument("syncpool::pool_resource: upstream is null");
  impl_ = std::make_unique<internal::resource_impl>(upstream, options_);
  classes_ = impl_->classes();
  largest_ = options_.largest_required_pool_block;
}

pool_resource::~pool_resource() = default;

void pool_resource::release() { impl_->release(); }

void pool_resource::collect() { impl_->collect(); }

pool_resource_stats pool_resource::stats() const { return impl_->stats(); }

namespace {

// The class of a pooled request, inline: a valid alignment and a rounded
// size up to `limit` (the largest class). False for everything else, which
// the out-of-line path sorts out: oversize, bad alignment, bytes == 0 and
// overflow (where the rounded size comes out as 0), and over-aligned
// requests in the classes above 4 KiB (plain upstream blocks).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool pooled_class(std::size_t bytes, std::size_t alignment,
                                                      std::size_t limit, std::size_t& index) noexcept {
  const std::size_t rounded = (bytes + alignment - 1) & ~(alignment - 1);
  if (ABSL_PREDICT_FALSE(rounded - 1 >= limit || (alignment & (alignment - 1)) != 0)) return false;
  if (ABSL_PREDICT_TRUE(rounded <= internal::kTableLimit)) {
    index = internal::class_index_small(rounded);
    return true;
  }
  if (rounded > internal::kLargestChunkedClass && alignment > internal::kDirectClassAlignment) {
    return false;
  }
  index = internal::class_index(rounded);
  return true;
}

}  // namespace

// The hot path: a pooled request served by the calling thread's slots, with
// no call, no lock and no atomic read-modify-write. Everything else goes to
// resource_impl, out of line.
void* pool_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  void* p = nullptr;
  std::size_t index;
  if (ABSL_PREDICT_TRUE(pooled_class(bytes, alignment, largest_, index))) {
    internal::size_class& c = classes_[index];
    p = c.cache.try_get_fast();
    if (ABSL_PREDICT_TRUE(p != nullptr)) internal::unpoison(p, c.block_size);
  }
  if (ABSL_PREDICT_FALSE(p == nullptr)) p = impl_->allocate(bytes, alignment);
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl_->checker.on_allocate(p, bytes, alignment);
#endif
  return p;
}

void pool_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // As free(nullptr): nothing to give back, and a null pointer must never
  // enter a cache (it would be handed out, and given back to a chunk).
  if (ABSL_PREDICT_FALSE(p == nullptr)) return;
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl_->checker.on_deallocate(p, bytes, alignment);
#endif
  std::size_t index;
  if (ABSL_PREDICT_TRUE(pooled_class(bytes, alignment, largest_, index))) {
    internal::size_class& c = classes_[index];
    internal::poison(p, c.block_size);
    if (ABSL_PREDICT_TRUE(c.cache.try_put_fast(p))) return;
  }
  impl_->deallocate(p, bytes, alignment);
}

bool pool_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  return this == &other;
}

}  // namespace syncpool
