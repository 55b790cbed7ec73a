// pool_resource: one engine (all size classes), chunks carved from upstream,
// bookkeeping from upstream too.
//
// Hot path of allocate (a thread-cache hit): classify (a few ALU ops and one
// table load), engine::try_get_fast(): no lock, no atomic read-modify-write.
// Deallocate is the mirror image.
//
// Every slow path runs inside the engine's critical section for the calling
// thread's cache (engine::enter_slow): a collector leaves that cache alone
// meanwhile, and the resource cannot go idle (and reset its state) under
// it. A call without a cache (a request no class serves, or an exiting
// thread's) holds the gate instead (gate_enter). The young phase (see
// resource_impl::young_state) has a lock of its own, which the idle reset
// takes too, and which the thread that owns the phase does without.

#include "syncpool/pool_resource.h"

#include <algorithm>
#include <array>
#include <memory>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/base/optimization.h"
#include "fork.h"
#include "resource_parts.h"
#include "size_classes.h"
#include "syncpool/internal/engine.h"

namespace syncpool {
namespace internal {

namespace {

constexpr std::size_t kDefaultLargest = std::size_t{64} << 10;
// Classes up to this size carve blocks from chunks; larger ones take one
// upstream block each (a chunk of them would pin too much memory).
constexpr std::size_t kLargestChunkedClass = 4096;
constexpr std::size_t kSmallestChunk = 256;
constexpr std::size_t kLargestChunk = std::size_t{64} << 10;
// A thread's cache starts at kInitialThreadCacheBytes (or thread_cache_bytes
// when smaller) and grows to thread_cache_bytes while the thread takes back
// blocks it spilled (see engine_config); a resource's threads together grow
// by at most kGrowthLimitFactor x thread_cache_bytes above their start (as
// tcmalloc bounds all its thread caches together, at 8 times one thread's
// cap): four busy threads may reach the cap, 64 busy threads share 16 MiB.
// (At 1x, compare_allocators' server workload with 64 threads spent a third
// of its time spilling and refilling, 1.9x jemalloc's time; at 4x it is
// level with it, at 0.5 MiB more RSS per busy thread.)
constexpr std::size_t kDefaultThreadCacheBytes = std::size_t{4} << 20;
constexpr std::size_t kInitialThreadCacheBytes = std::size_t{64} << 10;
constexpr std::size_t kGrowthLimitFactor = 4;

// Slots a thread keeps per class: a few for the largest classes, this many
// for the small ones.
constexpr uint32_t kMaxSlots = 64;
// The engine frees slot arrays, batches and class tables from collect
// passes that may not call upstream (engine_client::may_call_out): they
// must go back to the arena's slabs, never to upstream.
static_assert(internal::batch::bytes_for(kMaxSlots) <= internal::meta_arena::kLargestInSlabs);
static_assert(internal::kMaxClasses * sizeof(internal::class_slots) <= internal::meta_arena::kLargestInSlabs);
constexpr uint32_t kMinSlots = 2;
// Direct classes serve alignments up to this from plain upstream blocks;
// more goes straight to upstream.
constexpr std::size_t kDirectClassAlignment = alignof(std::max_align_t);
// Chunked classes serve alignments up to this; a more aligned request (rare:
// over-aligned types) goes straight to upstream, as a direct request. Their
// blocks then need no more than 64-byte alignment, so that chunks and young
// regions are asked of upstream at its default alignment, its fast path.
constexpr std::size_t kMaxClassAlignment = 64;
// The young phase (see resource_impl::allocate_young): a resource's first
// allocations of chunked classes come from a few bump regions, up to this
// many allocations or bytes, whichever comes first.
constexpr uint32_t kYoungAllocations = 256;
constexpr std::size_t kYoungBytes = std::size_t{64} << 10;
// A young block bumped for another thread than the one before starts at
// this alignment (a cache line), so that no line holds two threads' blocks.
constexpr std::size_t kYoungSwitchAlignment = 64;
// Young regions: the first this large, each next one 4 times as large, up
// to what the phase may still bump (what a large block needs, if more).
constexpr std::size_t kFirstYoungRegion = 512;

constexpr uint32_t kClassCount = static_cast<uint32_t>(class_index(kLargestClassLimit)) + 1;

// Block size by class, for the fast path's budget weight.
constexpr std::array<uint32_t, kClassCount> kClassBytes = [] {
  std::array<uint32_t, kClassCount> t{};
  for (uint32_t i = 0; i < kClassCount; ++i) t[i] = static_cast<uint32_t>(class_size(i));
  return t;
}();

constexpr bool is_power_of_two(std::size_t x) noexcept { return x != 0 && (x & (x - 1)) == 0; }

// Classes 0 .. kChunkedClassCount - 1 carve their blocks from chunks.
constexpr uint32_t kChunkedClassCount = static_cast<uint32_t>(class_index(kLargestChunkedClass)) + 1;
static_assert(class_size(kChunkedClassCount - 1) == kLargestChunkedClass);

// The alignment every block of a chunked class has, wherever it comes from:
// the largest power of two dividing its size (blocks lie at base + i * size),
// capped at kMaxClassAlignment (more aligned requests are not pooled).
constexpr std::size_t block_alignment(std::size_t block_size) noexcept {
  return std::min(block_size & (~block_size + 1), kMaxClassAlignment);
}

// A span of upstream memory carved into blocks of one class. Descriptors
// live in the arena (a class's first one inline in its size_class); the
// chunk holds nothing but blocks.
struct chunk {
  char* base;      // the first block
  uint32_t bytes;  // blocks may lie in [base, base + bytes)
  uint32_t lead;   // upstream's memory starts `lead` bytes before base
  uint32_t blocks;      // how many fit
  uint32_t carved;      // handed out by the bump pointer so far
  uint32_t free_count;  // of those, back in free_list
  void* free_list;      // linked through the blocks' first bytes
  chunk* next_avail;    // the class's chunks with a block to give
  chunk* prev_avail;
  bool avail;
};

}  // namespace

// One size class: the engine's shared tiers, and where its blocks come from.
struct size_class {
  class_shared shared;  // shared.mu also guards the chunk state below
  uint32_t index = 0;
  uint32_t block_size = 0;
  bool chunked = false;
  uint32_t next_chunk_bytes = 0;
  uint32_t first_chunk_bytes = 0;  // where next_chunk_bytes restarts when no chunk is left
  uint32_t max_blocks = 0;  // per chunk
  // By base address, for give-back; `inline_index` until it outgrows it.
  chunk** sorted = inline_index;
  uint32_t nchunks = 0;
  uint32_t sorted_capacity = kInlineIndex;
  chunk* avail = nullptr;
  std::atomic<std::size_t> upstream_bytes{0};
  // A class's first chunk's descriptor and its index live here, not in the
  // arena: most classes never need a second one.
  static constexpr uint32_t kInlineIndex = 4;
  bool first_chunk_in_use = false;
  chunk first_chunk{};
  chunk* inline_index[kInlineIndex] = {};
};

namespace {

// Classes in use, by index: a small open-addressing table that readers probe
// without a lock (entries and the table pointer are published with
// release stores). A full table is replaced, the old one kept until reset.
struct class_table {
  uint32_t capacity;  // a power of two
  uint32_t used;
  class_table* retired;
  std::atomic<size_class*> slots[1];  // really `capacity`

  static std::size_t bytes_for(uint32_t capacity) noexcept {
    return offsetof(class_table, slots) + sizeof(std::atomic<size_class*>) * capacity;
  }
};

}  // namespace

#ifdef SYNCPOOL_DEBUG_CHECKS
// Debug mode: remembers the (size, alignment) of every block handed out, so
// that a double deallocate or a mismatched one is caught with a message.
// Its records live on the global heap (the one exception to "all memory from
// upstream": they would otherwise show in stats() and in the upstream's
// counts, and change what the tests of those measure). Nothing is allocated
// before the first allocate, so construction stays free of allocations, and
// every call is counted (testing_hooks::checker_heap_calls) so that the
// no-heap tests can tell the checker's calls from a leak of the resource's
// own bookkeeping onto the heap.
std::atomic<uint64_t> g_checker_heap_calls{0};

template <class T>
struct checker_allocator {
  using value_type = T;
  checker_allocator() = default;
  template <class U>
  checker_allocator(const checker_allocator<U>&) noexcept {}
  T* allocate(std::size_t n) {
    g_checker_heap_calls.fetch_add(1, std::memory_order_relaxed);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>().deallocate(p, n); }
  template <class U>
  bool operator==(const checker_allocator<U>&) const noexcept {
    return true;
  }
};

class allocation_checker {
 public:
  // Made at the first allocate (see resource_impl::check_allocate).
  static allocation_checker* make() {
    g_checker_heap_calls.fetch_add(1, std::memory_order_relaxed);
    return new allocation_checker();
  }

  // (operator new under mu_, a lock of fork's blocks rank: a new_handler
  // or replaced operator new that calls into syncpool here can deadlock
  // against a fork. Debug builds only, and as before.)
  void on_allocate(void* p, std::size_t bytes, std::size_t alignment) {
    lock_guard lock(mu_);
    live_.insert_or_assign(p, std::pair<std::size_t, std::size_t>{bytes, alignment});
  }
  // `checker` may be null: nothing was ever allocated.
  static void on_deallocate(allocation_checker* checker, void* p, std::size_t bytes, std::size_t alignment) noexcept {
    if (checker == nullptr) fail(p, bytes, alignment);
    checker->remove(p, bytes, alignment);
  }
  // release(): every block is gone (the records' memory goes with the
  // resource).
  void clear() noexcept {
    lock_guard lock(mu_);
    live_.clear();
  }
  mutex& mu() noexcept { return mu_; }

 private:
  using record = std::pair<std::size_t, std::size_t>;  // (bytes, alignment)
  using map = std::unordered_map<void*, record, std::hash<void*>, std::equal_to<void*>,
                                 checker_allocator<std::pair<void* const, record>>>;

  void remove(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    lock_guard lock(mu_);
    const auto it = live_.find(p);
    if (it == live_.end()) fail(p, bytes, alignment);
    if (it->second.first != bytes || it->second.second != alignment) {
      std::fprintf(stderr,
                   "syncpool::pool_resource: deallocate(%p, %zu, %zu): allocated as (%zu, %zu); "
                   "size and alignment must match\n",
                   p, bytes, alignment, it->second.first, it->second.second);
      std::abort();
    }
    live_.erase(it);
  }
  [[noreturn]] static void fail(void* p, std::size_t bytes, std::size_t alignment) {
    std::fprintf(stderr,
                 "syncpool::pool_resource: deallocate(%p, %zu, %zu): the block was not allocated by this "
                 "resource, or was already deallocated (double deallocate)\n",
                 p, bytes, alignment);
    std::abort();
  }
  mutex mu_;
  map live_ ABSL_GUARDED_BY(mu_);
};
#endif

// The class of a pooled request, inline: a valid alignment and a rounded
// size up to `limit` (the largest class). False for everything else, which
// the out-of-line path sorts out: oversize, bad alignment, bytes == 0,
// sizes near SIZE_MAX, alignments above 64 bytes, and over-aligned requests
// in the classes above 4 KiB (plain upstream blocks).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool pooled_class(std::size_t bytes, std::size_t alignment, std::size_t limit,
                                                      uint32_t& index) noexcept {
  const std::size_t mask = alignment - 1;
  // The size rounded up to the alignment, less one, when the alignment is a
  // power of two (tested next): as in pool_resource::table_class. Above
  // every limit for bytes == 0 (it wraps), for alignment == 0 (mask is all
  // ones) and for sizes near SIZE_MAX, which the first test below rejects.
  const std::size_t last = (bytes - 1) | mask;
  // One test for "a power of two, at most kMaxClassAlignment" (it lets 0
  // through: `last` rejects that).
  constexpr std::size_t kTooAligned = ~(2 * kMaxClassAlignment - 1);
  if (ABSL_PREDICT_FALSE(last >= limit || (alignment & (mask | kTooAligned)) != 0)) return false;
  static_assert(kTableLimit <= kLargestChunkedClass, "the table's classes take any alignment up to 64");
  if (ABSL_PREDICT_TRUE(last < kTableLimit)) {
    index = kIndexByHalf[last >> 1];
    return true;
  }
  if (last >= kLargestChunkedClass && alignment > kDirectClassAlignment) return false;
  index = static_cast<uint32_t>(class_index_large(last + 1));
  return true;
}

// The class of a request that pool_resource::table_class() took (a size up
// to its table's limit, a power-of-two alignment up to kMaxClassAlignment):
// always a chunked class.
static_assert(kTableLimit <= kLargestChunkedClass);
inline uint32_t table_class_of(std::size_t bytes, std::size_t alignment) noexcept {
  return kIndexByHalf[((bytes - 1) | (alignment - 1)) >> 1];
}

namespace {
// What all of a resource's caches may grow by together: kGrowthLimitFactor
// times a thread's budget, saturated (a thread_cache_bytes of 2^62 or more
// wrapped it to 0, and no cache ever grew).
constexpr uint64_t growth_limit(std::size_t thread_cache_bytes) noexcept {
  return thread_cache_bytes > UINT64_MAX / kGrowthLimitFactor ? UINT64_MAX : kGrowthLimitFactor * thread_cache_bytes;
}
}  // namespace

class resource_impl {
 public:
  resource_impl(std::pmr::memory_resource* upstream, std::size_t largest, std::size_t max_blocks,
                std::size_t thread_cache_bytes) noexcept
      : engine_(&kClient, this,
                engine_config{kClassCount, thread_cache_bytes, std::min(thread_cache_bytes, kInitialThreadCacheBytes),
                              growth_limit(thread_cache_bytes)}),
        upstream_(upstream),
        largest_(largest),
        max_blocks_(max_blocks),
        fork_(this) {
    young_.over.store(!young_phase_allowed(), std::memory_order_relaxed);
  }

