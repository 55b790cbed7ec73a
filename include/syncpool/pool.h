// syncpool/pool.h
//
// syncpool::pool<T>: Go's sync.Pool for C++. A thread-safe cache of
// temporary objects that are expensive to make (buffers, parsers, scratch
// state), handed out by get() and given back by put(), with a factory for
// when the cache is empty.
//
// How it works (as Go's runtime does it, src/sync/pool.go):
//   - Each thread has a small private cache per pool and a shared queue.
//     put() fills the private cache, then spills a batch to the thread's
//     shared queue. get() takes from the private cache, then its own shared
//     queue, then steals from other threads' shared queues (an idle thread's
//     objects are found), then from the victim generation, and only then
//     calls the factory.
//   - syncpool::collect() (collect.h) is the GC: it destroys the victim
//     generation and turns everything else into the new victim. An object
//     that nobody asks for is destroyed within two cycles.
//     syncpool::collector runs it on a timer.
//   - A thread that exits hands its cached objects to the pool; destroying a
//     pool destroys everything it caches.
//
// Guarantees:
//   - get() and put() are thread-safe. A get() served by the calling
//     thread's private cache takes no lock and no atomic read-modify-write;
//     the rest takes one lock per batch of about 3/4 `local_capacity`
//     objects.
//   - An object is never handed to two callers at once.
//
// NOT guaranteed (as in Go):
//   - An object put() may never come back: it may be destroyed by collect(),
//     handed to another thread, or dropped by `retain_if`. Never rely on the
//     pool for state; get() may return an object in any state a previous
//     user left it in (use `reset` to clean on put).
//   - A live thread that stops using a pool keeps up to `local_capacity`
//     objects in its private cache until it uses the pool again, calls
//     syncpool::flush_thread_cache() or collect(), or exits.
//   - A pool must outlive every get()/put() on it, and must not be destroyed
//     while another thread uses it (as for any object).
//
// Example:
//
//   syncpool::pool<std::string> buffers(
//       [] { return std::make_unique<std::string>(); },
//       {.reset = [](std::string& s) { s.clear(); },
//        .retain_if = [](const std::string& s) { return s.capacity() <= 1 << 20; }});
//
//   void handle(std::string_view request) {
//     auto buf = buffers.borrow();        // put back when `buf` leaves scope
//     buf->append(request);
//     ...
//   }

#ifndef SYNCPOOL_POOL_H_
#define SYNCPOOL_POOL_H_

#include "syncpool/internal/config.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/internal/stats.h"
#include "syncpool/pool_stats.h"

namespace syncpool {

// syncpool::pool_options<T>
//
// Optional behaviour of a pool<T>; every member may be left at its default.
template <class T>
struct pool_options {
  // Runs on every object put() keeps, before it is cached (e.g. clear a
  // buffer). Must not throw.
  std::function<void(T&)> reset;
  // put() destroys objects for which this returns false instead of caching
  // them (Go issue 23199: do not keep a 1 GiB buffer because one request
  // needed it). Must not throw.
  std::function<bool(const T&)> retain_if;
  // Objects each thread keeps in its private, lock-free cache (>= 1).
  uint32_t local_capacity = 8;
};

// syncpool::pool<T>
//
// A pool of T objects; see the top of this file. Not copyable or movable
// (threads hold caches that point at it).
template <class T>
class pool {
 public:
  using value_type = T;
  using factory_type = std::function<std::unique_ptr<T>()>;
  class lease;

  // No factory: get() returns nullptr when nothing is cached.
  pool() : pool(factory_type(), pool_options<T>()) {}

  // `factory` makes an object when nothing is cached; it may return nullptr
  // or throw, and get() passes either on.
  template <class F>
    requires std::is_invocable_r_v<std::unique_ptr<T>, F&>
  explicit pool(F factory, pool_options<T> options = {})
      : factory_(std::move(factory)),
        reset_(std::move(options.reset)),
        retain_if_(std::move(options.retain_if)),
        engine_(internal::engine_client{&destroy_objects, nullptr},
                internal::engine_config{options.local_capacity}) {}

  explicit pool(pool_options<T> options) : pool(factory_type(), std::move(options)) {}

  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // Destroys every object the pool caches, in every thread.
  ~pool() = default;

  // A cached object if there is one, else factory() (nullptr without one).
  std::unique_ptr<T> get() {
    if (void* obj = engine_.try_get()) return std::unique_ptr<T>(static_cast<T*>(obj));
    if (factory_) return factory_();
    return nullptr;
  }

  // Gives `obj` to the pool (nullptr is ignored). The pool may keep it for a
  // later get() on any thread, or destroy it. Never throws (unless `reset`
  // or `retain_if` do, which they must not).
  void put(std::unique_ptr<T> obj) noexcept {
    if (obj == nullptr) return;
    if (retain_if_ && !retain_if_(std::as_const(*obj))) return;  // destroyed here
    if (reset_) reset_(*obj);
    engine_.put(obj.release());
  }

  // get(), wrapped so that the object is put() back when the lease ends.
  lease borrow() { return lease(this, get()); }

  pool_stats stats() const { return internal::to_pool_stats(engine_.stats()); }

  uint32_t local_capacity() const noexcept { return engine_.local_capacity(); }

 private:
  static void destroy_objects(void*, void** objects, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) delete static_cast<T*>(objects[i]);
  }

  const factory_type factory_;
  const std::function<void(T&)> reset_;
  const std::function<bool(const T&)> retain_if_;
  // Last: destroyed first, while the members above still exist.
  internal::engine engine_;
};

// syncpool::pool<T>::lease
//
// Owns an object borrowed from a pool and puts it back when destroyed or
// reset. Move-only. Empty when the pool had nothing and no factory.
template <class T>
class pool<T>::lease {
 public:
  lease() = default;
  lease(lease&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), obj_(std::move(other.obj_)) {}
  lease& operator=(lease&& other) noexcept {
    if (this != &other) {
      reset();
      pool_ = std::exchange(other.pool_, nullptr);
      obj_ = std::move(other.obj_);
    }
    return *this;
  }
  ~lease() { reset(); }

  T* get() const noexcept { return obj_.get(); }
  T& operator*() const noexcept { return *obj_; }
  T* operator->() const noexcept { return obj_.get(); }
  explicit operator bool() const noexcept { return obj_ != nullptr; }

  // Puts the object back now; the lease is empty afterwards.
  void reset() noexcept {
    if (pool_ != nullptr && obj_ != nullptr) pool_->put(std::move(obj_));
    obj_.reset();
  }
  // Keeps the object out of the pool: the caller owns it.
  std::unique_ptr<T> release() noexcept { return std::move(obj_); }

 private:
  friend class pool<T>;
  lease(pool<T>* p, std::unique_ptr<T> obj) : pool_(p), obj_(std::move(obj)) {}

  pool<T>* pool_ = nullptr;
  std::unique_ptr<T> obj_;
};

}  // namespace syncpool

#endif  // SYNCPOOL_POOL_H_
