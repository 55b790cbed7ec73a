// fork() safety: every syncpool lock is taken before fork() and released
// (parent) or re-initialised (child) after it, as glibc malloc, jemalloc,
// tcmalloc and mimalloc do for theirs. Without this, a child forked while
// another thread held one of our locks finds it held forever.
//
// The owners of locks enlist a fork_participant. pthread_atfork's prepare
// handler locks every participant in one fixed order:
//
//   1. upstream   each pool_resource's upstream lock, then its reset lock
//                 (release(), idle reset, stats(); an upstream call may read
//                 stats(), and nothing holds the reset lock across one). An
//                 upstream call may enter another resource (a resource whose
//                 upstream is a pool_resource), so a resource's locks come
//                 before its upstream's: it joins after it, with a larger
//                 order (see enlist()).
//   2. engines    the engine registry, then every engine's mutex, then
//                 every per-thread shared-queue lock (the engines' own lock
//                 order).
//   3. blocks     the block sources of every resource (leaf locks: nothing
//                 is called while they are held).
//
// No syncpool code takes a lock of a lower rank while it holds one of a
// higher rank; the only exception is an upstream that calls back into
// syncpool (collect() when short of memory), which runs under its
// resource's upstream lock and may take anything. A fork() racing such a
// callback can deadlock when resources are nested; see pool_resource.h.
//
// Not supported: calling fork() from inside syncpool's callbacks (a pooled
// object's destructor, a factory, an upstream resource).

#ifndef SYNCPOOL_SRC_FORK_H_
#define SYNCPOOL_SRC_FORK_H_

#include <atomic>
#include <cstdint>

namespace syncpool {
namespace internal {

class fork_participant {
 public:
  enum class rank { upstream = 0, engines = 1, blocks = 2 };
  static constexpr int kRanks = 3;

  fork_participant(const fork_participant&) = delete;
  fork_participant& operator=(const fork_participant&) = delete;

  // Joins / leaves the set fork() handles. Call enlist() once the locks
  // exist and delist() before they go away. Participants are visited by
  // decreasing order: the larger of `stamp` (a number that grows with the
  // owner's construction, process-wide: pool_resource passes its engine's
  // construction key) and one more than the order of `before` (an inner
  // resource, upstream of this one, which must have joined already). So an
  // outer resource comes before the inner one it calls into, whether it
  // reaches it directly or through a wrapper (made before it, the inner one
  // has the smaller stamp). Joining twice is harmless.
  //
  // Cheap and scalable (a resource per request joins and leaves once
  // each): participants live in kShards lists, each under its own lock,
  // and a participant joins the list of the thread that first tries; the
  // handlers merge the lists by order.
  void enlist(uint64_t stamp, const fork_participant* before = nullptr) noexcept;
  void delist() noexcept;

 protected:
  fork_participant() noexcept = default;
  ~fork_participant() = default;

 private:
  friend struct fork_handlers;
  // Each runs once per rank, in rank order (prepare) or reverse.
  // Prepare: take every lock of that rank (they are held across fork()).
  virtual void lock_for_fork(rank r) noexcept = 0;
  // Parent: release them.
  virtual void unlock_after_fork(rank r) noexcept = 0;
  // Child: make them usable again. Only the forking thread exists here.
  virtual void reset_after_fork(rank r) noexcept = 0;

  uint64_t order_ = 0;
  bool enlisted_ = false;  // under its home shard's lock
  // The shard of the thread that first tried to join, for good: two
  // threads joining at once meet under one lock (a participant's first
  // joiners race: two first uses of one resource).
  std::atomic<uint32_t> home_{UINT32_MAX};
  fork_participant* prev_ = nullptr;
  fork_participant* next_ = nullptr;
  fork_participant* merged_ = nullptr;  // the handlers' visiting order, during a fork
};

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_SRC_FORK_H_