  ~resource_impl() {
    engine_.drain(/*destroy=*/false);  // the blocks go with their chunks
    release_face();
    fork_.delist();
#ifdef SYNCPOOL_DEBUG_CHECKS
    delete checker_.load(std::memory_order_relaxed);
#endif
  }

  void* allocate_slow(std::size_t bytes, std::size_t alignment);
  void deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // The fast paths' misses for a request of a class of the table (one that
  // pool_resource::table_class() took; the class is found again here, so
  // that the hit path keeps no register for it):
  // the young phase's owner first (allocate_young_owned(), free_young_owned()),
  // then the slow paths above. Small on purpose: they save no register and
  // set up no frame before they know that the slow path is needed (a young
  // allocation went through allocate_slow's and allocate_young's frames,
  // about 200 instructions; see bench/hit_path.cc's lifetime16). A freed
  // block comes poisoned, as do_deallocate() leaves it.
  void* allocate_miss(std::size_t bytes, std::size_t alignment);
  void deallocate_miss(void* p, std::size_t bytes, std::size_t alignment) noexcept;

  // These three take locks that the fork handlers take and reset, so they
  // enlist too (a resource never allocated from has not).
  void release() noexcept {
    ensure_enlisted();
    engine_.drain(/*destroy=*/false);
    release_face();
    {
      // A new start: the next phase's first allocation picks its owner.
      // (release() does not run concurrently with any use, as for any
      // object, so no owner can be in its section: no revocation.)
      spin_lock_guard ylock(young_.mu);
      young_.owner.store(nullptr, std::memory_order_relaxed);
      young_.shared.store(false, std::memory_order_relaxed);
    }
    engine_.reopen();
  }

  void collect() {
    ensure_enlisted();
    engine_.collect();
  }
  pool_resource_stats stats() const;

  // First: the fast path reads its key.
  engine engine_;

#ifdef SYNCPOOL_DEBUG_CHECKS
  // Records `p` with the checker (made here the first time); when that
  // fails, gives `p` back before the std::bad_alloc leaves, so that a failed
  // allocate holds nothing.
  void check_allocate(void* p, std::size_t bytes, std::size_t alignment) {
    try {
      allocation_checker* c = checker_.load(std::memory_order_acquire);
      if (ABSL_PREDICT_FALSE(c == nullptr)) c = make_checker();
      c->on_allocate(p, bytes, alignment);
    } catch (...) {
      deallocate_slow(p, bytes, alignment);
      throw;
    }
  }
  void check_deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
    allocation_checker::on_deallocate(checker_.load(std::memory_order_acquire), p, bytes, alignment);
  }
  // Made out of every lock (operator new may be anyone's code), published
  // under classes_mu_, which fork's prepare step takes before it looks for
  // a checker to lock: none appears between the two. A thread that loses
  // the race deletes its own.
  allocation_checker* make_checker() {
    allocation_checker* made = allocation_checker::make();
    allocation_checker* c;
    {
      spin_lock_guard lock(classes_mu_);
      c = checker_.load(std::memory_order_relaxed);
      if (c == nullptr) {
        c = made;
        made = nullptr;
        checker_.store(c, std::memory_order_release);
      }
    }
    delete made;
    return c;
  }
  allocation_checker* checker() noexcept { return checker_.load(std::memory_order_acquire); }
  // As large as the unique_ptr it replaced: kResourceImplBytes, in the
  // public header, covers the builds with and without the checks.
  std::atomic<allocation_checker*> checker_{nullptr};
#endif
 private:
  static const engine_client kClient;

  // engine_client callbacks
  static void destroy_items(void* ctx, uint32_t cls, void** items, std::size_t n) noexcept;
  static class_shared* shared_of(void* ctx, uint32_t cls) noexcept;
  static uint32_t classes_in_use(const void* ctx, uint32_t* out) noexcept;
  static uint32_t capacity_of(const void* ctx, uint32_t cls, uint64_t budget) noexcept;
  static uint32_t batch_of(const void* ctx, uint32_t cls, uint64_t budget) noexcept;
  static uint64_t weight_of(const void* ctx, uint32_t cls) noexcept;
  static void* meta_alloc(void* ctx, std::size_t bytes, std::size_t alignment) noexcept;
  static void meta_free(void* ctx, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  static void after_collect(void* ctx) noexcept;
  static bool may_call_out(const void* ctx) noexcept;

  // The class serving (bytes, alignment), or nullptr when the request goes
  // straight to upstream.
  bool classify(std::size_t bytes, std::size_t alignment, uint32_t* index) const noexcept;
  size_class* find(uint32_t index) const noexcept;
  // Slots a thread keeps for class `index`: an eighth of its cache's
  // current budget, in [kMinSlots, kMaxSlots]. (No lookup: the engine asks
  // on its slow paths.)
  static uint32_t slots_for(uint32_t index, uint64_t budget) noexcept {
    return static_cast<uint32_t>(
        std::clamp<uint64_t>(budget / (uint64_t{8} * kClassBytes[index]), kMinSlots, kMaxSlots));
  }
  size_class* find_or_create(uint32_t index);  // throws std::bad_alloc
  // A block of chunked class `cls` from the young regions, or nullptr once
  // the young phase is over (see young_state).
  void* allocate_young(uint32_t cls);
  // The owner's common cases of allocate_young() and free_young(), with no
  // call: a block from its class's reuse list or bumped from the newest
  // region (nullptr: anything else, for allocate_young()), and a block of
  // the newest region that is not the last one out put on its class's
  // reuse list (false: anything else, for free_young()). Both leave the
  // state as the general paths would.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* allocate_young_owned(uint32_t cls) noexcept;
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool free_young_owned(void* p, uint32_t cls) noexcept;
  // The owner's side of enter_young() alone: true when this thread owns the
  // phase and it is not shared (leave with leave_young(true)); false, and
  // nothing held, otherwise.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool try_enter_young_owned() noexcept ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true, young_.mu);
  // Bumps a block of `size` bytes (aligned to `align`, a cache line when
  // the previous block was another thread's) from the newest region, or
  // returns nullptr when it has no room (or there is none).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* bump_young(uint32_t cls, std::size_t size, std::size_t align,
                                                uint32_t tag) noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  // The young state's critical section (young_state::owner): entered without
  // a lock by the owner while it has the phase to itself (true), else under
  // mu (false, which leave_young() unlocks). It counts as holding mu.
  // (`count` as lock_young()'s.)
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool enter_young(bool count = true) noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION(young_.mu);
  ABSL_ATTRIBUTE_ALWAYS_INLINE void leave_young(bool owned) noexcept ABSL_UNLOCK_FUNCTION(young_.mu);
  // The owner ends its phase under mu, shared from then on: the end
  // rebuilds the region list in several stores, and a fork() child (whose
  // handlers hold mu) that caught it halfway lost the regions of 207 live
  // blocks (a probe, about 2 children in 4,000 forks during an owner's
  // 257th allocation; they aborted freeing those blocks). Nothing is left
  // to own after it, and a collector that frees a young block later need
  // not revoke. No membarrier: only this thread can be in the owner's
  // section. Leaves owned == false, mu held.
  void share_young_phase(bool& owned) noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!owned) return;
    leave_young(true);
    young_.mu.lock();
    young_.shared.store(true, std::memory_order_relaxed);
    owned = false;
  }
  // Takes mu, after revoking another thread's owner mode (young_state::owner);
  // for every user of the young state that may run while the resource is in
  // use (allocate, deallocate, stats(), the idle reset). Only the first two
  // count the revocation for the owners' back-off: a collector or a stats()
  // call revoking a resource is no sign of resources handed between threads.
  void lock_young(bool count) noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION(young_.mu);
  // In a fork() child: an owner other than the forking thread is absent
  // there, and may have been halfway through a change of the young state
  // (it takes no lock the fork handlers hold): the phase ends, its reuse
  // lists go, and mu serves from now on. (Every field it writes is written
  // whole: the child sees each either old or new. The absent owner's block
  // is then at worst counted out forever, which keeps its region; regions
  // it had detached to free are lost to the child, counted in young_bytes
  // and held from upstream until the resource is destroyed.)
  void reset_young_owner_after_fork() noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
    const thread_state* owner = young_.owner.load(std::memory_order_relaxed);
    if (owner != nullptr && owner != &t_thread && !young_.shared.load(std::memory_order_relaxed)) {
      young_.heads = nullptr;
      young_.over.store(true, std::memory_order_relaxed);
      young_.shared.store(true, std::memory_order_relaxed);
    }
    young_.owner_busy.store(0, std::memory_order_relaxed);
  }
  struct ABSL_SCOPED_LOCKABLE young_lock_guard {
    explicit young_lock_guard(resource_impl* r) noexcept ABSL_EXCLUSIVE_LOCK_FUNCTION(r->young_.mu) : impl(r) {
      impl->lock_young(/*count=*/false);
    }
    ~young_lock_guard() ABSL_UNLOCK_FUNCTION() { impl->young_.mu.unlock(); }
    young_lock_guard(const young_lock_guard&) = delete;
    young_lock_guard& operator=(const young_lock_guard&) = delete;
    resource_impl* const impl;
  };
  // Takes back a block that lies in a young region: false if `p` lies in
  // none. Lock-free when the resource has no young region.
  // `count`: whether a revocation this makes counts for the owners' back-off
  // (not when a collector gives blocks back: see lock_young()).
  bool free_young(void* p, uint32_t cls, bool count = true) noexcept;
  // Under young_.mu, with no young block out: detaches every region, to be
  // freed by free_regions() out of the lock, and starts the next region
  // small again.
  struct young_region;
  young_region* detach_unused_regions() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  // The newest region's free list of class `cls` (young_state::heads).
  // Lists nothing (false) when the region has no room left for the heads.
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool push_reusable(young_region* newest, uint32_t cls, void* p) noexcept
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  // Bumps the heads from the newest region: false when it has no room.
  ABSL_ATTRIBUTE_NOINLINE bool make_heads() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  void drop_reusable() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu) { young_.heads = nullptr; }
  // Pops one and counts it out (nullptr: the list is empty). Out of line in
  // allocate_young() (under mu, or the phase's first call), where it kept
  // that function's bump path short (lifetime16 took 10 instructions more
  // a block with it inline there); the owner's path inlines pop_reusable().
  ABSL_ATTRIBUTE_NOINLINE void* take_reusable(uint32_t cls) noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  // Its body, inline where a call would cost more (the owner's path, which
  // then sets up no frame).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* pop_reusable(uint32_t cls) noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  void free_regions(young_region* r) noexcept;
  // Gives a chunk's memory back to upstream (its descriptor is the caller's).
  void free_chunk_memory(size_class& c, char* base, uint32_t lead, uint32_t bytes) noexcept;
  // The same without the class's count; returns the bytes given upstream.
  std::size_t free_chunk_upstream(char* base, uint32_t lead, uint32_t bytes) noexcept;
  // Fills out[0..n) with up to `want` new blocks (poisoned); n >= 1.
  std::size_t carve(size_class& c, void** out, std::size_t want);
  void give_back(size_class& c, void* const* blocks, std::size_t n) noexcept;
  void* read_link(const size_class& c, void* block) const noexcept;
  void write_link(const size_class& c, void* block, void* next) const noexcept;
  chunk* chunk_of(size_class& c, void* block) const noexcept;
  // When nothing is cached, carved or held: back to the state of a new
  // resource, every byte given back.
  void try_reset() noexcept;
  // Returns every chunk, direct block and byte of bookkeeping upstream.
  void release_face() noexcept;
  template <class F>
  void for_each_class(F f) const;
  // allocate_slow(), release(), collect() and stats() call it first: no lock
  // that the fork handlers take or reset (upstream, reset, young, classes,
  // arena) is taken before it. (The destructor may: a resource being
  // destroyed while another thread forks is of no use to the child.)
  void ensure_enlisted() noexcept {
    if (!enlisted_.load(std::memory_order_acquire)) enlist();
  }
  // An upstream that is a pool_resource too is enlisted first, here, where
  // this resource holds no lock. Enlisted at its own first use instead, that
  // is inside this one's first upstream call, under this one's upstream
  // lock: a fork() whose prepare handler held the handlers' lock and waited
  // for that upstream lock deadlocked the parent (a probe: 1 process in 20,
  // each making 200 such pairs while 3 threads forked). It is visited after
  // this one by the fork handlers (fork.h).
  ABSL_ATTRIBUTE_NOINLINE void enlist() noexcept {
    std::pmr::memory_resource* const up = upstream_.resource();
    const fork_participant* inner_hooks = nullptr;
    if (up != std::pmr::new_delete_resource()) {
      if (auto* inner = dynamic_cast<pool_resource*>(up)) {
        inner->impl().ensure_enlisted();
        inner_hooks = &inner->impl().fork_;
      }
    }
    // (First use: the engine still has its construction key.)
    fork_.enlist(engine_.construction_key(), inner_hooks);
    enlisted_.store(true, std::memory_order_release);
  }

  // fork(): the upstream lock first (rank upstream), then (after the engines'
