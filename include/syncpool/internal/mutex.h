// syncpool/internal/mutex.h
//
// std::mutex with Clang thread-safety annotations, so that -Wthread-safety
// checks every ABSL_GUARDED_BY in syncpool. (libstdc++'s std::mutex carries
// none; absl::Mutex would, but Debian's prebuilt Abseil is not built with
// ThreadSanitizer, so TSan could not see its synchronization.)

#ifndef SYNCPOOL_INTERNAL_MUTEX_H_
#define SYNCPOOL_INTERNAL_MUTEX_H_

#include <mutex>

#include "absl/base/thread_annotations.h"

namespace syncpool {
namespace internal {

class ABSL_LOCKABLE mutex {
 public:
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

class ABSL_SCOPED_LOCKABLE lock_guard {
 public:
  explicit lock_guard(mutex& mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_.lock(); }
  ~lock_guard() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  lock_guard(const lock_guard&) = delete;
  lock_guard& operator=(const lock_guard&) = delete;

 private:
  mutex& mu_;
};

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_INTERNAL_MUTEX_H_
