#include "syncpool/collect.h"

#include <stdexcept>

#include "syncpool/internal/engine.h"

namespace syncpool {

void collect() noexcept { internal::collect_all(); }

void flush_thread_cache() noexcept { internal::flush_thread_cache_all(); }

collector::collector(std::chrono::nanoseconds interval) : interval_(interval) {
  if (interval.count() <= 0) {
    throw std::invalid_argument("syncpool::collector: interval must be positive");
  }
  thread_ = std::thread([this] { run(); });
}

collector::~collector() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

uint64_t collector::cycles() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cycles_;
}

void collector::run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!wake_.wait_for(lock, interval_, [this] { return stop_; })) {
    lock.unlock();
    collect();
    lock.lock();
    ++cycles_;
  }
}

}  // namespace syncpool