// locks) the classes' and the leaf locks (rank blocks).
  struct fork_hooks final : fork_participant {
    explicit fork_hooks(resource_impl* r) noexcept : impl(r) {}
    void lock_for_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS;
    void unlock_after_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS;
    void reset_after_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS;
    resource_impl* const impl;
  };

  serialized_upstream upstream_;
  meta_arena arena_;
  direct_set direct_;
  std::atomic<class_table*> table_{nullptr};
  spin_mutex classes_mu_;  // creation of classes, growth of the table
  // Held by release(), reset and stats(), which must not overlap.
  spin_mutex reset_mu_;
  // The counters of the classes an idle reset or release() dropped (their
  // state goes upstream with the arena), so that stats()'s totals count
  // every allocate() of the resource's life.
  struct retired_counts {
    uint64_t local_hits = 0;
    uint64_t stolen = 0;
    uint64_t victim_hits = 0;
    uint64_t misses = 0;
  };
  retired_counts retired_ ABSL_GUARDED_BY(reset_mu_);
  // Adds the classes' counters, and the young phase's misses, to retired_:
  // before the classes and the phase are dropped, with no cache left.
  void retire_counts_locked() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(reset_mu_, young_.mu);
  // A gate against reset for the paths outside the engine's critical
  // section (requests no class serves, threads without a cache): they
  // count themselves in; a reset that finds anyone in waits for the next
  // cycle, and anyone arriving during a reset waits for it to end.
  std::atomic<uint32_t> gate_users_{0};
  std::atomic<bool> resetting_{false};
  // The young phase. A resource made for one request (the everyday pmr
  // pattern: construct, a few allocations, destroy) must cost no more than
  // an unsynchronized_pool_resource: no thread cache, no class state, no
  // chunk per class. So a resource's first allocations of chunked classes
  // are bumped from a few regions taken from upstream (the first small,
  // each next one larger), under one lock, as a monotonic_buffer_resource
  // would; a young block that comes back is only counted. A region whose
  // blocks are all back goes upstream, except the newest one while the
  // phase goes on, which is bumped from its start again (and kept when
  // every young block is back, unless that is the first time: see
  // free_young()). A block bumped for another thread than the one before
  // starts a cache line. The phase ends after kYoungAllocations allocations
  // or kYoungBytes bytes (at once with a user's max_blocks_per_chunk), and the
  // classes then go through the engine and their chunks. Young blocks
  // still out may pass through the engine's caches, and reach their
  // regions when the engine gives them back (give_back()). release() and
  // an idle reset start a new phase.
  struct young_state {
    spin_mutex mu;
    std::atomic<bool> over{false};
    // Owner mode. The thread that first allocates from the phase owns it
    // and works on this state without taking mu: a request's resource is
    // used by one thread, and mu's exchange and release were a third of its
    // time (the lifetime workload's 256 allocations on CPU 0 of the EPYC VM:
    // 7.6 us under mu, 4.9 with no exclusion at all, 5.5 in owner mode).
    // The asymmetric fence of the engine's caches: the owner raises
    // owner_busy, then reads `shared` (plain stores and loads); anyone else
    // takes mu, and while an owner has it unshared, stores `shared`, runs
    // asymmetric_fence_heavy() (membarrier) and waits for owner_busy to
    // drop. From then on the owner takes mu too, for the resource's life
    // (one membarrier per resource that two threads use while young). Never
    // set where membarrier is unavailable. `owner` is the owner's
    // thread_state (unique among live threads, unlike last_tag's bits).
    std::atomic<bool> shared{false};
    std::atomic<uint8_t> owner_busy{0};  // (bytes: they fill mu's padding)
    std::atomic<const thread_state*> owner{nullptr};
    // Newest first; written under mu, read without it by free_young().
    std::atomic<young_region*> regions{nullptr};
    char* next ABSL_GUARDED_BY(mu) = nullptr;  // the bump pointer, in the newest region
    char* end ABSL_GUARDED_BY(mu) = nullptr;
    // (32 bits: at most kYoungAllocations blocks, kYoungBytes bytes.)
    uint32_t live ABSL_GUARDED_BY(mu) = 0;    // young blocks not back yet
    uint32_t bumped ABSL_GUARDED_BY(mu) = 0;  // bytes handed out in this phase
    uint32_t allocations ABSL_GUARDED_BY(mu) = 0;
    uint32_t emptied ABSL_GUARDED_BY(mu) = 0;  // times every young block was back
    uint32_t next_region ABSL_GUARDED_BY(mu) = kFirstYoungRegion;
    // The thread that bumped last (see this_thread_tag()); 0: none yet.
    // Another thread's block starts a cache line: two threads' blocks
    // sharing a line would pull it between their CPUs at every write.
    uint32_t last_tag ABSL_GUARDED_BY(mu) = 0;
    std::atomic<std::size_t> upstream_bytes{0};
    // Young allocations by class, for stats() (at most kYoungAllocations).
    uint16_t misses[kChunkedClassCount] ABSL_GUARDED_BY(mu) = {};
    // Blocks of the newest region that came back while others are out, by
    // class, for the next young allocations of their class: a request that
    // frees temporaries as it goes (strings, nodes) then takes no more of
    // the phase's memory than it holds at once. A head, and the link a
    // listed block holds in its first two bytes, is the block's offset from
    // the region's first byte in 2-byte units (every young block is
    // 2-aligned; a region is at most 64 KiB and a bit). The heads (112
    // bytes, a line of their own) are bumped from the newest region at its
    // first listed block, not kept in the resource (a resource made for one
    // request, that frees nothing before the end, pays nothing for them);
    // kNoLink marks an empty list. Only the newest region's blocks are
    // listed, and the lists are dropped whenever that region changes or is
    // rewound, or the phase ends: a listed block is counted back (as
    // before) and never outlives its region.
    uint16_t* heads ABSL_GUARDED_BY(mu) = nullptr;
  };
  young_state young_;
  // A region holds blocks of many classes, so a user's max_blocks_per_chunk
  // (a bound on the blocks of a class per upstream call) rules it out.
  bool young_phase_allowed() const noexcept { return max_blocks_ == 0; }
  // Back to the state of a new resource; the caller frees what it returns.
  young_region* reset_young() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(young_.mu);
  friend struct testing_hooks;
  void gate_enter() noexcept {
    for (;;) {
      gate_users_.fetch_add(1, std::memory_order_seq_cst);
      if (!resetting_.load(std::memory_order_seq_cst)) return;
      gate_users_.fetch_sub(1, std::memory_order_seq_cst);
      while (resetting_.load(std::memory_order_acquire)) std::this_thread::yield();
    }
  }
  void gate_leave() noexcept { gate_users_.fetch_sub(1, std::memory_order_release); }
  struct gate_guard {
    explicit gate_guard(resource_impl* r) noexcept : r(r) { r->gate_enter(); }
    ~gate_guard() { r->gate_leave(); }
    resource_impl* r;
  };
  const std::size_t largest_;
  const std::size_t max_blocks_;
  std::atomic<bool> enlisted_{false};
  fork_hooks fork_;
};

static_assert(sizeof(resource_impl) <= kResourceImplBytes, "grow kResourceImplBytes");
static_assert(alignof(resource_impl) <= alignof(std::max_align_t));

const engine_client resource_impl::kClient = {
    &resource_impl::destroy_items, &resource_impl::shared_of, &resource_impl::classes_in_use,
    &resource_impl::capacity_of,   &resource_impl::batch_of,  &resource_impl::weight_of,
    &resource_impl::meta_alloc,    &resource_impl::meta_free, &resource_impl::after_collect,
    &resource_impl::may_call_out,
};

// ---------------------------------------------------------------------------
// engine_client callbacks

void resource_impl::destroy_items(void* ctx, uint32_t cls, void** items, std::size_t n) noexcept {
  // The engine destroys blocks that went unused for two cycles: they go
  // back to where they came from.
  auto* self = static_cast<resource_impl*>(ctx);
  size_class* c = self->find(cls);
  if (c->chunked) {
    self->give_back(*c, items, n);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      self->direct_.deallocate(self->upstream_, items[i], c->block_size, kDirectClassAlignment);
    }
    c->upstream_bytes.fetch_sub(std::size_t{c->block_size} * n, std::memory_order_relaxed);
  }
}

class_shared* resource_impl::shared_of(void* ctx, uint32_t cls) noexcept {
  size_class* c = static_cast<resource_impl*>(ctx)->find(cls);
  return c == nullptr ? nullptr : &c->shared;
}

uint32_t resource_impl::classes_in_use(const void* ctx, uint32_t* out) noexcept {
  uint32_t n = 0;
  static_cast<const resource_impl*>(ctx)->for_each_class([&](size_class& c) { out[n++] = c.index; });
  return n;
}

uint32_t resource_impl::capacity_of(const void*, uint32_t cls, uint64_t budget) noexcept {
  return slots_for(cls, budget);
}

uint32_t resource_impl::batch_of(const void*, uint32_t cls, uint64_t budget) noexcept {
  return std::max<uint32_t>(slots_for(cls, budget) / 2, 1);
}

uint64_t resource_impl::weight_of(const void*, uint32_t cls) noexcept { return kClassBytes[cls]; }

