// syncpool/pool_resource.h
//
// syncpool::pool_resource: a std::pmr::memory_resource on syncpool's pool
// engine. A drop-in replacement for std::pmr::synchronized_pool_resource
// (same constructors, same members, same meaning) that is several times
// faster and gives idle memory back to its upstream without release().
//
//   syncpool::pool_resource pool;                     // was: std::pmr::synchronized_pool_resource
//   std::pmr::vector<std::pmr::string> names(&pool);  // every pmr container works
//   std::pmr::map<int, std::pmr::string> index(&pool);
//   std::pmr::set_default_resource(&pool);            // or for the whole program
//
// How it works:
//   - Requests up to `largest_required_pool_block` (default 64 KiB) are
//     rounded up to a size class: 8, 10, 12, 16, 20, 24, 28, 32 bytes, then
//     four classes per power of two up to 128 bytes and eight above. For a
//     request of at least 8 bytes, rounding wastes at most 25% of it, and at
//     most 12.5% above 128 bytes. The class is found in O(1).
//   - The resource is one instance of the pool engine (see pool.h): each
//     thread that uses it gets one cache holding every class it used, which
//     serves allocate and deallocate with no lock and no atomic
//     read-modify-write. Blocks beyond a thread's budget go to a per-class
//     depot in batches (one lock per batch), where every thread finds them:
//     a consumer thread's frees flow back to the producer that way.
//   - A resource starts young: its first 256 allocations up to 4 KiB (or
//     64 KiB of them, whichever comes first) are bumped from a few regions
//     taken from upstream (512 bytes, then 4 times as large each, up to
//     what the phase may still bump), as a monotonic_buffer_resource would.
//     The thread that makes the first allocation (the first after a
//     release()) owns the phase and takes no lock (no atomic
//     read-modify-write either) while no other thread touches it; the
//     first other thread that does revokes that, once, with a membarrier()
//     (microseconds: it interrupts every CPU running one of the process's
//     threads), and the phase takes one lock per call from then on. A
//     thread that sees revocations happen (resources handed between
//     threads) takes its next phases without owner mode, exponentially
//     more of them while they go on. A young block that comes back while
//     others are out serves the next young allocation of its class (if it
//     lies in the region bumped from), and the regions go upstream with the
//     last young block. A
//     resource made for one request thus costs a couple of upstream calls
//     and builds no thread cache and no class state at all. A block bumped
//     for another thread than the one before starts a cache line, so that
//     no line holds two threads' bumped blocks (a reused one may share a
//     line with another thread's). Then the size classes take over,
//     through the thread caches.
//   - Classes up to 4 KiB carve their blocks from chunks obtained from
//     upstream; a class's first chunk is small (a few blocks) and each next
//     one twice as large, up to 64 KiB. Larger classes take one upstream block
//     each. Larger requests, and alignments no class serves (above 64 bytes,
//     or above 16 bytes for blocks over 4 KiB), go straight to upstream (and
//     are still returned by release()).
//   - Construction allocates nothing. Every byte the resource uses, its
//     bookkeeping included, comes from upstream (a pool_resource over a
//     monotonic_buffer_resource on a stack buffer never touches the heap),
//     and goes back with release(), the destructor, or idleness (below).
//   - syncpool::collect() ages the resource like a pool: a cycle takes what
//     each idle thread caches (an asymmetric fence: membarrier() on Linux),
//     cached blocks unused for two cycles go back to their chunk, a chunk
//     whose blocks are all back goes back upstream, and a thread cache
//     unused for a cycle is freed. After two cycles with nothing allocated,
//     the resource holds no upstream memory at all, whatever its threads
//     do meanwhile, parked or not.
//
// Guarantees:
//   - Thread-safe, like synchronized_pool_resource: any thread may allocate,
//     and any thread may deallocate what any thread allocated.
//   - Calls to the upstream resource are serialized (one lock per resource,
//     taken only when a chunk, a young region or a large block comes or
//     goes, never on a thread-cache hit), so an upstream that is not thread-safe is fine:
//     monotonic_buffer_resource, unsynchronized_pool_resource. (Calls to
//     new_delete_resource(), thread-safe by the standard, skip the lock.)
//   - The upstream may call back into syncpool from its allocate() (e.g.
//     syncpool::collect() and retry when it runs short); what that gives
//     back reaches it re-entrantly, on the same thread. Such a collect()
//     gives back at once only what the resources whose upstream calls the
//     thread is inside hold (and, but in ASan builds, those over
//     new_delete_resource(), which take no lock); the others, and every
//     pool<T>, age as in any cycle and give back at the next cycle run
//     outside an upstream call (waiting for their upstream locks there
//     could deadlock with a thread on its way from one of them into this
//     one). A flush_thread_cache() there flushes those same resources only,
//     and nothing if the upstream call came from a flush.
//   - Every power-of-two alignment is honoured for every size.
//   - Requests above `largest_required_pool_block`, and alignments no class
//     serves, go to upstream unchanged (same bytes, same alignment); the
//     resource throws nothing of its own for them, only what upstream throws.
//     (So it also does what upstream does wrong: libstdc++ 12's
//     new_delete_resource() rounds a size near SIZE_MAX up to the alignment,
//     wraps to a few bytes and returns a block instead of throwing.)
//   - Bad input gets an exception: a non-power-of-two alignment throws
//     std::invalid_argument; an upstream that throws leaves the resource
//     consistent. A null pointer reaching do_deallocate does nothing, as
//     free(nullptr); but memory_resource::deallocate(nullptr, n) is outside
//     the standard's contract (libstdc++ 12 declares the pointer nonnull, so
//     UBSan reports the call, and where the call is inlined the compiler
//     may drop do_deallocate's null test): do not rely on it.
//   - Each thread caches at most `thread_cache_bytes` (default 4 MiB) of
//     free blocks per resource, all classes together. A thread starts at
//     64 KiB (or thread_cache_bytes, if smaller) and doubles its budget when
//     it keeps spilling full slots or taking back blocks it spilled itself
//     (a few times per class it uses, with few hits in between, or fewer
//     than a few thousand where another thread used the same class's depot
//     just before, and that twice in a row: a single pass through every
//     class is not); each
//     collect() cycle halves it, down to the start. A resource's threads
//     together grow by at most 4 x thread_cache_bytes above their start: at
//     worst, with T threads, T x 64 KiB + 16 MiB per resource by default.
//   - syncpool::collect() may run concurrently with everything, release()
//     and destruction included; this resource's collect() with everything
//     but its destruction (as any member function), release() included.
//   - fork() is safe while other threads use the resource: the child can
//     use it (see collect.h for what the child inherits).
//   - release() (and the destructor) gives upstream back everything obtained
//     from it, including blocks still allocated; threads start afresh.
//
// NOT guaranteed:
//   - Where membarrier() is unavailable (a seccomp filter refuses it), a
//     collector cannot take an idle live thread's cache: that thread keeps
//     up to `thread_cache_bytes` until it calls again, calls
//     syncpool::flush_thread_cache(), or exits. stats() says which holds
//     (idle_threads_reachable).
//   - release() and destruction must not race with allocate/deallocate on
//     other threads (as for the standard resources).
//   - fork() while another thread is inside an upstream that calls back into
//     syncpool, with resources nested over one another, can deadlock (the
//     callback takes locks in an order fork() cannot follow). A
//     pool_resource directly over another is fine; one over a wrapper of
//     another (a logging or counting resource in between) is such a
//     callback the first time it reaches the inner one.
//   - Young regions are not bounded by max_blocks_per_chunk (they hold blocks
//     of every class): a resource given that option has no young phase. (A
//     value at or above options().max_blocks_per_chunk of a default
//     resource never binds, and counts as no bound.)
//   - No debug checks in normal builds: deallocating with the wrong size or
//     twice is undefined behaviour, as for every memory_resource. Build with
//     --config=debug_checks to have it caught (see README). The checks keep
//     a record of every block handed out on the global heap (made at the
//     first allocate, never during construction): with them, "all memory
//     from upstream" holds for the pool's memory, not for the records.
//   - Under ASan, cached blocks are poisoned so that a use after deallocate
//     is reported, except in the classes 10, 12, 20 and 28 bytes, whose
//     blocks share ASan's 8-byte granules with their neighbours.

