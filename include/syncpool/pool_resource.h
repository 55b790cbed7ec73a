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
//   - Each class is an instance of the pool engine (see pool.h): a thread's
//     own cache serves allocate and deallocate with no lock and no atomic
//     read-modify-write; a block freed by another thread than the one that
//     allocated it just joins the freeing thread's cache; idle threads'
//     spilled blocks are stolen by others.
//   - Classes up to 4 KiB carve their blocks from 64 KiB chunks obtained from
//     upstream (one upstream call per chunk); larger classes take one upstream
//     block each. Larger requests, and alignments no class can serve, go
//     straight to upstream (and are still returned by release()).
//   - syncpool::collect() ages the resource like a pool: cached blocks that
//     stay unused for two cycles go back to their chunk, and a chunk whose
//     blocks are all back goes back upstream. After two cycles with nothing
//     allocated, the resource holds no upstream memory, provided every thread
//     that used it has exited or has been idle since it called
//     syncpool::flush_thread_cache() (the thread calling collect() counts).
//
// Guarantees:
//   - Thread-safe, like synchronized_pool_resource: any thread may allocate,
//     and any thread may deallocate what any thread allocated.
//   - Calls to the upstream resource are serialized (one lock per resource,
//     taken only when a chunk or a large block comes or goes, never on the
//     hot path), so an upstream that is not thread-safe is fine:
//     monotonic_buffer_resource, unsynchronized_pool_resource.
//   - The upstream may call back into syncpool from its allocate() (e.g.
//     syncpool::collect() and retry when it runs short); what that gives
//     back reaches it re-entrantly, on the same thread.
//   - Every power-of-two alignment is honoured for every size.
//   - Requests above `largest_required_pool_block`, and alignments no class
//     serves, go to upstream unchanged (same bytes, same alignment); the
//     resource throws nothing of its own for them, only what upstream throws.
//   - Bad input gets an exception: a non-power-of-two alignment throws
//     std::invalid_argument; an upstream that throws leaves the resource
//     consistent. deallocate(nullptr, n) does nothing, as free(nullptr).
//   - collect() (this one and syncpool::collect()) may run concurrently with
//     everything, release() and destruction included.
//   - fork() is safe while other threads use the resource: the child can
//     use it (see collect.h for what the child inherits).
//   - release() (and the destructor) gives upstream back everything obtained
//     from it, including blocks still allocated.
//
// NOT guaranteed:
//   - An idle live thread that has not flushed keeps, per size class it used,
//     up to 32 KiB of blocks in its private cache (at most 128 blocks; two
//     blocks in the classes above 16 KiB), and each such block keeps its
//     chunk (64 KiB) with upstream. Call syncpool::flush_thread_cache()
//     before parking a thread for long.
//   - release() and destruction must not race with allocate/deallocate on
//     other threads (as for the standard resources).
//   - fork() while another thread is inside an upstream that calls back into
//     syncpool, with resources nested over one another, can deadlock (the
//     callback takes locks in an order fork() cannot follow).
//   - No debug checks in normal builds: deallocating with the wrong size or
//     twice is undefined behaviour, as for every memory_resource. Build with
//     --config=debug_checks to have it caught (see README).
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
struct size_class;
}  // namespace internal

// syncpool::pool_resource_stats
//
// A snapshot of where a pool_resource's allocations were served from and
// what it holds, in the vocabulary of pool_stats (pool_stats.h): each size
// class is a pool of blocks. Counters of running threads may move while it
// is taken.
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
  // Sums of the classes and the direct requests; a direct request counts as
  // a miss, so local_hits + stolen + victim_hits + misses = allocate() calls.
  counts total;
  uint64_t direct_allocations = 0;   // requests sent straight to upstream
  std::size_t direct_bytes = 0;      // of which still held
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

  // One collect cycle over this resource only (syncpool::collect() covers
  // every pool and resource).
  void collect();

  pool_resource_stats stats() const;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;

 private:
  std::pmr::memory_resource* const upstream_;
  std::pmr::pool_options options_;
  std::unique_ptr<internal::resource_impl> impl_;
  // impl_'s class array and largest class, held here too to save a load on
  // every call.
  internal::size_class* classes_ = nullptr;
  std::size_t largest_ = 0;
};

}  // namespace syncpool

#endif  // SYNCPOOL_POOL_RESOURCE_H_