void* resource_impl::meta_alloc(void* ctx, std::size_t bytes, std::size_t alignment) noexcept {
  auto* self = static_cast<resource_impl*>(ctx);
  return self->arena_.allocate(self->upstream_, bytes, alignment);
}

void resource_impl::meta_free(void* ctx, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  auto* self = static_cast<resource_impl*>(ctx);
  self->arena_.deallocate(self->upstream_, p, bytes, alignment);
}

void resource_impl::after_collect(void* ctx) noexcept { static_cast<resource_impl*>(ctx)->try_reset(); }

bool resource_impl::may_call_out(const void* ctx) noexcept {
  return static_cast<const resource_impl*>(ctx)->upstream_.may_call_now();
}

// ---------------------------------------------------------------------------
// classes

bool resource_impl::classify(std::size_t bytes, std::size_t alignment, uint32_t* index) const noexcept {
  if (bytes > largest_ || alignment > kMaxClassAlignment || !is_power_of_two(alignment)) return false;
  const std::size_t rounded = std::max((bytes + alignment - 1) & ~(alignment - 1), alignment);
  if (rounded > largest_) return false;
  const auto i = static_cast<uint32_t>(class_index(rounded));
  if (kClassBytes[i] > kLargestChunkedClass && alignment > kDirectClassAlignment) return false;
  *index = i;
  return true;
}

size_class* resource_impl::find(uint32_t index) const noexcept {
  const class_table* t = table_.load(std::memory_order_acquire);
  if (t == nullptr) return nullptr;
  const uint32_t mask = t->capacity - 1;
  for (uint32_t i = index & mask, probes = 0; probes < t->capacity; ++probes, i = (i + 1) & mask) {
    size_class* c = t->slots[i].load(std::memory_order_acquire);
    if (c == nullptr) return nullptr;
    if (c->index == index) return c;
  }
  return nullptr;
}

size_class* resource_impl::find_or_create(uint32_t index) {
  if (size_class* c = find(index)) return c;
  // Memory first, out of our lock (it may come from upstream).
  // (Throws what upstream throws, as every pooled request may.)
  void* mem = arena_.allocate_or_throw(upstream_, sizeof(size_class), alignof(size_class));
  auto* fresh = new (mem) size_class;
  fresh->index = index;
  fresh->block_size = kClassBytes[index];
  fresh->chunked = fresh->block_size <= kLargestChunkedClass;
  if (fresh->chunked) {
    std::size_t first = std::max<std::size_t>(kSmallestChunk, std::bit_ceil(std::size_t{2} * fresh->block_size));
    std::size_t most = kLargestChunk;
    if (max_blocks_ != 0) {
      // The user's cap on blocks per upstream call.
      most = std::max<std::size_t>(std::bit_ceil(max_blocks_ * fresh->block_size), fresh->block_size);
      most = std::bit_ceil(most);
    }
    fresh->next_chunk_bytes = static_cast<uint32_t>(std::min(first, most));
    fresh->first_chunk_bytes = fresh->next_chunk_bytes;
    fresh->max_blocks = static_cast<uint32_t>(
        max_blocks_ == 0 ? kLargestChunk : std::min<std::size_t>(max_blocks_, kLargestChunk));
  }
  for (;;) {
    class_table* grown = nullptr;
    uint32_t want = 0;
    {
      spin_lock_guard lock(classes_mu_);
      if (size_class* c = find(index)) {
        fresh->~size_class();
        arena_.deallocate(upstream_, fresh, sizeof(size_class), alignof(size_class));
        return c;
      }
      class_table* t = table_.load(std::memory_order_relaxed);
      if (t != nullptr && (t->used + 1) * 4 <= t->capacity * 3) {
        const uint32_t mask = t->capacity - 1;
        uint32_t i = index & mask;
        while (t->slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & mask;
        t->slots[i].store(fresh, std::memory_order_release);
        ++t->used;
        return fresh;
      }
      // 16 first: the 11 or so classes of a typical request, one allocation.
      want = t == nullptr ? 16 : t->capacity * 2;
    }
    // A larger table, out of the lock.
    void* tmem;
    try {
      tmem = arena_.allocate_or_throw(upstream_, class_table::bytes_for(want), alignof(class_table));
    } catch (...) {
      fresh->~size_class();
      arena_.deallocate(upstream_, fresh, sizeof(size_class), alignof(size_class));
      throw;
    }
    grown = static_cast<class_table*>(tmem);
    grown->capacity = want;
    grown->used = 0;
    for (uint32_t i = 0; i < want; ++i) new (&grown->slots[i]) std::atomic<size_class*>(nullptr);
    spin_lock_guard lock(classes_mu_);
    class_table* t = table_.load(std::memory_order_relaxed);
    if (t != nullptr && t->capacity >= want) {
      // Grown meanwhile by another thread: ours is not needed.
      arena_.deallocate(upstream_, grown, class_table::bytes_for(want), alignof(class_table));
      continue;
    }
    if (t != nullptr) {
      for (uint32_t j = 0; j < t->capacity; ++j) {
        size_class* c = t->slots[j].load(std::memory_order_relaxed);
        if (c == nullptr) continue;
        uint32_t i = c->index & (want - 1);
        while (grown->slots[i].load(std::memory_order_relaxed) != nullptr) i = (i + 1) & (want - 1);
        grown->slots[i].store(c, std::memory_order_relaxed);
        ++grown->used;
      }
    }
    // Readers may still probe the old table: it stays until reset.
    grown->retired = t;
    table_.store(grown, std::memory_order_release);
  }
}

template <class F>
void resource_impl::for_each_class(F f) const {
  const class_table* t = table_.load(std::memory_order_acquire);
  if (t == nullptr) return;
  for (uint32_t i = 0; i < t->capacity; ++i) {
    if (size_class* c = t->slots[i].load(std::memory_order_acquire)) f(*c);
  }
}

// ---------------------------------------------------------------------------
// chunks

void* resource_impl::read_link(const size_class& c, void* block) const noexcept {
  // A free block's first bytes, which may be neither aligned for a pointer
  // nor (under ASan) addressable.
  void* next;
  if (poisonable(c.block_size)) unpoison(block, sizeof(void*));
  std::memcpy(&next, block, sizeof(void*));
  if (poisonable(c.block_size)) poison(block, sizeof(void*));
  return next;
}

void resource_impl::write_link(const size_class& c, void* block, void* next) const noexcept {
  if (poisonable(c.block_size)) unpoison(block, sizeof(void*));
  std::memcpy(block, &next, sizeof(void*));
  if (poisonable(c.block_size)) poison(block, sizeof(void*));
}

namespace {

// A chunk's first block is aligned as every block of its class must be
// (block_alignment()), and then so is every block at base + i * size.
std::size_t chunk_alignment(const size_class& c) {
  return std::max<std::size_t>(block_alignment(c.block_size), alignof(std::max_align_t));
}

// Chunks are asked of upstream with the default alignment and this much
// more, and their first block is aligned inside: a malloc-like upstream
// serves the default alignment from its fast path, while glibc's memalign
// costs some 600 instructions a call.
std::size_t chunk_slack(const size_class& c) { return chunk_alignment(c) - alignof(std::max_align_t); }
constexpr std::size_t kUpstreamAlignment = alignof(std::max_align_t);

void make_available(size_class& c, chunk* h) {
  if (h->avail) return;
  h->avail = true;
  h->prev_avail = nullptr;
  h->next_avail = c.avail;
  if (c.avail != nullptr) c.avail->prev_avail = h;
  c.avail = h;
}

void make_unavailable(size_class& c, chunk* h) {
  if (!h->avail) return;
  h->avail = false;
  if (h->prev_avail != nullptr) h->prev_avail->next_avail = h->next_avail;
  if (h->next_avail != nullptr) h->next_avail->prev_avail = h->prev_avail;
  if (c.avail == h) c.avail = h->next_avail;
  h->prev_avail = h->next_avail = nullptr;
}

}  // namespace

chunk* resource_impl::chunk_of(size_class& c, void* block) const noexcept {
  // The last chunk whose base is at or below the block.
  const auto* p = static_cast<const char*>(block);
  chunk** first = c.sorted;
  chunk** last = c.sorted + c.nchunks;
  chunk** it = std::upper_bound(first, last, p, [](const char* a, const chunk* h) { return a < h->base; });
  if (it == first) return nullptr;
  chunk* h = *(it - 1);
  return p < h->base + h->bytes ? h : nullptr;
}

std::size_t resource_impl::carve(size_class& c, void** out, std::size_t want) {
  for (;;) {
    uint32_t bytes;
    bool need_index;
    uint32_t index_seen;
    bool inline_desc;  // this chunk's descriptor is c.first_chunk (reserved)
    {
      spin_lock_guard lock(c.shared.mu);
      std::size_t n = 0;
      while (n < want && c.avail != nullptr) {
        chunk* h = c.avail;
        while (n < want && h->free_list != nullptr) {
          void* block = h->free_list;
          h->free_list = read_link(c, block);
          --h->free_count;
          out[n++] = block;
        }
        while (n < want && h->carved < h->blocks) {
          out[n++] = h->base + std::size_t{h->carved++} * c.block_size;
        }
        if (h->free_list == nullptr && h->carved == h->blocks) make_unavailable(c, h);
      }
      if (n != 0) return n;
      bytes = c.next_chunk_bytes;
      need_index = c.nchunks == c.sorted_capacity;
      index_seen = c.sorted_capacity;
      inline_desc = !c.first_chunk_in_use;
      c.first_chunk_in_use = true;
    }
    auto drop_desc = [&](chunk* desc) {
      if (desc == &c.first_chunk) {
        spin_lock_guard lock(c.shared.mu);
        c.first_chunk_in_use = false;
      } else if (desc != nullptr) {
        arena_.deallocate(upstream_, desc, sizeof(chunk), alignof(chunk));
      }
    };
    // A new chunk, out of the class lock: upstream may take long, and may
    // call back into syncpool and give blocks back to this very class.
    // Aligned as much as the class's blocks need (the largest power of two
    // dividing the block size), not to the chunk's size: upstreams serve
    // small alignments fastest.
    const std::size_t request = bytes + chunk_slack(c);
    void* mem;
    try {
      mem = upstream_.allocate(request, kUpstreamAlignment);
    } catch (...) {
      if (inline_desc) drop_desc(&c.first_chunk);
      throw;
    }
    chunk* h = inline_desc ? &c.first_chunk : nullptr;
    chunk** index = nullptr;
    uint32_t index_capacity = 0;
    try {
      if (h == nullptr) h = static_cast<chunk*>(arena_.allocate_or_throw(upstream_, sizeof(chunk), alignof(chunk)));
      if (need_index) {
        index_capacity = std::max<uint32_t>(index_seen * 2, 2);
        index = static_cast<chunk**>(
            arena_.allocate_or_throw(upstream_, sizeof(chunk*) * index_capacity, alignof(chunk*)));
      }
    } catch (...) {
      drop_desc(h);
      upstream_.deallocate(mem, request, kUpstreamAlignment);
      throw;
    }
    c.upstream_bytes.fetch_add(request, std::memory_order_relaxed);
    // lead <= slack: upstream aligned mem to kUpstreamAlignment at least.
    const auto lead = static_cast<uint32_t>(-reinterpret_cast<uintptr_t>(mem) & (chunk_alignment(c) - 1));
    char* const base = static_cast<char*>(mem) + lead;
    const auto span = static_cast<uint32_t>(request - lead);  // blocks use what slack is left, too
    const uint32_t blocks = std::min<uint32_t>(span / c.block_size, c.max_blocks);
    if (poisonable(c.block_size)) poison(base, std::size_t{blocks} * c.block_size);
    *h = chunk{base, span, lead, blocks, 0, 0, nullptr, nullptr, nullptr, false};
    chunk** old_index = nullptr;
    uint32_t old_capacity = 0;
    std::size_t carved_now = 0;
    {
      spin_lock_guard lock(c.shared.mu);
      if (c.nchunks == c.sorted_capacity) {
        if (index == nullptr) {
          // Filled up meanwhile: this chunk goes back below, and the next
          // round grows the index.
          index_capacity = c.sorted_capacity * 2;
          index = nullptr;
        }
      }
      if (index != nullptr && index_capacity > c.sorted_capacity) {
        if (c.nchunks != 0) std::memcpy(index, c.sorted, sizeof(chunk*) * c.nchunks);
        old_index = c.sorted;
        old_capacity = c.sorted_capacity;
        c.sorted = index;
        c.sorted_capacity = index_capacity;
        index = nullptr;
      }
      if (c.nchunks < c.sorted_capacity) {
        chunk** at = std::upper_bound(c.sorted, c.sorted + c.nchunks, h->base,
                                      [](const char* a, const chunk* x) { return a < x->base; });
        std::memmove(at + 1, at, sizeof(chunk*) * (c.sorted + c.nchunks - at));
        *at = h;
        ++c.nchunks;
        c.next_chunk_bytes = static_cast<uint32_t>(
            std::min<std::size_t>(std::size_t{bytes} * 2, std::max<std::size_t>(bytes, kLargestChunk)));
        if (c.max_blocks != 0 && std::size_t{c.max_blocks} * c.block_size < c.next_chunk_bytes) {
          c.next_chunk_bytes = bytes;  // capped by max_blocks_per_chunk
        }
        // Ours first: a chunk never sits carved from by nobody (give_back()
        // frees a chunk only when a block of it comes back).
        carved_now = 0;
        while (carved_now < want && h->carved < h->blocks) {
          out[carved_now++] = h->base + std::size_t{h->carved++} * c.block_size;
        }
        if (h->carved < h->blocks) make_available(c, h);
        h = nullptr;
      }
    }
    if (old_index != nullptr && old_index != c.inline_index) {
      arena_.deallocate(upstream_, old_index, sizeof(chunk*) * old_capacity, alignof(chunk*));
    }
    if (index != nullptr) arena_.deallocate(upstream_, index, sizeof(chunk*) * index_capacity, alignof(chunk*));
    if (carved_now != 0) return carved_now;
    if (h != nullptr) {
      // No room in the index after all (another thread filled it): give
      // this chunk back and go round again.
      free_chunk_memory(c, h->base, h->lead, h->bytes);
      drop_desc(h);
    }
  }
}

void resource_impl::give_back(size_class& c, void* const* blocks, std::size_t n) noexcept {
  chunk* to_free = nullptr;
  // The inline descriptor is free for reuse as soon as the lock goes: what
  // the upstream call needs of it is copied first.
  char* inline_base = nullptr;
  uint32_t inline_lead = 0;
  uint32_t inline_bytes = 0;
  bool class_empty = false;
  // Blocks of the young regions that came back through the engine, linked
  // through their first bytes.
  void* young = nullptr;
  {
    spin_lock_guard lock(c.shared.mu);
    for (std::size_t i = 0; i < n; ++i) {
      void* block = blocks[i];
      chunk* h = chunk_of(c, block);
      if (h == nullptr) {
        write_link(c, block, young);
        young = block;
        continue;
      }
      write_link(c, block, h->free_list);
      h->free_list = block;
      if (++h->free_count == h->carved) {
        // Every block carved so far is back: the chunk goes upstream.
        make_unavailable(c, h);
        chunk** at = std::lower_bound(c.sorted, c.sorted + c.nchunks, h,
                                      [](const chunk* x, const chunk* y) { return x->base < y->base; });
        std::memmove(at, at + 1, sizeof(chunk*) * (c.sorted + c.nchunks - at - 1));
        // With no chunk left, the next one is small again: a class that
        // frees its last block and allocates again must not grow.
        if (--c.nchunks == 0) c.next_chunk_bytes = c.first_chunk_bytes;
        if (h == &c.first_chunk) {
          inline_base = h->base;
          inline_lead = h->lead;
          inline_bytes = h->bytes;
          c.first_chunk_in_use = false;
        } else {
          h->next_avail = to_free;
          to_free = h;
        }
      } else {
        make_available(c, h);
      }
    }
    class_empty = c.nchunks == 0;
  }
  while (to_free != nullptr) {
    chunk* next = to_free->next_avail;
    free_chunk_memory(c, to_free->base, to_free->lead, to_free->bytes);
    arena_.deallocate(upstream_, to_free, sizeof(chunk), alignof(chunk));
    to_free = next;
  }
  if (inline_base != nullptr) free_chunk_memory(c, inline_base, inline_lead, inline_bytes);
  while (young != nullptr) {
    void* next = read_link(c, young);
    if (!free_young(young, c.index, /*count=*/false)) {
      std::fprintf(stderr, "syncpool::pool_resource: a block of %u bytes at %p is in no chunk of its class\n",
                   c.block_size, young);
      std::abort();
    }
    young = next;
  }
  // The class holds nothing now: the next collect cycle must visit the
  // resource, which may then be idle and give its bookkeeping back too.
  if (class_empty) engine_.keep_collected();
}

void resource_impl::free_chunk_memory(size_class& c, char* base, uint32_t lead, uint32_t bytes) noexcept {
  c.upstream_bytes.fetch_sub(free_chunk_upstream(base, lead, bytes), std::memory_order_relaxed);
}

std::size_t resource_impl::free_chunk_upstream(char* base, uint32_t lead, uint32_t bytes) noexcept {
  const std::size_t upstream_bytes = std::size_t{lead} + bytes;  // as carve() asked for
  unpoison(base - lead, upstream_bytes);
  upstream_.deallocate(base - lead, upstream_bytes, kUpstreamAlignment);
  return upstream_bytes;
}

// ---------------------------------------------------------------------------
// slow paths

void* resource_impl::allocate_slow(std::size_t bytes, std::size_t alignment) {
  // Known to the fork handlers before anything below can take the upstream
  // lock: the first thread cache comes from upstream too (engine::enter_slow,
  // meta_alloc), and a fork while a thread held that lock for an unlisted
  // resource left the child with it held forever. Every first use of a
  // resource comes through here (no cache yet: no fast path).
  ensure_enlisted();
  uint32_t cls;
  if (!pooled_class(bytes, alignment, largest_, cls) && !classify(bytes, alignment, &cls)) {
    // Requests no class serves. As the standard says for requests above
    // largest_required_pool_block: upstream gets them unchanged (same
    // bytes, same alignment), and only what upstream throws is thrown.
    if (!is_power_of_two(alignment)) {
      throw std::invalid_argument("syncpool::pool_resource::allocate: alignment " + std::to_string(alignment) +
                                  " is not a power of two");
    }
    gate_guard gate(this);
    return direct_.allocate(upstream_, arena_, bytes, alignment, /*request=*/true);
  }
  if (cls < kChunkedClassCount && !young_.over.load(std::memory_order_relaxed)) {
    if (void* p = allocate_young(cls)) return p;
  }
  engine::scope s = engine_.enter_slow(cls);
  const bool cacheless = s.cache == nullptr;
  if (cacheless) gate_enter();
  void* p = nullptr;
  try {
    size_class& c = *find_or_create(cls);
    p = engine_.take(s, cls);
    if (p == nullptr) {
      if (c.chunked) {
        void* blocks[kMaxSlots];
        const std::size_t want = std::min<std::size_t>(engine_.refill_count(s, cls), kMaxSlots);
        const std::size_t n = carve(c, blocks, want);
        p = blocks[0];
        engine_.give_n(s, cls, blocks + 1, n - 1);
      } else {
        p = direct_.allocate(upstream_, arena_, c.block_size, kDirectClassAlignment, /*request=*/false);
        c.upstream_bytes.fetch_add(c.block_size, std::memory_order_relaxed);
        poison(p, c.block_size);
      }
    }
  } catch (...) {
    if (cacheless) gate_leave();
    engine_.leave_slow(s);
    throw;
  }
  if (cacheless) gate_leave();
  engine_.leave_slow(s);
  unpoison(p, kClassBytes[cls]);
  return p;
}

struct resource_impl::young_region {
  young_region* next;
  uint32_t bytes;  // as asked of upstream, this header included
  uint32_t live;   // young blocks of this region not back yet
  char* begin() noexcept { return reinterpret_cast<char*>(this + 1); }
  char* end() noexcept { return reinterpret_cast<char*>(this) + bytes; }
  bool holds(const void* p) noexcept {
    const auto at = reinterpret_cast<uintptr_t>(p);
    return at >= reinterpret_cast<uintptr_t>(begin()) && at < reinterpret_cast<uintptr_t>(end());
  }
};

namespace {
// A listed young block's link (young_state::heads): in units of 2 bytes
// from its region's first byte; kNoLink ends a list.
constexpr uint16_t kNoLink = UINT16_MAX;  // all bits set: heads are filled bytewise

// A 32-bit tag of the calling thread, never 0: bits 7-37 of its
// thread_state's address (distinct between live threads, whose TLS blocks
// lie far more than 128 bytes apart), and bit 0 set. Two threads that differ
// only above them are taken for one, which only lets their young blocks
// share a cache line.
// Cheap on purpose: every young allocation computes it (a fold with a test
// for 0 cost 17 instructions a block in bench/hit_path's lifetime16).
uint32_t this_thread_tag() noexcept {
  return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&t_thread) >> 6) | 1;
}
}  // namespace

