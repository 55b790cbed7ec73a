// syncpool/collect.h
//
// The garbage-collector half of Go's sync.Pool, for C++: without a GC nobody
// ages pooled objects, so syncpool does it when asked.
//
//   syncpool::collect()           one cycle over every live pool and
//                                 pool_resource (Go's poolCleanup)
//   syncpool::collector           RAII: runs collect() on a background thread
//                                 at an interval
//   syncpool::flush_thread_cache() moves the calling thread's private caches
//                                 to the shared depots (rarely needed: see
//                                 below)
//
// Guarantees:
//   - collect() is thread-safe: call it from any thread while others use the
//     pools. An object cached when a cycle starts survives that cycle (it is
//     moved to the "victim" generation, where get() still finds it) and is
//     destroyed by the next one. So an idle object is freed within two
//     cycles, as in Go since 1.13.
//   - Every thread's private caches are aged too, idle and parked threads
//     included, without stopping anyone: a cycle revokes every cache (each
//     owner checks a key on its hit path with plain loads and stores), issues
//     one membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), and then takes the
//     caches of every thread that is not inside a pool call. A thread that was
//     is reached by the next cycle, or ages its own cache on its next call.
//   - collect() costs what is cached: it visits only pools and resources that
//     hold something.
//   - fork() is safe while other threads use pools: syncpool takes its locks
//     before fork() and releases (parent) or resets (child) them after. In
//     the child, the caches of threads that do not exist there are handed to
//     their pools, as if those threads had exited, and aged by collect().
//   - Not supported: fork() from inside syncpool's callbacks (a pooled
//     object's destructor, a factory, an upstream resource), and fork()
//     from another thread while syncpool is being loaded (static
//     initializers, dlopen()): its process-wide state is made then, so that
//     no first use can be interrupted by a fork.
//
// NOT guaranteed:
//   - Where the kernel refuses membarrier() (a seccomp filter; Linux before
//     4.14), another live thread's private cache is aged only when that thread
//     next uses the pool, calls flush_thread_cache() or collect(), or exits.
//     stats().idle_threads_reachable says which holds in this process.
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
// the interval to elapse). Not copyable or movable. An interval that is not
// positive throws std::invalid_argument; one above a century (up to
// nanoseconds::max()) is a century.
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
