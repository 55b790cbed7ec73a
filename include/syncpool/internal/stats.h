// syncpool/internal/stats.h
//
// The engine's counters in the public vocabulary (syncpool/pool_stats.h):
// the one place where the two meet, for pool<T> and pool_resource alike.

#ifndef SYNCPOOL_INTERNAL_STATS_H_
#define SYNCPOOL_INTERNAL_STATS_H_

#include "syncpool/internal/engine.h"
#include "syncpool/pool_stats.h"

namespace syncpool {
namespace internal {

inline pool_stats to_pool_stats(const engine_stats& e) noexcept {
  return pool_stats{e.local_hits, e.stolen,        e.victim_hits,
                    e.misses,     e.cached,        e.thread_caches,
                    e.reaches_idle_threads};
}

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_INTERNAL_STATS_H_