namespace {
// Owner mode's back-off (young_state::owner). A revocation costs a
// membarrier(), which IPIs every CPU running one of our threads (about
// 20 us on the 2-core EPYC VM with the other core busy): a process that
// hands its request resources from thread to thread would pay one per
// request (a request handed over once, 8 allocations on each side: 1.7 us
// under mu, 23-29 us with a revocation each). So revocations are counted,
// and a thread that sees the count move since it last took a phase skips
// owner mode for its next phases, exponentially more of them while the
// count keeps moving, fewer again while it stays still. A process whose
// resources stay with their threads never revokes, and keeps owner mode.
// (Only revocations by allocate and deallocate count: see lock_young().)
constexpr uint32_t kMaxOwnerSkips = 1024;
constinit std::atomic<uint64_t> g_young_revocations{0};
struct owner_backoff {
  uint64_t seen = 0;     // g_young_revocations at this thread's last look
  uint32_t skips = 0;    // phases left to take without owner mode
  uint32_t span = 0;     // skips after the next revocation seen
  bool owned = false;    // whether the last phase took owner mode
  bool looked = false;   // a new thread starts from the count as it is
};
thread_local constinit owner_backoff t_owner_backoff{};

bool may_own_young_phase() noexcept {
  owner_backoff& b = t_owner_backoff;
  const uint64_t revocations = g_young_revocations.load(std::memory_order_relaxed);
  if (!b.looked) {
    b.looked = true;
    b.seen = revocations;
  }
  if (revocations != b.seen) {
    b.seen = revocations;
    b.span = std::min(b.span * 2 + 1, kMaxOwnerSkips);
    b.skips = b.span;
  } else if (b.owned) {
    b.span /= 2;  // an owned phase went by without a revocation
  }
  b.owned = b.skips == 0 && asymmetric_fence_available();
  if (b.skips != 0) --b.skips;
  return b.owned;
}
}  // namespace

inline bool resource_impl::try_enter_young_owned() noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (young_.owner.load(std::memory_order_relaxed) != &t_thread) return false;
  // The owner's side of the fence (as engine::enter_fast): raise the word,
  // then look; a revoker stores, fences, then looks at the word.
#ifdef SYNCPOOL_TSAN
  young_.owner_busy.store(1, std::memory_order_seq_cst);
  if (!young_.shared.load(std::memory_order_seq_cst)) return true;
#else
  young_.owner_busy.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  if (!young_.shared.load(std::memory_order_relaxed)) return true;
#endif
  young_.owner_busy.store(0, std::memory_order_release);
  return false;
}

inline bool resource_impl::enter_young(bool count) noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (try_enter_young_owned()) return true;
  lock_young(count);
  return false;
}

inline void resource_impl::leave_young(bool owned) noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (owned) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    young_.owner_busy.store(0, std::memory_order_release);
  } else {
    young_.mu.unlock();
  }
}

