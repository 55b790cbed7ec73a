// syncpool/collect.h
//
// The garbage-collector half of Go's sync.Pool, for C++: without a GC nobody
// ages pooled objects, so syncpool does it when asked.
//
//   syncpool::collect()           one cycle over every live pool and
//                                 pool_resource (Go's poolCleanup)
//   syncpool::collector           RAII: runs collect() on a background thread
//                                 at an interval
//   syncpool::flush_thread_cache() a thread about to go idle hands its private
//                                 cache over, so collect() can reach it
//
// Guarantees:
//   - collect() is thread-safe: call it from any thread while others use the
//     pools. An object cached when a cycle starts survives that cycle (it is
//     moved to the "victim" generation, where get() still finds it) and is
//     destroyed by the next one. So an idle object is freed within two
//     cycles, as in Go since 1.13.
//   - The calling thread counts as idle: its own private caches are aged with
//     everything else.
//
//   - fork() is safe while other threads use pools: syncpool takes its locks
//     before fork() and releases (parent) or resets (child) them after. In
//     the child, the caches of threads that do not exist there are handed to
//     their pools, as if those threads had exited, and aged by collect().
//   - Not supported: fork() from inside syncpool's callbacks (a pooled
//     object's destructor, a factory, an upstream resource).
//
// NOT guaranteed:
//   - Another live thread's *private* cache (a few objects per pool, see
//     pool.h and pool_resource.h) is aged only when that thread next uses the
//     pool, calls flush_thread_cache() or collect(), or exits. This is the
//     price of a get/put hit that takes no lock and no atomic
//     read-modify-write.
//
// Example:
//
//   // Age every pool twice a second for as long as `gc` lives.
//   syncpool::collector gc(std::chrono::milliseconds(500));

#ifndef SYNCPOOL_COLLECT_H_
#define SYNCPOOL_COLLECT_H_

#include "syncpool/internal/config.h"

#include <chrono>
#include <cstdint>
#include <memory>

namespace syncpool {

// One cleanup cycle over every live pool<T> and pool_resource: destroys the
// victim generation and makes the current contents the new victim.
void collect() noexcept;

// Moves the calling thread's private caches (of every pool) to where other
// threads can steal them and collect() can age them. Cheap; call it before a
// thread goes idle for long.
void flush_thread_cache() noexcept;

// syncpool::collector
//
// Runs syncpool::collect() every `interval` on a thread of its own until it
// is destroyed. Destruction stops the thread promptly (it does not wait for
// the interval to elapse). Not copyable or movable.
//
// After fork(), the child has no collector thread (fork() copies only the
// calling thread): a collector inherited by a child collects nothing there,
// and destroying it in the child does not wait for the parent's thread.
class collector {
 public:
  explicit collector(std::chrono::nanoseconds interval);
  ~collector();
  collector(const collector&) = delete;
  collector& operator=(const collector&) = delete;

  // Cycles run so far.
  uint64_t cycles() const noexcept;

 private:
  struct state;  // shared with the thread; left alone in a fork() child
  const long owner_pid_;  // the process whose thread runs the cycles
  std::unique_ptr<state> state_;
};

}  // namespace syncpool

#endif  // SYNCPOOL_COLLECT_H_
