// syncpool/pool.h
//
// syncpool::pool<T>: Go's sync.Pool for C++. A thread-safe cache of
// temporary objects that are expensive to make (buffers, parsers, scratch
// state), handed out by get() and given back by put(), with a factory for
// when the cache is empty.
//
// How it works (as Go's runtime does it, src/sync/pool.go):
//   - Each thread has a private cache per pool (up to `local_capacity`
//     objects). put() fills it, then spills a batch into the pool's shared
//     depot. get() takes from the private cache, then the depot (batches
//     any thread spilled: its own first in time, others' stolen), then the
//     victim generation, and only then calls the factory.
//   - syncpool::collect() (collect.h) is the GC: it destroys the victim
//     generation and turns everything else into the new victim, the private
//     caches of idle threads included (taken without stopping their owners:
//     see collect.h). An object that nobody asks for is destroyed within two
//     cycles. syncpool::collector runs it on a timer.
//   - A thread that exits hands its cached objects to the pool; destroying a
//     pool destroys everything it caches.
//
// What T must be:
//   - A complete object type: not a reference, not void, not an array (pool
//     a struct or a std::array instead), not a function type, not const or
//     volatile (objects are handed out to be changed and reset). pool<T>
//     rejects the others with a static_assert that names the rule broken.
//   - Destroyable by the pool's Deleter (default: `delete p`) on any thread,
//     without throwing: collect(), thread exit and ~pool destroy cached
//     objects wherever they run. A pool<Base> that holds Derived objects
//     needs a virtual destructor, as std::unique_ptr<Base> does.
//   - Nothing else. The pool never constructs, copies, moves or compares a
//     T; it keeps pointers. The factory makes the objects.
// Deleter must be an empty (stateless), default-constructible function
// object callable with a T*: the pool destroys cached objects with a
// Deleter{} of its own, so a std::unique_ptr<T, Deleter> given to put()
// loses nothing when its deleter is dropped.
//
// Guarantees:
//   - get() and put() are thread-safe. A get() served by the calling
//     thread's private cache takes no lock and no atomic read-modify-write;
//     the rest takes one lock per batch of about 3/4 `local_capacity`
//     objects.
//   - An object is never handed to two callers at once.
//   - Bad options throw std::invalid_argument from the constructor
//     (`local_capacity` outside 1..pool_options<T>::max_local_capacity).
//
// NOT guaranteed (as in Go):
//   - An object put() may never come back: it may be destroyed by collect(),
//     handed to another thread, or dropped by `retain_if`. Never rely on the
//     pool for state; get() may return an object in any state a previous
//     user left it in (use `reset` to clean on put).
//   - Where membarrier() is unavailable (seccomp), a live thread that stops
//     using a pool keeps up to `local_capacity` objects in its private cache
//     until it uses the pool again, calls syncpool::flush_thread_cache() or
//     collect(), or exits. stats().idle_threads_reachable says which holds.
//   - A pool must outlive every get()/put() on it, and must not be destroyed
//     while another thread uses it (as for any object).
//   - The factory is not serialized: threads that miss at the same time run
//     it at the same time.
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

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/base/attributes.h"
#include "syncpool/collect.h"
#include "syncpool/internal/engine.h"
#include "syncpool/internal/stats.h"
#include "syncpool/pool_stats.h"

namespace syncpool {

namespace internal {

// Each thread's private cache is an array of this many pointers at most,
// allocated on the thread's first use of a pool: the bound keeps one pool
// from pinning megabytes per thread, and a typo from asking for gigabytes.
inline constexpr uint32_t kMaxLocalCapacity = 4096;

inline uint32_t checked_local_capacity(uint32_t n) {
  if (n == 0 || n > kMaxLocalCapacity) {
    throw std::invalid_argument("syncpool::pool: pool_options::local_capacity is " +
                                std::to_string(n) + "; it must be between 1 and " +
                                std::to_string(kMaxLocalCapacity));
  }
  return n;
}

template <class F>
inline constexpr bool is_std_function = false;
template <class R, class... Args>
inline constexpr bool is_std_function<std::function<R(Args...)>> = true;

// A move-only, type-erased `Ptr()` callable: what C++23's
// std::move_only_function would be, for the one signature a pool needs, so
// that a factory may own a unique_ptr. Called only when the cache is empty,
// so one indirect call costs nothing that matters.
template <class Ptr>
class pool_factory {
 public:
  pool_factory() = default;

  template <class F>
  explicit pool_factory(F f) {
    // A null function pointer or an empty std::function means "no factory",
    // as it did when the pool stored a std::function.
    if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F> || is_std_function<F>) {
      if (!static_cast<bool>(f)) return;
    }
    impl_ = std::make_unique<model<F>>(std::move(f));
  }

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  Ptr operator()() const { return impl_->make(); }

