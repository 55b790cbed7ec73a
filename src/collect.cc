#include "syncpool/collect.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "syncpool/internal/engine.h"

namespace syncpool {

void collect() noexcept { internal::collect_all(); }

void flush_thread_cache() noexcept { internal::flush_thread_cache_all(); }

// The longest wait: libstdc++'s wait_for adds the interval to now() and
// overflows near nanoseconds::max() (every wait then returned at once, and
// the collector ran back to back). A century is as good as never.
constexpr std::chrono::nanoseconds kLongestInterval = std::chrono::hours(24 * 365 * 100);

struct collector::state {
  explicit state(std::chrono::nanoseconds i) : interval(std::min(i, kLongestInterval)) {}

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!wake.wait_for(lock, interval, [this] { return stop; })) {
      lock.unlock();
      collect();
      cycles.fetch_add(1, std::memory_order_relaxed);
      lock.lock();
    }
  }

  const std::chrono::nanoseconds interval;
  std::mutex mu;
  std::condition_variable wake;
  bool stop = false;
  std::atomic<uint64_t> cycles{0};
  std::thread thread;
};

collector::collector(std::chrono::nanoseconds interval) : owner_pid_(getpid()) {
  if (interval.count() <= 0) {
    throw std::invalid_argument("syncpool::collector: interval must be positive");
  }
  state_ = std::make_unique<state>(interval);
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

collector::~collector() {
  if (getpid() != owner_pid_) {
    // A fork() child: the thread is the parent's, and its state here is a
    // copy taken at an arbitrary point (the mutex may be held, the condition
    // variable has a waiter that will never wake, the std::thread is
    // joinable). Touching any of it would hang or terminate the child, so
    // the state is left as it is.
    (void)state_.release();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->wake.notify_all();
  state_->thread.join();
}

uint64_t collector::cycles() const noexcept { return state_->cycles.load(std::memory_order_relaxed); }

}  // namespace syncpool
