// syncpool/internal/mutex.h
//
// std::mutex with Clang thread-safety annotations, so that -Wthread-safety
// checks every ABSL_GUARDED_BY in syncpool. (libstdc++'s std::mutex carries
// none; absl::Mutex would, but Debian's prebuilt Abseil is not built with
// ThreadSanitizer, so TSan could not see its synchronization.)

#ifndef SYNCPOOL_INTERNAL_MUTEX_H_
#define SYNCPOOL_INTERNAL_MUTEX_H_

#include <atomic>
#include <mutex>
#include <new>
#include <thread>

#include "absl/base/thread_annotations.h"

#if defined(__SANITIZE_THREAD__)
#define SYNCPOOL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SYNCPOOL_TSAN 1
#endif
#endif

#ifdef SYNCPOOL_TSAN
#include <pthread.h>
#endif

namespace syncpool {
namespace internal {

// libstdc++'s std::mutex and std::recursive_mutex end without telling the
// pthread layer, so ThreadSanitizer took a new lock at the address of a dead
// one (a resource on the stack of a test that had returned, say) for the
// same lock, and joined their lock orders into false deadlock cycles. Under
// TSan, the locks below say when they end.
#ifdef SYNCPOOL_TSAN
#define SYNCPOOL_TSAN_LOCK_LIFETIME(type) \
  ~type() { pthread_mutex_destroy(mu_.native_handle()); }
#define SYNCPOOL_TSAN_FORGET_HOLDER() pthread_mutex_unlock(mu_.native_handle())
#else
#define SYNCPOOL_TSAN_LOCK_LIFETIME(type)
#define SYNCPOOL_TSAN_FORGET_HOLDER()
#endif

// In a child after fork(), for a std::mutex that the forking thread locked
// (fork.h): the lock as new. Under TSan, unlocked first, so that TSan does
// not take it for held by this thread forever and report its destruction.
inline void renew_after_fork(std::mutex& mu) noexcept {
#ifdef SYNCPOOL_TSAN
  pthread_mutex_unlock(mu.native_handle());
#endif
  new (&mu) std::mutex();
}

class ABSL_LOCKABLE mutex {
 public:
  SYNCPOOL_TSAN_LOCK_LIFETIME(mutex)
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // In a child after fork(), where the forking thread took it.
  void reset_after_fork() ABSL_NO_THREAD_SAFETY_ANALYSIS { renew_after_fork(mu_); }

 private:
  std::mutex mu_;
};

// The lock around a resource's upstream calls. Recursive, because an
// upstream may call back into syncpool (collect() when it runs short), and
// what that gives back goes to the same upstream, on the same thread.
class ABSL_LOCKABLE recursive_mutex {
 public:
  SYNCPOOL_TSAN_LOCK_LIFETIME(recursive_mutex)
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // (A recursive lock's unlock fails in the child: its owner is a thread id
  // of the parent. Under TSan it is still called, for TSan's records.)
  void reset_after_fork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    SYNCPOOL_TSAN_FORGET_HOLDER();
    new (&mu_) std::recursive_mutex();
  }

 private:
  std::recursive_mutex mu_;
};

// A lock for the per-thread shared queues: held for a few dozen
// instructions, almost never contended (its owner, now and then a thief or a
// collector). Lock + unlock is one exchange and one store, about a third of
// a pthread mutex's cost. Spins, then yields: never hold it for long.
class ABSL_LOCKABLE spin_mutex {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    for (int spins = 0; locked_.exchange(true, std::memory_order_acquire);) {
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins > 64) std::this_thread::yield();
      }
    }
  }
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    return !locked_.load(std::memory_order_relaxed) && !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() ABSL_UNLOCK_FUNCTION() { locked_.store(false, std::memory_order_release); }
  void reset_after_fork() ABSL_NO_THREAD_SAFETY_ANALYSIS { locked_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> locked_{false};
};

template <class Mutex>
class ABSL_SCOPED_LOCKABLE basic_lock_guard {
 public:
  explicit basic_lock_guard(Mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.lock(); }
  ~basic_lock_guard() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  basic_lock_guard(const basic_lock_guard&) = delete;
  basic_lock_guard& operator=(const basic_lock_guard&) = delete;

 private:
  Mutex& mu_;
};

using lock_guard = basic_lock_guard<mutex>;
using recursive_lock_guard = basic_lock_guard<recursive_mutex>;
using spin_lock_guard = basic_lock_guard<spin_mutex>;

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_INTERNAL_MUTEX_H_