#ifndef SYNCPOOL_POOL_RESOURCE_H_
#define SYNCPOOL_POOL_RESOURCE_H_

#include "syncpool/internal/config.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <memory_resource>
#include <vector>

#include "syncpool/collect.h"
#include "syncpool/pool_stats.h"

namespace syncpool {

namespace internal {
class resource_impl;
struct testing_hooks;
// sizeof(resource_impl), checked where it is defined; stored inline in
// pool_resource so that constructing one allocates nothing.
inline constexpr std::size_t kResourceImplBytes = 696;
}  // namespace internal

// syncpool::pool_resource_options
//
// std::pmr::pool_options plus syncpool's own: a pool_resource takes either.
struct pool_resource_options : std::pmr::pool_options {
  // The most free blocks one thread keeps for itself per resource, all
  // classes together, in bytes; 0: the default (4 MiB). A thread starts at
  // 64 KiB and grows towards this while it churns (see the top of this
  // file). What is over goes to the shared depot, where every thread finds
  // it.
  std::size_t thread_cache_bytes = 0;
};

// syncpool::pool_resource_stats
//
// A snapshot of where a pool_resource's allocations were served from and
// what it holds, in the vocabulary of pool_stats (pool_stats.h): each size
// class is a pool of blocks. Counters of running threads may move while it
// is taken. A class's counters start again from zero when the resource
// gives its state back (it went idle, or release()); `total` counts over
// the resource's whole life.
struct pool_resource_stats {
  // local_hits, stolen, victim_hits, misses and cached (blocks) as in
  // pool_stats; a miss made a new block, carved from a chunk the class holds
  // or taken from upstream.
  struct counts : pool_stats {
    std::size_t block_size = 0;      // the class size (0 in `total`)
    std::size_t cached_bytes = 0;    // free blocks held in the caches, in bytes
    std::size_t upstream_bytes = 0;  // memory held from upstream
  };
  std::vector<counts> classes;       // one per size class, smallest first
  // Sums of the classes, of the classes the resource gave back (went idle,
  // release()) and of the direct requests; a direct request counts as a
  // miss, so local_hits + stolen + victim_hits + misses = allocate() calls
  // over the resource's life.
  // total.upstream_bytes includes the bookkeeping (also alone below).
  counts total;
  uint64_t direct_allocations = 0;   // requests no class serves, sent straight to upstream
  std::size_t direct_bytes = 0;      // of which still held
  std::size_t bookkeeping_bytes = 0; // thread caches, class state, from upstream
  std::size_t young_bytes = 0;       // regions of the young phase (see above)
};

// syncpool::pool_resource
//
// See the top of this file. Not copyable or movable.
class pool_resource : public std::pmr::memory_resource {
 public:
  pool_resource();
  explicit pool_resource(std::pmr::memory_resource* upstream);
  explicit pool_resource(const std::pmr::pool_options& options);
  pool_resource(const std::pmr::pool_options& options, std::pmr::memory_resource* upstream);
  explicit pool_resource(const pool_resource_options& options);
  pool_resource(const pool_resource_options& options, std::pmr::memory_resource* upstream);
  pool_resource(const pool_resource&) = delete;
  pool_resource& operator=(const pool_resource&) = delete;
  ~pool_resource() override;