void resource_impl::lock_young(bool count) noexcept {
  young_.mu.lock();
  // The owner is set, and shared cleared, only under mu: what is read here
  // holds while it is held.
  const thread_state* owner = young_.owner.load(std::memory_order_relaxed);
  if (owner == nullptr || owner == &t_thread || young_.shared.load(std::memory_order_relaxed)) return;
  // Another thread owns the phase: revoke, for good. (Holding mu is fine:
  // the owner never waits for anything while its word is raised, and the
  // fence takes no lock.)
  young_.shared.store(true, std::memory_order_seq_cst);
  if (count) g_young_revocations.fetch_add(1, std::memory_order_relaxed);
  asymmetric_fence_heavy();
  for (int spins = 0; young_.owner_busy.load(std::memory_order_seq_cst) != 0;) {
    if (++spins > 64) std::this_thread::yield();
  }
}

inline void* resource_impl::bump_young(uint32_t cls, std::size_t size, std::size_t align, uint32_t tag) noexcept {
  // (next and end are both null when there is no region to bump from.)
  // last_tag is 0 only after the reuse lists' heads (make_heads), and no
  // thread's tag is 0: the next block starts a line either way.
  const std::size_t at = young_.last_tag == tag ? align : kYoungSwitchAlignment;
  auto* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(young_.next) + at - 1) & ~(at - 1));
  if (young_.next == nullptr || p + size > young_.end) return nullptr;
  young_.last_tag = tag;
  young_.next = p + size;
  ++young_.regions.load(std::memory_order_relaxed)->live;
  ++young_.live;
  ++young_.allocations;
  young_.bumped += static_cast<uint32_t>(size);
  ++young_.misses[cls];
  return p;  // unpoisoned: a region is, when made and when rewound
}

inline void* resource_impl::allocate_young_owned(uint32_t cls) noexcept {
  if (!try_enter_young_owned()) return nullptr;
  void* p = nullptr;
  const std::size_t size = kClassBytes[cls];
  // The order of allocate_young()'s loop: the phase's end first, then the
  // reuse list, then the bump; the rest (a new region, the end) is its.
  if (!young_.over.load(std::memory_order_relaxed) && young_.allocations != kYoungAllocations &&
      young_.bumped + size <= kYoungBytes) {
    if (ABSL_PREDICT_FALSE(young_.heads != nullptr) && (p = pop_reusable(cls)) != nullptr) {
      unpoison(p, size);
    } else {
      p = bump_young(cls, size, block_alignment(size), this_thread_tag());
    }
  }
  leave_young(true);
  return p;
}

inline bool resource_impl::free_young_owned(void* p, uint32_t cls) noexcept {
  if (!try_enter_young_owned()) return false;
  // free_young()'s case of a block of the newest region, during the phase,
  // with other blocks of that region still out (so with young_.live > 1).
  young_region* const newest = young_.regions.load(std::memory_order_relaxed);
  const bool listed = !young_.over.load(std::memory_order_relaxed) && newest != nullptr && newest->holds(p) &&
                      newest->live > 1;
  if (listed) {
    --newest->live;
    --young_.live;
    push_reusable(newest, cls, p);
  }
  leave_young(true);
  return listed;
}

// (young_.over is looked at first, and again in the owner's section: past
// the phase, a miss costs a load and a branch more than before.) No
// ensure_enlisted() here: a phase has an owner only after allocate_slow()
// ran, which enlists the resource first (for good: nothing delists it but
// its destructor), and the owner's paths take no lock the fork handlers do.
void* resource_impl::allocate_miss(std::size_t bytes, std::size_t alignment) {
  if (!young_.over.load(std::memory_order_relaxed)) {
    if (void* p = allocate_young_owned(table_class_of(bytes, alignment))) return p;
  }
  return allocate_slow(bytes, alignment);
}

void resource_impl::deallocate_miss(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (!young_.over.load(std::memory_order_relaxed) && free_young_owned(p, table_class_of(bytes, alignment))) return;
  unpoison(p, kClassBytes[table_class_of(bytes, alignment)]);  // deallocate_slow poisons it again
  deallocate_slow(p, bytes, alignment);
}

void* resource_impl::allocate_young(uint32_t cls) {
  // Regions come at the default alignment, and so does their first byte.
  static_assert(sizeof(young_region) % kUpstreamAlignment == 0);
  // A region is at most what the phase may bump, its header and a block's
  // alignment slack: its blocks' offsets from begin(), in 2-byte units, fit
  // young_state's 16-bit links, kNoLink excluded.
  static_assert((sizeof(young_region) + kYoungBytes + kMaxClassAlignment + kUpstreamAlignment) / 2 < UINT16_MAX);
  const std::size_t size = kClassBytes[cls];
  const std::size_t align = block_alignment(size);
  const uint32_t tag = this_thread_tag();
  if (ABSL_PREDICT_FALSE(young_.owner.load(std::memory_order_relaxed) == nullptr &&
                         !young_.shared.load(std::memory_order_relaxed))) {
    // Out of the lock: the first call of a process (and of a fork() child)
    // asks the kernel for membarrier. (Only while an owner may still be
    // chosen: a phase shared from the start makes no call per allocation.)
    (void)asymmetric_fence_available();
  }
  bool owned = enter_young();
  if (ABSL_PREDICT_FALSE(!owned) && young_.owner.load(std::memory_order_relaxed) == nullptr &&
      !young_.shared.load(std::memory_order_relaxed)) {
    // The phase's first allocation: this thread owns it from the next call
    // (young_state::owner), where membarrier lets another thread revoke that.
    if (may_own_young_phase()) {
      young_.owner.store(&t_thread, std::memory_order_relaxed);
    } else {
      young_.shared.store(true, std::memory_order_relaxed);
    }
  }
  for (;;) {
    if (young_.over.load(std::memory_order_relaxed)) break;
    if (young_.allocations == kYoungAllocations || young_.bumped + size > kYoungBytes) {
      if (owned) {
        // The phase ends under mu (see share_young_phase()): look again there.
        share_young_phase(owned);
        continue;
      }
      young_.over.store(true, std::memory_order_relaxed);
      break;
    }
    // A block of this class that came back (young_state::heads).
    if (ABSL_PREDICT_FALSE(young_.heads != nullptr)) {
      if (void* p = take_reusable(cls)) {
        leave_young(owned);
        unpoison(p, size);
        return p;
      }
    }
    if (void* p = bump_young(cls, size, align, tag)) {
      leave_young(owned);
      return p;
    }
    // A new region, out of the lock: upstream may take long, and may call
    // back into syncpool (a collect() that visits this resource). A whole
    // number of max_align_t units, so that ASan can unpoison it exactly
    // and an aligned_alloc-based upstream takes the size.
    const uint32_t asked = young_.next_region;
    // The region is installed with this thread's tag, and the block bumped
    // from it under the same lock hold: its alignment is all the slack.
    const std::size_t need = sizeof(young_region) + size + align - 1;
    // No larger than what the phase may still bump: the rest would never be
    // used (the fifth region was 64 KiB, after four of 42.5 KiB in all, and
    // the phase bumps 64 KiB at most).
    const std::size_t left = sizeof(young_region) + (kYoungBytes - young_.bumped) + align - 1;
    const std::size_t bytes =
        (std::max<std::size_t>(std::min<std::size_t>(asked, left), need) + kUpstreamAlignment - 1) &
        ~(kUpstreamAlignment - 1);
    leave_young(owned);
    void* mem;
    try {
      mem = upstream_.allocate(bytes, kUpstreamAlignment);
    } catch (...) {
      // Upstream is short: the phase ends here, and the engine's path (a
      // chunk just large enough) has the request.
      owned = enter_young();
      share_young_phase(owned);
      young_.over.store(true, std::memory_order_relaxed);
      break;
    }
    auto* r = new (mem) young_region{nullptr, static_cast<uint32_t>(bytes), 0};
    young_.upstream_bytes.fetch_add(bytes, std::memory_order_relaxed);
    owned = enter_young();
    // Another thread may have taken a region meanwhile: it keeps what it
    // bumped, and the rest of it goes unused.
    if (young_.next_region == asked) {
      young_.next_region = static_cast<uint32_t>(std::min(std::size_t{asked} * 4, kYoungBytes));
    }
    r->next = young_.regions.load(std::memory_order_relaxed);
    young_.regions.store(r, std::memory_order_release);
    young_.next = r->begin();
    young_.end = r->end();
    drop_reusable();  // the lists hold the previous region's blocks
    young_.last_tag = tag;  // nobody else's block in it yet
  }
  // Over: no block will be bumped again, so every region without a young
  // block goes now (the one bumped from last, one that came meanwhile);
  // the others go with their last block. The reuse lists go too (their
  // heads may lie in a region that goes). Under mu (the phase's end is
  // shared: a test hook may end it under an owner).
  share_young_phase(owned);
  drop_reusable();
  young_region* unused = nullptr;
  if (young_.live == 0) {
    unused = detach_unused_regions();
  } else {
    young_.next = young_.end = nullptr;
    young_region* r = young_.regions.load(std::memory_order_relaxed);
    young_region* kept = nullptr;
    while (r != nullptr) {
      young_region* next = r->next;
      young_region*& list = r->live == 0 ? unused : kept;
      r->next = list;
      list = r;
      r = next;
    }
    young_.regions.store(kept, std::memory_order_relaxed);  // (in reverse order: no matter now)
  }
  leave_young(owned);
  free_regions(unused);
  return nullptr;
}

bool resource_impl::free_young(void* p, uint32_t cls, bool count) noexcept {
  if (young_.regions.load(std::memory_order_acquire) == nullptr) return false;
  young_region* unused = nullptr;
  bool idle = false;  // no young block is out
  bool kept = false;  // and the newest region is kept for the next ones
  {
    const bool owned = enter_young(count);
    young_region* prev = nullptr;
    young_region* r = young_.regions.load(std::memory_order_relaxed);
    while (r != nullptr && !r->holds(p)) {
      prev = r;
      r = r->next;
    }
    if (r == nullptr) {
      leave_young(owned);
      return false;
    }
    --young_.live;
    --r->live;
    idle = young_.live == 0;
    const bool over = young_.over.load(std::memory_order_relaxed);
    if (idle) {
      // Every young block is back. The first time in a phase (a resource
      // made for one request, about to be destroyed), and once the phase
      // is over, every region goes. After that (a resource that keeps
      // allocating and freeing), the newest one is kept and bumped from its
      // start again, so that allocate/free pairs on an upstream that never
      // frees (a monotonic_buffer_resource) do not take a region each.
      if (over || young_.emptied++ == 0) {
        unused = detach_unused_regions();
      } else {
        young_region* head = young_.regions.load(std::memory_order_relaxed);
        unused = head->next;  // none holds a block
        head->next = nullptr;
        young_.next = head->begin();
        young_.end = head->end();
        drop_reusable();
        unpoison(head->begin(), head->bytes - sizeof(young_region));
        kept = true;
      }
    } else if (r->live == 0) {
      if (prev == nullptr && !over) {
        // The region being bumped from: from its start again.
        young_.next = r->begin();
        drop_reusable();
        unpoison(r->begin(), r->bytes - sizeof(young_region));
      } else {
        // An older region (or any, once the phase is over): it goes now,
        // whatever blocks live elsewhere.
        if (prev != nullptr) {
          prev->next = r->next;
        } else {
          young_.regions.store(r->next, std::memory_order_relaxed);
          young_.next = young_.end = nullptr;
          drop_reusable();
        }
        r->next = nullptr;
        unused = r;
      }
    } else if (prev == nullptr && !over) {
      // Other young blocks are out: this one serves the next allocation of
      // its class (see young_state::heads).
      push_reusable(r, cls, p);
    }
    leave_young(owned);
  }
  free_regions(unused);
  // This resource may be idle now, with memory given back outside the
  // engine (see give_back()): the collectors must still visit it, to free
  // its bookkeeping (class state, direct blocks' records) or the region it
  // kept. A resource with neither needs no visit.
  if (kept || (idle && unused != nullptr && arena_.upstream_bytes() != 0)) engine_.keep_collected();
  return true;
}

