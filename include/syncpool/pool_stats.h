// syncpool/pool_stats.h
//
// syncpool::pool_stats: the one set of counters that every face of syncpool
// reports, so that a pool<T> and each size class of a pool_resource are read
// the same way. Every get() or allocate() served by a pool is counted in
// exactly one of the four sources below:
//
//   local_hits   the calling thread's own caches (no lock taken)
//   stolen       another thread's cache, or one left by an exited thread
//   victim_hits  the victim generation (objects a collect() cycle aged once)
//   misses       nothing cached: pool<T> ran its factory (or returned
//                nullptr); pool_resource made a new block (carved from a
//                chunk it holds, or asked upstream for memory)
//
// and `cached` is how many objects (or free blocks) the pool holds now.
// pool_resource_stats (pool_resource.h) adds bytes to the same names.
//
// Guarantees: once the threads that used a pool are done with it (joined,
// or otherwise synchronized with the reader), local_hits + stolen +
// victim_hits + misses is the number of get()/allocate() calls it served.
//
// NOT guaranteed: a consistent snapshot while other threads run. Each
// counter is read once, and other threads' counters may move meanwhile.
//
// Example:
//
//   syncpool::pool_stats s = buffers.stats();
//   double reuse = double(s.local_hits + s.stolen + s.victim_hits) /
//                  double(s.local_hits + s.stolen + s.victim_hits + s.misses);

#ifndef SYNCPOOL_POOL_STATS_H_
#define SYNCPOOL_POOL_STATS_H_

#include "syncpool/internal/config.h"

#include <cstdint>

namespace syncpool {

// syncpool::pool_stats
//
// Where the objects a pool handed out came from, and how many it holds.
struct pool_stats {
  uint64_t local_hits = 0;   // the calling thread's own caches
  uint64_t stolen = 0;       // another thread's cache (or an exited one's)
  uint64_t victim_hits = 0;  // the victim generation
  uint64_t misses = 0;       // nothing cached: a new object or block was made
  uint64_t cached = 0;       // objects (blocks) held right now, all tiers
  uint64_t thread_caches = 0;  // per-thread caches alive (freed after a cycle unused)
  // True where a collect() cycle reaches idle threads' caches (Linux with
  // membarrier()); false where it cannot (seccomp refuses membarrier):
  // there, an idle live thread keeps its cache until it calls again.
  bool idle_threads_reachable = true;
};

}  // namespace syncpool

#endif  // SYNCPOOL_POOL_STATS_H_
