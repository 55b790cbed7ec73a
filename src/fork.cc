#include "fork.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <type_traits>

#include "syncpool/internal/mutex.h"

namespace syncpool {
namespace internal {

namespace {
// A thread's shard: given out round-robin at its first enlist (one atomic
// add per thread), so that threads making resources each take their own
// shard's lock, which stays in their CPU's cache.
constexpr uint32_t kShards = 16;
constexpr uint32_t kNoShard = UINT32_MAX;  // fork_participant::home_ before a first try
constinit std::atomic<uint32_t> g_next_shard{0};
thread_local constinit uint32_t t_shard = kNoShard;

uint32_t this_threads_shard() noexcept {
  if (t_shard == kNoShard) t_shard = g_next_shard.fetch_add(1, std::memory_order_relaxed) % kShards;
  return t_shard;
}
}  // namespace

struct fork_handlers {
  // One list of participants, by decreasing order, under its own lock; its
  // own line, so that two threads' shards share nothing.
  struct alignas(64) shard {
    std::mutex mu;
    fork_participant* list = nullptr;
  };

  // Every shard's lock, in index order, is held from prepare() to parent()
  // or child(); prepare() merges the lists into `merged`, which the other
  // two follow as they are (nothing joins or leaves meanwhile).
  static void prepare() {
    fork_handlers& h = get();
    for (shard& s : h.shards) s.mu.lock();
    h.merged = merge(h);
    for (int r = 0; r < fork_participant::kRanks; ++r) {
      for (fork_participant* p = h.merged; p != nullptr; p = p->merged_) {
        p->lock_for_fork(static_cast<fork_participant::rank>(r));
      }
    }
  }

  static void parent() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.merged; p != nullptr; p = p->merged_) {
        p->unlock_after_fork(static_cast<fork_participant::rank>(r));
      }
    }
    for (shard& s : h.shards) s.mu.unlock();
  }

  static void child() {
    fork_handlers& h = get();
    for (int r = fork_participant::kRanks; r-- > 0;) {
      for (fork_participant* p = h.merged; p != nullptr; p = p->merged_) {
        p->reset_after_fork(static_cast<fork_participant::rank>(r));
      }
    }
    for (shard& s : h.shards) renew_after_fork(s.mu);
  }

  // The shards' lists as one, by decreasing order (ties by shard):
  // O(participants x kShards), once per fork.
  static fork_participant* merge(fork_handlers& h) noexcept {
    fork_participant* cursor[kShards];
    for (uint32_t i = 0; i < kShards; ++i) cursor[i] = h.shards[i].list;
    fork_participant* head = nullptr;
    fork_participant** tail = &head;
    for (;;) {
      fork_participant* best = nullptr;
      uint32_t from = 0;
      for (uint32_t i = 0; i < kShards; ++i) {
        if (cursor[i] != nullptr && (best == nullptr || cursor[i]->order_ > best->order_)) {
          best = cursor[i];
          from = i;
        }
      }
      if (best == nullptr) break;
      cursor[from] = best->next_;
      *tail = best;
      tail = &best->merged_;
    }
    *tail = nullptr;
    return head;
  }

  static fork_handlers& get() noexcept;
  // Registers the handlers with pthread_atfork once. Done while the
  // library loads (below), before main() and its threads: a thread that
  // registered lazily, inside a function-local static's initialization,
  // while another thread forked left the child waiting forever on that
  // static's guard, the registering thread being absent there (a probe
  // forking from 3 threads while 3 allocated hung 3 children in about one
  // run of 10). The call from enlist() only matters to a participant made
  // by another library's static initializer that ran first; it only reads
  // once registered (an exchange at every enlist made every thread write
  // the same line).
  static void register_once() noexcept {
    if (registered.load(std::memory_order_acquire)) return;
    if (registered.exchange(true, std::memory_order_acq_rel)) return;
    if (pthread_atfork(&prepare, &parent, &child) != 0) {
      std::fputs("syncpool: pthread_atfork failed; fork() is not safe with syncpool\n", stderr);
    }
  }

  shard shards[kShards];
  fork_participant* merged = nullptr;  // during a fork (prepare() to parent() or child())
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

void fork_participant::enlist(uint64_t stamp, const fork_participant* before) noexcept {
  fork_handlers::register_once();  // not under a shard's lock: pthread_atfork waits for a fork in progress
  uint32_t home = home_.load(std::memory_order_acquire);
  if (home == kNoShard) {
    // Set under no lock, so that a fork() cannot cut it in two: a child
    // finds it set or not, and joins there.
    const uint32_t mine = this_threads_shard();
    home = home_.compare_exchange_strong(home, mine, std::memory_order_acq_rel) ? mine : home;
  }
  fork_handlers::shard& s = fork_handlers::get().shards[home];
  std::lock_guard<std::mutex> lock(s.mu);
  if (enlisted_) return;
  // (`before` joined before this call began, which saw its order.)
  order_ = std::max(stamp, before != nullptr ? before->order_ + 1 : 0);
  // By decreasing order: at the head, for a resource used as soon as it is
  // made (a resource per request); further down for one made long before.
  fork_participant* prev = nullptr;
  fork_participant* next = s.list;
  while (next != nullptr && next->order_ > order_) {
    prev = next;
    next = next->next_;
  }
  prev_ = prev;
  next_ = next;
  if (prev != nullptr) {
    prev->next_ = this;
  } else {
    s.list = this;
  }
  if (next != nullptr) next->prev_ = this;
  enlisted_ = true;
}

void fork_participant::delist() noexcept {
  const uint32_t home = home_.load(std::memory_order_acquire);
  if (home == kNoShard) return;  // never tried to join
  fork_handlers::shard& s = fork_handlers::get().shards[home];
  std::lock_guard<std::mutex> lock(s.mu);
  if (!enlisted_) return;
  if (prev_ != nullptr) {
    prev_->next_ = next_;
  } else {
    s.list = next_;
  }
  if (next_ != nullptr) next_->prev_ = prev_;
  prev_ = next_ = nullptr;
  enlisted_ = false;
}

}  // namespace internal
}  // namespace syncpool