resource_impl::young_region* resource_impl::detach_unused_regions() noexcept {
  // Every young block is back and no young allocation is to come: the
  // regions go upstream now (the resource may be idle from here on).
  young_region* r = young_.regions.load(std::memory_order_relaxed);
  young_.regions.store(nullptr, std::memory_order_relaxed);
  young_.next = young_.end = nullptr;
  young_.next_region = kFirstYoungRegion;
  drop_reusable();
  return r;
}

bool resource_impl::make_heads() noexcept {
  // A line of their own, and the next block starts another (last_tag 0):
  // every push and pop writes the heads, from any thread, and must not pull
  // a line that holds some thread's block.
  constexpr std::size_t kHeadsBytes = sizeof(uint16_t) * kChunkedClassCount;
  static_assert(kHeadsBytes <= kYoungSwitchAlignment * 2);
  auto* at = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(young_.next) + kYoungSwitchAlignment - 1) &
                                     ~uintptr_t{kYoungSwitchAlignment - 1});
  if (young_.next == nullptr || at + kHeadsBytes > young_.end) return false;
  young_.bumped += static_cast<uint32_t>(at + kHeadsBytes - young_.next);
  young_.next = at + kHeadsBytes;
  young_.last_tag = 0;
  young_.heads = reinterpret_cast<uint16_t*>(at);
  std::memset(young_.heads, 0xff, kHeadsBytes);  // kNoLink in every head
  return true;
}

inline bool resource_impl::push_reusable(young_region* newest, uint32_t cls, void* p) noexcept {
  if (ABSL_PREDICT_FALSE(young_.heads == nullptr) && !make_heads()) return false;
  const auto at = static_cast<uint16_t>(
      (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(newest->begin())) >> 1);
  const uint16_t next = young_.heads[cls];
  // The block is poisoned (deallocate did it) where its class can be.
  const bool poisoned = poisonable(kClassBytes[cls]);
  if (poisoned) unpoison(p, sizeof(void*));
  std::memcpy(p, &next, sizeof(next));
  if (poisoned) poison(p, sizeof(void*));
  young_.heads[cls] = at;
  return true;
}

inline void* resource_impl::pop_reusable(uint32_t cls) noexcept {
  const uint16_t head = young_.heads[cls];
  if (head == kNoLink) return nullptr;
  young_region* newest = young_.regions.load(std::memory_order_relaxed);
  char* const p = newest->begin() + std::size_t{head} * 2;
  uint16_t next;
  if (poisonable(kClassBytes[cls])) unpoison(p, sizeof(void*));  // deallocate poisoned it
  std::memcpy(&next, p, sizeof(next));
  young_.heads[cls] = next;
  ++newest->live;
  ++young_.live;
  ++young_.allocations;
  ++young_.misses[cls];
  return p;
}

void* resource_impl::take_reusable(uint32_t cls) noexcept { return pop_reusable(cls); }

void resource_impl::free_regions(young_region* r) noexcept {
  while (r != nullptr) {
    young_region* next = r->next;
    const std::size_t bytes = r->bytes;
    unpoison(r, bytes);
    upstream_.deallocate(r, bytes, kUpstreamAlignment);
    young_.upstream_bytes.fetch_sub(bytes, std::memory_order_relaxed);
    r = next;
  }
}

resource_impl::young_region* resource_impl::reset_young() noexcept {
  young_region* r = young_.regions.load(std::memory_order_relaxed);
  young_.regions.store(nullptr, std::memory_order_relaxed);
  young_.next = young_.end = nullptr;
  young_.live = 0;
  young_.bumped = 0;
  young_.allocations = 0;
  young_.emptied = 0;
  young_.last_tag = 0;
  young_.next_region = kFirstYoungRegion;
  drop_reusable();
  std::fill(std::begin(young_.misses), std::end(young_.misses), uint16_t{0});
  young_.over.store(!young_phase_allowed(), std::memory_order_relaxed);
  return r;
}

void resource_impl::deallocate_slow(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  uint32_t cls;
  if (!pooled_class(bytes, alignment, largest_, cls) && !classify(bytes, alignment, &cls)) {
    gate_guard gate(this);
    direct_.deallocate(upstream_, p, bytes, alignment);
    if (direct_.live() == 0) engine_.keep_collected();  // as give_back() does
    return;
  }
  poison(p, kClassBytes[cls]);
  // While the young phase goes on, every block of a chunked class is a
  // young one. Once it is over, a young block goes through the engine like
  // any other, and reaches its region when the engine gives it back
  // (give_back()): the slow paths then take no resource-wide lock.
  const bool chunked = cls < kChunkedClassCount;
  if (chunked && !young_.over.load(std::memory_order_relaxed) && free_young(p, cls)) return;
  engine::scope s = engine_.enter_slow(cls);
  const bool cacheless = s.cache == nullptr;
  if (cacheless) gate_enter();
  if (find(cls) == nullptr) {
    // No class state: a young block of a class not used since the phase,
    // or a pointer from elsewhere.
    if (chunked && free_young(p, cls)) {
      if (cacheless) gate_leave();
      engine_.leave_slow(s);
      return;
    }
    std::fprintf(stderr,
                 "syncpool::pool_resource: deallocate(%p, %zu, %zu): no block of that size was ever "
                 "allocated here (a pointer from elsewhere, a wrong size, or a block freed twice)\n",
                 p, bytes, alignment);
    std::abort();
  }
  engine_.give(s, cls, p);
  if (cacheless) gate_leave();
  engine_.leave_slow(s);
}

// ---------------------------------------------------------------------------
// idleness, release, stats

void resource_impl::try_reset() noexcept {
  // Busy (release() or stats() at work, a call through the gate, another
  // collector): another cycle must come back here, though this one's
  // engine may have left the collectors' list.
  if (!reset_mu_.try_lock()) {
    engine_.keep_collected();
    return;
  }
  meta_arena::detached freed;
  young_region* young_left = nullptr;  // regions a racing young allocation added
  bool reset = false;
  // The gate's handshake (Dekker's): each side announces itself, then looks
  // at the other. gate_enter() raises gate_users_, then reads resetting_;
  // here resetting_ goes up first, then gate_users_ is read, so that one of
  // the two sees the other. (Read first, a caller could pass the gate
  // between the read and the store, and work in direct_ while it reset.)
  resetting_.store(true, std::memory_order_seq_cst);
  bool busy = gate_users_.load(std::memory_order_seq_cst) != 0;
  if (!busy) engine_.if_idle([&]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    bool empty = direct_.live() == 0;
    for_each_class([&](size_class& c) { empty = empty && c.nchunks == 0; });
    if (!empty) return false;
    {
      young_lock_guard ylock(this);
      if (young_.live != 0) return false;
      retire_counts_locked();
      young_left = reset_young();  // a new young phase
    }
    // No thread can reach the classes now (no cache exists, none can be
    // made while the engine lock is held): drop them with the arena.
    table_.store(nullptr, std::memory_order_release);
    direct_.forget();
    freed = arena_.detach();
    reset = true;
    return true;
  }, &busy);
  resetting_.store(false, std::memory_order_release);
  reset_mu_.unlock();
  if (reset) meta_arena::free_detached(upstream_, freed);
  free_regions(young_left);
  if (busy) engine_.keep_collected();
}

void resource_impl::retire_counts_locked() noexcept {
  retired_counts add;
  add.misses = young_.allocations;  // one miss each (young_.misses, by class)
  for_each_class([&](size_class& c) {
    add.local_hits += c.shared.retired_hits.load(std::memory_order_relaxed);
    add.stolen += c.shared.stolen.load(std::memory_order_relaxed);
    add.victim_hits += c.shared.victim_hits.load(std::memory_order_relaxed);
    add.misses += c.shared.misses.load(std::memory_order_relaxed);
  });
  retired_.local_hits += add.local_hits;
  retired_.stolen += add.stolen;
  retired_.victim_hits += add.victim_hits;
  retired_.misses += add.misses;
}

void resource_impl::release_face() noexcept {
  // Everything is detached under the lock, and given upstream after it: an
  // upstream's deallocate may call back (stats() takes this lock).
  young_region* regions;
  chunk* chunks = nullptr;  // linked through next_avail
  direct_set::detached direct;
  meta_arena::detached arena;
  {
    spin_lock_guard lock(reset_mu_);
    {
      // The lock as it is, no revocation: release() and the destructor
      // run apart from any use, so no owner is in its section.
      spin_lock_guard ylock(young_.mu);
      retire_counts_locked();
      regions = reset_young();
    }
    for_each_class([&](size_class& c) {
      spin_lock_guard clock(c.shared.mu);
      for (uint32_t i = 0; i < c.nchunks; ++i) {
        c.sorted[i]->next_avail = chunks;
        chunks = c.sorted[i];
      }
      c.nchunks = 0;
      c.avail = nullptr;
    });
    direct = direct_.detach();
    table_.store(nullptr, std::memory_order_release);
    arena = arena_.detach();
#ifdef SYNCPOOL_DEBUG_CHECKS
    if (allocation_checker* c = checker()) c->clear();
#endif
  }
  free_regions(regions);
  // The chunks' descriptors, and the direct blocks' table, live in the
  // detached arena: they go last.
  while (chunks != nullptr) {
    chunk* next = chunks->next_avail;
    free_chunk_upstream(chunks->base, chunks->lead, chunks->bytes);  // (its class is gone)
    chunks = next;
  }
  direct_set::free_detached(upstream_, direct);
  meta_arena::free_detached(upstream_, arena);
}

pool_resource_stats resource_impl::stats() const {
  pool_resource_stats s;
  auto* self = const_cast<resource_impl*>(this);
  self->ensure_enlisted();
  // Allocated before the lock: no user code (a replaced operator new) runs
  // under it.
  const uint32_t classes = static_cast<uint32_t>(class_index(largest_)) + 1;
  s.classes.reserve(classes);
  spin_lock_guard lock(self->reset_mu_);
  uint16_t young_misses[kChunkedClassCount];
  {
    young_lock_guard ylock(self);
    std::copy(std::begin(self->young_.misses), std::end(self->young_.misses), young_misses);
  }
  for (uint32_t k = 0; k < classes; ++k) {
    pool_resource_stats::counts n;
    n.block_size = kClassBytes[k];
    // Allocations of the young phase: one miss each (a block bumped).
    if (k < kChunkedClassCount) n.misses = young_misses[k];
    if (const size_class* c = find(k)) {  // else never used past the young phase
      const engine_stats e = engine_.class_stats(k);
      n.local_hits = e.local_hits;
      n.stolen = e.stolen;
      n.victim_hits = e.victim_hits;
      n.misses += e.misses;
      n.cached = e.cached;
      n.cached_bytes = e.cached * c->block_size;
      n.upstream_bytes = c->upstream_bytes.load(std::memory_order_relaxed);
      n.idle_threads_reachable = e.reaches_idle_threads;
    }
    s.total.local_hits += n.local_hits;
    s.total.stolen += n.stolen;
    s.total.victim_hits += n.victim_hits;
    s.total.misses += n.misses;
    s.total.cached += n.cached;
    s.total.cached_bytes += n.cached_bytes;
    s.total.upstream_bytes += n.upstream_bytes;
    s.classes.push_back(n);
  }
  s.total.local_hits += self->retired_.local_hits;
  s.total.stolen += self->retired_.stolen;
  s.total.victim_hits += self->retired_.victim_hits;
  s.total.misses += self->retired_.misses;
  const engine_stats all = engine_.stats();
  s.total.thread_caches = all.thread_caches;
  s.total.idle_threads_reachable = all.reaches_idle_threads;
  s.bookkeeping_bytes = arena_.upstream_bytes();
  // Direct classes' blocks are in their classes' upstream_bytes already;
  // the direct counters are for requests no class serves.
  std::size_t class_direct = 0;
  for (const auto& n : s.classes) {
    if (n.block_size > kLargestChunkedClass) class_direct += n.upstream_bytes;
  }
  s.direct_bytes = direct_.upstream_bytes() - class_direct;
  s.direct_allocations = direct_.requests();
  s.total.misses += s.direct_allocations;
  s.young_bytes = young_.upstream_bytes.load(std::memory_order_relaxed);
  s.total.upstream_bytes += s.direct_bytes + s.bookkeeping_bytes + s.young_bytes;
  return s;
}