 private:
  struct base {
    virtual ~base() = default;
    virtual Ptr make() = 0;
  };
  template <class F>
  struct model final : base {
    explicit model(F f) : fn(std::move(f)) {}
    Ptr make() override { return std::invoke(fn); }
    F fn;
  };

  std::unique_ptr<base> impl_;
};

// Checked only once T itself passed: naming Deleter's traits for a T such
// as `int&` would fail inside the standard library instead of here.
template <class T, class Deleter>
consteval bool deleter_fits() {
  if constexpr (!std::is_object_v<T> || std::is_array_v<T>) {
    return true;  // T's own static_assert has spoken
  } else {
    return std::is_empty_v<Deleter> && std::is_default_constructible_v<Deleter> &&
           std::is_invocable_v<const Deleter&, T*>;
  }
}

}  // namespace internal

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
  // Objects each thread keeps in its private, lock-free cache: 1 to
  // max_local_capacity, else the pool's constructor throws
  // std::invalid_argument. Larger is faster for bursty use and holds more in
  // idle threads.
  uint32_t local_capacity = 8;

  static constexpr uint32_t max_local_capacity = internal::kMaxLocalCapacity;
};

// syncpool::pool<T, Deleter>
//
// A pool of T objects; see the top of this file. Not copyable or movable
// (threads hold caches that point at it).
template <class T, class Deleter = std::default_delete<T>>
class pool {
  static_assert(!std::is_reference_v<T>,
                "syncpool::pool<T>: T must not be a reference type; pool the object type "
                "it refers to");
  static_assert(!std::is_void_v<T>,
                "syncpool::pool<T>: T must not be void; a pool deletes its objects through "
                "std::unique_ptr<T>, which needs a complete object type");
  static_assert(!std::is_array_v<T>,
                "syncpool::pool<T>: T must not be an array type (std::unique_ptr<T[]> is not "
                "supported); pool a struct or a std::array that holds the elements");
  static_assert(std::is_object_v<T> || std::is_reference_v<T> || std::is_void_v<T>,
                "syncpool::pool<T>: T must be an object type, not a function type");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                "syncpool::pool<T>: T must not be const or volatile; pooled objects are handed "
                "out to be changed and reset");
  static_assert(internal::deleter_fits<T, Deleter>(),
                "syncpool::pool<T, Deleter>: Deleter must be an empty (stateless), "
                "default-constructible function object callable with a T*");

 public:
  using value_type = T;
  using deleter_type = Deleter;
  // What get() returns and put() takes.
  using pointer = std::unique_ptr<T, Deleter>;
  class lease;

  // No factory: get() returns nullptr when nothing is cached.
  pool() : pool(pool_options<T>()) {}

  explicit pool(pool_options<T> options)
      : pool(internal::pool_factory<pointer>(), std::move(options), construct_tag{}) {}

  // `factory` makes an object when nothing is cached; it may return nullptr
  // or throw, and get() passes either on. It may be move-only (own a
  // unique_ptr, say); it may run on several threads at once.
  template <class F>
    requires std::is_invocable_r_v<pointer, std::decay_t<F>&> &&
             std::move_constructible<std::decay_t<F>>
  explicit pool(F&& factory, pool_options<T> options = {})
      : pool(internal::pool_factory<pointer>(std::decay_t<F>(std::forward<F>(factory))),
             std::move(options), construct_tag{}) {}

  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // Destroys every object the pool caches, in every thread.
  ~pool() = default;

  // A cached object if there is one, else factory() (nullptr without one).
  // Inlined into the caller: a hit then needs no call frame, and the
  // returned pointer stays in a register.
  ABSL_ATTRIBUTE_ALWAYS_INLINE pointer get() {
    void* obj = engine_.template try_get_fast<true>(0);
    if (ABSL_PREDICT_FALSE(obj == nullptr)) obj = get_miss();
    return pointer(static_cast<T*>(obj));
  }

  // Gives `obj` to the pool (nullptr is ignored). The pool may keep it for a
  // later get() on any thread, or destroy it. Never throws (unless `reset`
  // or `retain_if` do, which they must not).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void put(pointer obj) noexcept {
    if (ABSL_PREDICT_FALSE(hooks_)) return put_with_hooks(std::move(obj));
    if (obj == nullptr) return;
    engine_.template put<true>(0, obj.release());
  }

  // get(), wrapped so that the object is put() back when the lease ends.
  lease borrow() { return lease(this, get()); }

  pool_stats stats() const { return internal::to_pool_stats(engine_.stats()); }

  uint32_t local_capacity() const noexcept { return local_capacity_; }

 private:
  struct construct_tag {};

  // Out of line, so that a hit in get() saves no registers for the factory.
  // Returns a raw pointer, not `pointer`: a unique_ptr returned through
  // memory would make the caller keep its own in memory on the hit path too.
  ABSL_ATTRIBUTE_NOINLINE T* get_miss() {
    if (void* obj = engine_.get_slow(0)) return static_cast<T*>(obj);
    if (factory_) return factory_().release();
    return nullptr;
  }

  // Out of line too: put() without hooks calls nothing before the engine.
  ABSL_ATTRIBUTE_NOINLINE void put_with_hooks(pointer obj) noexcept {
    if (obj == nullptr) return;
    if (retain_if_ && !retain_if_(std::as_const(*obj))) return;  // destroyed here
    if (reset_) reset_(*obj);
    engine_.template put<true>(0, obj.release());
  }

  pool(internal::pool_factory<pointer> factory, pool_options<T> options, construct_tag)
      : factory_(std::move(factory)),
        reset_(std::move(options.reset)),
        retain_if_(std::move(options.retain_if)),
        local_capacity_(internal::checked_local_capacity(options.local_capacity)),
        hooks_(static_cast<bool>(reset_) || static_cast<bool>(retain_if_)),
        engine_(&kClient, this, internal::engine_config{1, local_capacity_}) {}

  // The engine's view of this face: one class of T objects, each weighing
  // one against a thread's budget of local_capacity.
  static void destroy_objects(void*, uint32_t, void** objects, size_t n) noexcept {
    for (size_t i = 0; i < n; ++i) Deleter()(static_cast<T*>(objects[i]));
  }
  static internal::class_shared* shared_of(void* self, uint32_t) noexcept {
    return &static_cast<pool*>(self)->shared_;
  }
  static uint32_t capacity_of(const void* self, uint32_t, uint64_t) noexcept {
    return static_cast<const pool*>(self)->local_capacity_;
  }
  static uint32_t batch_of(const void* self, uint32_t, uint64_t) noexcept {
    // A spill moves three quarters of the slots: fewer trips to the depot
    // than halves, and room left on both sides against ping-pong.
    const uint32_t cap = static_cast<const pool*>(self)->local_capacity_;
    return cap - cap / 4 == 0 ? 1 : cap - cap / 4;
  }
  static uint64_t weight_of(const void*, uint32_t) noexcept { return 1; }
  static uint32_t classes_in_use(const void*, uint32_t* out) noexcept {
    out[0] = 0;
    return 1;
  }
  static void* meta_alloc(void*, size_t bytes, size_t alignment) noexcept {
    return ::operator new(bytes, std::align_val_t(alignment), std::nothrow);
  }
  static void meta_free(void*, void* p, size_t, size_t alignment) noexcept {
    ::operator delete(p, std::align_val_t(alignment));
  }
  // Objects are destroyed anywhere but inside a pool_resource's locked
  // upstream call (a collect() there): their destructors may free into a
  // resource whose upstream lock another thread holds on its way here.
  static bool may_call_out(const void*) noexcept { return !internal::inside_locked_upstream_call(); }
  static constexpr internal::engine_client kClient = {&destroy_objects, &shared_of, &classes_in_use,
                                                      &capacity_of,     &batch_of,  &weight_of,
                                                      &meta_alloc,      &meta_free, nullptr,
                                                      &may_call_out};

  friend struct internal::testing_hooks;

  const internal::pool_factory<pointer> factory_;
  const std::function<void(T&)> reset_;
  const std::function<bool(const T&)> retain_if_;
  const uint32_t local_capacity_;
  const bool hooks_;  // reset_ or retain_if_ set
  // The depot and victim; outlives the engine, which empties it.
  internal::class_shared shared_;
  // Last: destroyed first, while the members above still exist.
  internal::engine engine_;
};

// syncpool::pool<T, Deleter>::lease
//
// Owns an object borrowed from a pool and puts it back when destroyed or
// reset. Move-only. Empty when the pool had nothing and no factory.
//
// It never turns into a std::unique_ptr or std::shared_ptr by itself (no
// conversion operator), so an object cannot leave the pool unnoticed; say
// so with release():
//
//   std::shared_ptr<T> keep = pool.borrow().release();  // the pool lets go
template <class T, class Deleter>
class pool<T, Deleter>::lease {
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
  // Keeps the object out of the pool: the caller owns it (a pointer
  // converts to std::shared_ptr<T> as any unique_ptr does). The lease is
  // empty afterwards.
  [[nodiscard]] pointer release() noexcept { return std::move(obj_); }

 private:
  friend class pool<T, Deleter>;
  lease(pool* p, pointer obj) : pool_(p), obj_(std::move(obj)) {}

  pool* pool_ = nullptr;
  pointer obj_;
};

}  // namespace syncpool

#endif  // SYNCPOOL_POOL_H_
