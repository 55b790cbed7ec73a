#include "fork.h"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <type_traits>

#include "syncpool/internal/mutex.h"

namespace syncpool {
namespace internal {

struct fork_handlers {
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

  static fork_handlers& get() noexcept;
  // Registers the handlers with pthread_atfork once. Done while the
  // library loads (below), before main() and its threads: a thread that
  // registered lazily, inside a function-local static's initialization,
  // while another thread forked left the child waiting forever on that
  // static's guard, the registering thread being absent there (a probe
  // forking from 3 threads while 3 allocated hung 3 children in about one
  // run of 10). The call from enlist() only matters to a participant made
  // by another library's static initializer that ran first.
  static void register_once() noexcept {
    if (registered.exchange(true, std::memory_order_acq_rel)) return;
    if (pthread_atfork(&prepare, &parent, &child) != 0) {
      std::fputs("syncpool: pthread_atfork failed; fork() is not safe with syncpool\n", stderr);
    }
  }

  std::mutex mu;
  fork_participant* list = nullptr;  // by decreasing order
  static std::atomic<bool> registered;
};

constinit std::atomic<bool> fork_handlers::registered{false};

namespace {
// Constant-initialized (no guard for a fork to interrupt) and never
// destroyed (std::mutex's destructor is trivial): participants may delist
// during static destruction.
constinit fork_handlers g_fork_handlers;
static_assert(std::is_trivially_destructible_v<fork_handlers>,
              "the handlers must outlive every participant, static ones included");
[[maybe_unused]] const bool g_registered_at_load = (fork_handlers::register_once(), true);
}  // namespace

fork_handlers& fork_handlers::get() noexcept { return g_fork_handlers; }

void fork_participant::enlist(uint64_t order) noexcept {
  fork_handlers::register_once();  // not under h.mu: pthread_atfork waits for a fork in progress
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
