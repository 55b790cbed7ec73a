// syncpool/syncpool.h
//
// Everything in //:syncpool (CMake: syncpool::syncpool) in one include:
// pool<T> (pool.h), pool_resource (pool_resource.h), collect() and collector
// (collect.h), pool_stats (pool_stats.h) and the version macros (version.h).
//
// Guarantees: including this is the same as including each of those.
//
// NOT included: syncpool/mimalloc_resource.h. It lives in a separate library
// (//:mimalloc_resource, syncpool::mimalloc_resource) because linking it
// replaces malloc for the whole program; include it where you use it.
//
// Example:
//
//   #include "syncpool/syncpool.h"
//
//   syncpool::pool_resource pool;
//   std::pmr::vector<int> v(&pool);
//   syncpool::collector gc(std::chrono::seconds(1));

#ifndef SYNCPOOL_SYNCPOOL_H_
#define SYNCPOOL_SYNCPOOL_H_

#include "syncpool/internal/config.h"

#include "syncpool/collect.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"
#include "syncpool/pool_stats.h"
#include "syncpool/version.h"

#endif  // SYNCPOOL_SYNCPOOL_H_