// ---------------------------------------------------------------------------
// fork

void resource_impl::fork_hooks::lock_for_fork(rank r) noexcept {
  if (r == rank::upstream) {
    // The upstream lock first: an upstream's deallocate may call stats(),
    // which takes reset_mu_ under it; nothing holds reset_mu_ across an
    // upstream call (release() and the idle reset give memory back after
    // letting it go).
    impl->upstream_.mu().lock();
    impl->reset_mu_.lock();
  } else if (r == rank::blocks) {
    // The class set cannot change while classes_mu_ is held: the same
    // classes are unlocked and reset below.
    impl->classes_mu_.lock();
    impl->for_each_class([](size_class& c) ABSL_NO_THREAD_SAFETY_ANALYSIS { c.shared.mu.lock(); });
    // (An owner of the young phase keeps working without it; the child
    // deals with that: reset_young_owner_after_fork().)
    impl->young_.mu.lock();
    impl->arena_.mu().lock();
    impl->direct_.mu().lock();
#ifdef SYNCPOOL_DEBUG_CHECKS
    if (allocation_checker* c = impl->checker()) c->mu().lock();
#endif
  }
}

void resource_impl::fork_hooks::unlock_after_fork(rank r) noexcept {
  if (r == rank::upstream) {
    impl->reset_mu_.unlock();
    impl->upstream_.mu().unlock();
  } else if (r == rank::blocks) {
#ifdef SYNCPOOL_DEBUG_CHECKS
    if (allocation_checker* c = impl->checker()) c->mu().unlock();
#endif
    impl->direct_.mu().unlock();
    impl->arena_.mu().unlock();
    impl->young_.mu.unlock();
    impl->for_each_class([](size_class& c) ABSL_NO_THREAD_SAFETY_ANALYSIS { c.shared.mu.unlock(); });
    impl->classes_mu_.unlock();
  }
}

void resource_impl::fork_hooks::reset_after_fork(rank r) noexcept {
  if (r == rank::upstream) {
    impl->upstream_.mu().reset_after_fork();
    impl->reset_mu_.reset_after_fork();
    // Threads that were inside the gate do not exist in the child (fork()
    // from syncpool's own callbacks is not supported): nobody is.
    impl->gate_users_.store(0, std::memory_order_relaxed);
    impl->resetting_.store(false, std::memory_order_relaxed);
  } else if (r == rank::blocks) {
#ifdef SYNCPOOL_DEBUG_CHECKS
    if (allocation_checker* c = impl->checker()) c->mu().reset_after_fork();
#endif
    impl->direct_.mu().reset_after_fork();
    impl->arena_.mu().reset_after_fork();
    impl->young_.mu.reset_after_fork();
    impl->reset_young_owner_after_fork();
    impl->for_each_class([](size_class& c) { c.shared.mu.reset_after_fork(); });
    impl->classes_mu_.reset_after_fork();
  }
}

}  // namespace internal

// ---------------------------------------------------------------------------
// pool_resource

namespace {

std::size_t largest_class_for(std::size_t requested) noexcept {
  std::size_t largest = requested == 0 ? internal::kDefaultLargest : requested;
  largest = std::clamp(largest, internal::kSmallestClass, internal::kLargestClassLimit);
  return internal::class_size(internal::class_index(largest));
}

}  // namespace

pool_resource::pool_resource() : pool_resource(pool_resource_options{}, std::pmr::get_default_resource()) {}

pool_resource::pool_resource(std::pmr::memory_resource* upstream)
    : pool_resource(pool_resource_options{}, upstream) {}

pool_resource::pool_resource(const std::pmr::pool_options& options)
    : pool_resource(options, std::pmr::get_default_resource()) {}

pool_resource::pool_resource(const std::pmr::pool_options& options, std::pmr::memory_resource* upstream)
    : pool_resource(pool_resource_options{options, 0}, upstream) {}

pool_resource::pool_resource(const pool_resource_options& options)
    : pool_resource(options, std::pmr::get_default_resource()) {}

pool_resource::pool_resource(const pool_resource_options& options, std::pmr::memory_resource* upstream)
    : upstream_(upstream), options_(options) {
  if (upstream == nullptr) throw std::invalid_argument("syncpool::pool_resource: upstream is null");
  largest_ = largest_class_for(options.largest_required_pool_block);
  table_limit_ = std::min(largest_, internal::kTableLimit);
  options_.largest_required_pool_block = largest_;
  // The most blocks a chunk holds (what std::pmr reports here).
  const std::size_t most = internal::kLargestChunk / internal::kSmallestClass;
  options_.max_blocks_per_chunk =
      options.max_blocks_per_chunk == 0 ? most : std::min(options.max_blocks_per_chunk, most);
  thread_cache_bytes_ =
      options.thread_cache_bytes == 0 ? internal::kDefaultThreadCacheBytes : options.thread_cache_bytes;
  // A bound at or above `most` never binds (no chunk is larger): no bound,
  // as 0 is. (SIZE_MAX, "no limit", used to overflow blocks x block size.)
  const std::size_t bound = options.max_blocks_per_chunk >= most ? 0 : options.max_blocks_per_chunk;
  new (impl_) internal::resource_impl(upstream, largest_, bound, thread_cache_bytes_);
}

pool_resource::~pool_resource() { impl().~resource_impl(); }

internal::resource_impl& pool_resource::impl() noexcept {
  return *std::launder(reinterpret_cast<internal::resource_impl*>(impl_));
}

const internal::resource_impl& pool_resource::impl() const noexcept {
  return *std::launder(reinterpret_cast<const internal::resource_impl*>(impl_));
}

void pool_resource::release() { impl().release(); }

void pool_resource::collect() { impl().collect(); }

pool_resource_stats pool_resource::stats() const { return impl().stats(); }

// The two hit paths start a 64-byte line each. Where they fell otherwise
// depended on the code around them: a change elsewhere in this file (to the
// young phase's miss path) moved them and made compare_allocators' pair
// workload 8% slower, 4.02 -> 4.36 ns on CPU 0 of the EPYC VM, with the
// same instructions; aligned, 3.98-4.04.
#if defined(__GNUC__) || defined(__clang__)
#define SYNCPOOL_LINE_ALIGNED __attribute__((aligned(64)))
#else
#define SYNCPOOL_LINE_ALIGNED
#endif

// The hot path: a pooled request served by the calling thread's cache, with
// no call, no lock and no atomic read-modify-write. Everything else goes to
// resource_impl, out of line.
// The common request (a power-of-two alignment up to 64, a size up to
// 4 KiB) in a handful of instructions: for a power of two `alignment`,
// (bytes - 1) | (alignment - 1) is the size rounded up to it, less one (and
// wraps for 0). Everything else (larger sizes, over-aligned or bad input)
// goes through pooled_class() out of line.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool pool_resource::table_class(std::size_t bytes, std::size_t alignment,
                                                                    uint32_t& index) const noexcept {
  const std::size_t mask = alignment - 1;
  const std::size_t last = (bytes - 1) | mask;
  // One test for "a power of two, at most kMaxClassAlignment", as in
  // pooled_class(); alignment 0 passes it, and fails on `last`, which is
  // then all ones.
  constexpr std::size_t kTooAligned = ~(2 * internal::kMaxClassAlignment - 1);
  if (ABSL_PREDICT_FALSE((alignment & (mask | kTooAligned)) != 0 || last >= table_limit_)) return false;
  index = internal::kIndexByHalf[last >> 1];
  return true;
}

SYNCPOOL_LINE_ALIGNED void* pool_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  uint32_t index;
  if (ABSL_PREDICT_FALSE(!table_class(bytes, alignment, index))) return allocate_other(bytes, alignment);
  void* p = impl().engine_.try_get_fast(index);
  if (ABSL_PREDICT_FALSE(p == nullptr)) p = impl().allocate_miss(bytes, alignment);
  else internal::unpoison(p, internal::kClassBytes[index]);
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl().check_allocate(p, bytes, alignment);
#endif
  return p;
}

void* pool_resource::allocate_other(std::size_t bytes, std::size_t alignment) {
  void* p = nullptr;
  uint32_t index;
  if (ABSL_PREDICT_TRUE(internal::pooled_class(bytes, alignment, largest_, index))) {
    p = impl().engine_.try_get_fast(index);
    if (ABSL_PREDICT_TRUE(p != nullptr)) internal::unpoison(p, internal::kClassBytes[index]);
  }
  if (ABSL_PREDICT_FALSE(p == nullptr)) p = impl().allocate_slow(bytes, alignment);
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl().check_allocate(p, bytes, alignment);
#endif
  return p;
}

SYNCPOOL_LINE_ALIGNED void pool_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  // As free(nullptr): nothing to give back, and a null pointer must never
  // enter a cache (it would be handed out, and given back to a chunk).
  if (ABSL_PREDICT_FALSE(p == nullptr)) return;
  uint32_t index;
  if (ABSL_PREDICT_FALSE(!table_class(bytes, alignment, index))) return deallocate_other(p, bytes, alignment);
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl().check_deallocate(p, bytes, alignment);
#endif
  internal::poison(p, internal::kClassBytes[index]);
  if (ABSL_PREDICT_TRUE(impl().engine_.try_put_fast(index, p))) return;
  impl().deallocate_miss(p, bytes, alignment);
}

void pool_resource::deallocate_other(void* p, std::size_t bytes, std::size_t alignment) {
#ifdef SYNCPOOL_DEBUG_CHECKS
  impl().check_deallocate(p, bytes, alignment);
#endif
  uint32_t index;
  if (ABSL_PREDICT_TRUE(internal::pooled_class(bytes, alignment, largest_, index))) {
    const uint32_t size = internal::kClassBytes[index];
    internal::poison(p, size);
    if (ABSL_PREDICT_TRUE(impl().engine_.try_put_fast(index, p))) return;
    internal::unpoison(p, size);  // deallocate_slow poisons it again
  }
  impl().deallocate_slow(p, bytes, alignment);
}

bool pool_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept { return this == &other; }

namespace internal {
void testing_hooks::end_young_phase(pool_resource& r) noexcept {
  r.impl().young_.over.store(true, std::memory_order_relaxed);
}

uint64_t testing_hooks::thread_budget(pool_resource& r) noexcept { return thread_budget(r.impl().engine_); }

uint64_t testing_hooks::growth_granted(pool_resource& r) noexcept { return growth_granted(r.impl().engine_); }

uint64_t testing_hooks::checker_heap_calls() noexcept {
#ifdef SYNCPOOL_DEBUG_CHECKS
  return g_checker_heap_calls.load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

uint32_t testing_hooks::arena_allocations(pool_resource& r) noexcept { return r.impl().arena_.allocations(); }

std::size_t testing_hooks::arena_bucket_bytes(std::size_t bytes, std::size_t alignment) noexcept {
  return meta_arena::bucket_bytes(bytes, alignment);
}

void testing_hooks::hold_reset_lock(pool_resource& r, bool on) noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (on) {
    r.impl().reset_mu_.lock();
  } else {
    r.impl().reset_mu_.unlock();
  }
}

void testing_hooks::hold_young_lock(pool_resource& r, bool on) noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (on) {
    r.impl().young_.mu.lock();
  } else {
    r.impl().young_.mu.unlock();
  }
}

bool testing_hooks::young_phase_owned(pool_resource& r) noexcept {
  const resource_impl::young_state& y = r.impl().young_;
  return y.owner.load(std::memory_order_relaxed) != nullptr && !y.shared.load(std::memory_order_relaxed);
}

uint64_t testing_hooks::young_revocations() noexcept { return g_young_revocations.load(std::memory_order_relaxed); }
}  // namespace internal

}  // namespace syncpool
