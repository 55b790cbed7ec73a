#include "fork.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>

#include "syncpool/internal/mutex.h"

namespace syncpool {
namespace internal {

struct fork_handlers {
  // Never destroyed: participants may delist during static destruction.
  static fork_handlers& get() {
    static fork_handlers* h = [] {
      auto* handlers = new fork_handlers;
      if (pthread_atfork(&prepare, &parent, &child) != 0) {
        std::fputs("syncpool: pthread_atfork failed; fork() is not safe with syncpool\n", stderr);
      }
      return handlers;
    }();
    return *h;
  }

  static void prepare() {
    fork_handlers& h = get();
    h.mu.lock();
    for (int r = 0; r < fork_participant::kRanks; ++r) {
      for (fork_participant* p = h.list; p != nullptr; p = p->next_) {
        p->lock_for_fork(static_cast<fork_participant::rank>(r));
      }
    }
  }

  static void parent() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.list; p != nullptr; p = p->next_) {
        p->unlock_after_fork(static_cast<fork_participant::rank>(r));
      }
    }
    h.mu.unlock();
  }

  static void child() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.list; p != nullptr; p = p->next_) {
        p->reset_after_fork(static_cast<fork_participant::rank>(r));
      }
    }
    renew_after_fork(h.mu);
  }

  std::mutex mu;
  fork_participant* list = nullptr;  // by decreasing order
};

void fork_participant::enlist(uint64_t order) noexcept {
  fork_handlers& h = fork_handlers::get();
  std::lock_guard<std::mutex> lock(h.mu);
  if (enlisted_) return;
  order_ = order;
  fork_participant* before = nullptr;
  fork_participant* after = h.list;
  while (after != nullptr && after->order_ > order) {
    before = after;
    after = after->next_;
  }
  prev_ = before;
  next_ = after;
  if (before != nullptr) {
    before->next_ = this;
  } else {
    h.list = this;
  }
  if (after != nullptr) after->prev_ = this;
  enlisted_ = true;
}

void fork_participant::delist() noexcept {
  fork_handlers& h = fork_handlers::get();
  std::lock_guard<std::mutex> lock(h.mu);
  if (!enlisted_) return;
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    h.list = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
  enlisted_ = false;
}

}  // namespace internal
}  // namespace syncpool
