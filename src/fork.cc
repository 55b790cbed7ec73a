#include "fork.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>

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
    for (fork_participant* list : h.lists) {
      for (fork_participant* p = list; p != nullptr; p = p->next_) p->lock_for_fork();
    }
  }

  static void parent() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.lists[r]; p != nullptr; p = p->next_) p->unlock_after_fork();
    }
    h.mu.unlock();
  }

  static void child() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.lists[r]; p != nullptr; p = p->next_) p->reset_after_fork();
    }
    new (&h.mu) std::mutex();
  }

  std::mutex mu;
  // One list per rank, newest first.
  fork_participant* lists[fork_participant::kRanks] = {};
};

void fork_participant::enlist() noexcept {
  fork_handlers& h = fork_handlers::get();
  std::lock_guard<std::mutex> lock(h.mu);
  if (enlisted_) return;
  fork_participant*& head = h.lists[static_cast<int>(rank_)];
  prev_ = nullptr;
  next_ = head;
  if (head != nullptr) head->prev_ = this;
  head = this;
  enlisted_ = true;
}

void fork_participant::delist() noexcept {
  fork_handlers& h = fork_handlers::get();
  std::lock_guard<std::mutex> lock(h.mu);
  if (!enlisted_) return;
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    h.lists[static_cast<int>(rank_)] = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
  enlisted_ = false;
}

}  // namespace internal
}  // namespace syncpool