  // Gives upstream back all memory obtained from it, including blocks still
  // allocated (which become invalid).
  void release();

  std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

  // The options in effect: zeros replaced by the defaults, the largest block
  // rounded up to its size class.
  std::pmr::pool_options options() const noexcept { return options_; }
  std::size_t thread_cache_bytes() const noexcept { return thread_cache_bytes_; }

  // One collect cycle over this resource only (syncpool::collect() covers
  // every pool and resource).
  void collect();

  pool_resource_stats stats() const;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

 private:
  friend struct internal::testing_hooks;
  friend class internal::resource_impl;  // a resource over this one enlists it for fork()
  internal::resource_impl& impl() noexcept;
  const internal::resource_impl& impl() const noexcept;
  // The fast path's classification, and the out-of-line paths of requests
  // it leaves (see pool_resource.cc).
  bool table_class(std::size_t bytes, std::size_t alignment, uint32_t& index) const noexcept;
  void* allocate_other(std::size_t bytes, std::size_t alignment);
  void deallocate_other(void* p, std::size_t bytes, std::size_t alignment);

  std::pmr::memory_resource* const upstream_;
  std::pmr::pool_options options_;
  std::size_t thread_cache_bytes_ = 0;
  std::size_t largest_ = 0;      // the largest class, for the inline fast path
  std::size_t table_limit_ = 0;  // min(largest_, 4 KiB): the fast path's sizes
  alignas(std::max_align_t) unsigned char impl_[internal::kResourceImplBytes];
};

}  // namespace syncpool

#endif  // SYNCPOOL_POOL_RESOURCE_H_
