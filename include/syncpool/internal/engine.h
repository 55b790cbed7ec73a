// syncpool/internal/engine.h
//
// The one pool engine behind every face of syncpool (`pool<T>`, each size
// class of `pool_resource`). It caches type-erased `void*` objects in three
// tiers, as Go's sync.Pool does:
//
//   1. per (thread, engine) *slots*: a small array only the owning thread
//      touches. A hit costs a TLS load, two compares and a plain load/store:
//      no lock and no atomic read-modify-write.
//   2. per (thread, engine) *shared* queue of batches, under a spin lock that is
//      taken once per batch: the owner spills/refills here, other threads
//      steal from it.
//   3. the engine's *victim* generation. `age()` (what `syncpool::collect()`
//      runs on every engine) destroys the old victim and turns everything in
//      tier 2 (and the orphans of exited threads) into the new victim.
//
// The slots are owner-only, so a collector cannot take them. Instead each
// engine carries an epoch; the owner compares it on every call (a relaxed
// load) and, on a change, ages its own slots: one missed cycle sends them to
// the victim, two or more destroy them. A thread that never calls again keeps
// at most `local_capacity` objects per engine until it exits, calls
// `flush_thread_cache()` or calls `collect()` itself.
//
// Users never see this header's types; they are an implementation detail of
// pool.h and pool_resource.h and may change at any time.

#ifndef SYNCPOOL_INTERNAL_ENGINE_H_
#define SYNCPOOL_INTERNAL_ENGINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "syncpool/internal/mutex.h"

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"

namespace syncpool {
namespace internal {

class engine;

// A counter written by one thread and read by any: relaxed load + store, so
// the hot path pays a plain `add` to memory, never a locked instruction.
class owner_counter {
 public:
  void bump() noexcept { v_.store(v_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void add(uint64_t n) noexcept { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Where the objects handed out by an engine came from, and how many of them
// it holds now. A snapshot: counters of running threads may move while it is
// taken.
struct engine_stats {
  uint64_t local_hits = 0;   // this thread's slots or shared queue
  uint64_t stolen = 0;       // another thread's shared queue, or orphans
  uint64_t victim_hits = 0;  // the victim generation
  uint64_t misses = 0;       // nothing cached: the face made a new object
  uint64_t cached = 0;       // objects held in every tier right now

  engine_stats& operator+=(const engine_stats& o) noexcept {
    local_hits += o.local_hits;
    stolen += o.stolen;
    victim_hits += o.victim_hits;
    misses += o.misses;
    cached += o.cached;
    return *this;
  }
};

// A batch of cached objects: the unit in which tiers 2 and 3 move objects, so
// that one lock acquisition moves many of them.
struct batch {
  batch* next;
  uint32_t count;
  uint32_t capacity;
  void* items[1];  // really `capacity` items: allocated with make_batch()
};

// A LIFO list of batches with a running object count. Moving a whole list is
// O(1). Not thread-safe: its owner's lock guards it.
class batch_list {
 public:
  batch_list() = default;
  batch_list(const batch_list&) = delete;
  batch_list& operator=(const batch_list&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  uint64_t size() const noexcept { return size_; }
  void push(batch* b) noexcept;
  batch* pop() noexcept;
  // Appends all of `other` (leaving it empty).
  void splice(batch_list& other) noexcept;
  // Takes one object off the newest batch; nullptr when empty.
  void* pop_one() noexcept;
  // Detaches the whole chain.
  batch* release() noexcept;

 private:
  batch* head_ = nullptr;
  batch* tail_ = nullptr;
  uint64_t size_ = 0;
};

// One (thread, engine) cache. Allocated by the thread on its first call into
// an engine; listed both in the thread's table and in the engine's registry.
struct cache_record {
  // An epoch no engine ever has: a record whose engine died carries it, so
  // that it never passes the fast path's check again, whatever engine takes
  // its id next.
  static constexpr uint64_t kDeadEpoch = ~uint64_t{0};

  // --- owner-only, read on every call ---
  uint64_t epoch_seen = 0;
  std::atomic<uint32_t> count{0};     // only the owner writes; stats() reads
  std::atomic<uint32_t> capacity{0};  // 0 while the record has no slot array
  void** slots = nullptr;
  owner_counter local_hits;
  owner_counter stolen;
  owner_counter victim_hits;
  owner_counter misses;
  // --- owner-only, cold ---
  batch* slot_batch = nullptr;     // owns `slots`; nullptr when detached
  batch* spares = nullptr;         // empty full-size batches, for spills
  uint32_t spare_count = 0;
  engine* owner_engine = nullptr;  // nullptr once the engine is gone
  uint64_t engine_serial = 0;
  // --- shared with thieves and collectors ---
  alignas(64) spin_mutex mu;
  batch_list shared ABSL_GUARDED_BY(mu);
  std::atomic<uint64_t> shared_hint{0};  // lets thieves skip empty queues
  // Engine registry links, guarded by the engine's mutex.
  cache_record* prev = nullptr;
  cache_record* next = nullptr;
};

// The calling thread's cache records, indexed by engine id. Two plain
// constant-initialized thread_locals (no TLS wrapper call): the fast path
// reads both straight off the thread pointer, then loads the record.
inline thread_local constinit cache_record** t_records = nullptr;
inline thread_local constinit uint32_t t_record_count = 0;

// How an engine's owner destroys objects it no longer wants cached.
struct engine_client {
  // Destroys `n` objects. Must not throw. Runs on whichever thread collects.
  void (*destroy)(void* ctx, void** objects, size_t n) noexcept;
  void* ctx;
};

struct engine_config {
  // Objects a thread keeps in its owner-only slots (>= 1). Larger is faster
  // for bursty use and holds more in idle threads.
  uint32_t local_capacity = 8;
};

// Test-only access to state that is impractical to reach for real: serials
// and epochs near their wrap, and a face's engine.
struct testing_hooks {
  static uint64_t next_engine_serial() noexcept;
  static void set_next_engine_serial(uint64_t serial) noexcept;
  static void set_epoch(engine& e, uint64_t epoch) noexcept;
  template <class Face>
  static engine& engine_of(Face& face) noexcept {
    return face.engine_;
  }
};

class engine {
 public:
  engine(engine_client client, engine_config config);
  ~engine();  // destroys every object cached, in every thread's tiers
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // The calling thread's newest cached object if its slots have one, else
  // nullptr (then call try_get()). The whole hit path: no call, no lock, no
  // atomic read-modify-write.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* try_get_fast() noexcept {
    if (ABSL_PREDICT_TRUE(id_ < t_record_count)) {
      cache_record* r = t_records[id_];
      if (ABSL_PREDICT_TRUE(r != nullptr &&
                            r->epoch_seen == epoch_.load(std::memory_order_relaxed))) {
        uint32_t n = r->count.load(std::memory_order_relaxed);
        if (ABSL_PREDICT_TRUE(n != 0)) {
          r->count.store(n - 1, std::memory_order_relaxed);
          r->local_hits.bump();
          return r->slots[n - 1];
        }
      }
    }
    return nullptr;
  }

  // Caches `obj` in the calling thread's slots if there is room; false
  // otherwise (then call put()).
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool try_put_fast(void* obj) noexcept {
    if (ABSL_PREDICT_TRUE(id_ < t_record_count)) {
      cache_record* r = t_records[id_];
      if (ABSL_PREDICT_TRUE(r != nullptr &&
                            r->epoch_seen == epoch_.load(std::memory_order_relaxed))) {
        uint32_t n = r->count.load(std::memory_order_relaxed);
        if (ABSL_PREDICT_TRUE(n < r->capacity.load(std::memory_order_relaxed))) {
          r->slots[n] = obj;
          r->count.store(n + 1, std::memory_order_relaxed);
          return true;
        }
      }
    }
    return false;
  }

  // A cached object, or nullptr when every tier is empty (the caller then
  // makes a new one; that counts as a miss).
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* try_get() {
    void* obj = try_get_fast();
    return ABSL_PREDICT_TRUE(obj != nullptr) ? obj : get_slow();
  }

  // Caches `obj` (non-null). Never throws: when caching would need memory
  // that cannot be had, the object is destroyed instead.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void put(void* obj) noexcept {
    if (ABSL_PREDICT_FALSE(!try_put_fast(obj))) put_slow(obj);
  }

  // Puts up to `n` objects straight into the calling thread's slots (the
  // rest go the usual way). For faces that make objects in batches.
  void put_many(void* const* objs, size_t n) noexcept;

  // One collect cycle: destroys the victim generation, makes every shared
  // queue and orphan the new victim, and advances the epoch so that threads
  // age their slots on their next call. Safe from any thread at any time,
  // and concurrently with drain(). With `flush_caller`, the calling thread's
  // slots first join the shared tier, so that the cycle ages them too.
  // An object destroyed here may own the engine: nothing touches the
  // engine once the destroying starts.
  void age(bool flush_caller);

  // Destroys (destroy == true) or forgets (false) every cached object in
  // every tier of every thread. The caller guarantees that no other thread
  // uses this engine concurrently (as for destruction); collect() may run:
  // drain() waits for a cycle in progress on this engine to finish.
  void drain(bool destroy);

  // Moves the calling thread's slots to where the engine's epoch says they
  // belong (shared queue, victim, or destroyed).
  void flush_this_thread() noexcept;

  engine_stats stats() const;
  uint32_t local_capacity() const noexcept { return capacity_; }

 private:
  friend struct engine_registry;
  friend struct testing_hooks;
  friend void flush_thread_cache_all() noexcept;
  friend void release_this_thread() noexcept;
  friend void collect_all() noexcept;

  void* get_slow();
  void put_slow(void* obj) noexcept;
  // The calling thread's record with a slot array, or nullptr (an exiting
  // thread, or no memory): then only the engine-wide tiers serve.
  cache_record* this_thread_record();
  // age() once the engine is pinned against destruction.
  void age_pinned(bool flush_caller) noexcept;
  // The calling thread's record if it has one for this engine.
  cache_record* existing_record() const noexcept;
  // Ages `r`'s slots if the engine's epoch moved since the owner last looked.
  // With may_destroy == false, objects two cycles old go to the victim
  // instead (for callers that hold the registry lock).
  void sync_epoch(cache_record* r, bool may_destroy) noexcept;
  // Detaches r's slot batch (holding `count` objects) and returns it,
  // nullptr when it is empty. A spare (or new) empty batch takes its place;
  // without memory for one the record is left with no slots until its
  // owner's next slow path. Never runs user code, so that what it detaches
  // can be destroyed afterwards without anyone seeing it half-destroyed.
  batch* take_slots(cache_record* r) noexcept;
  // Gives r a slot array if it has none. False when out of memory.
  bool ensure_slots(cache_record* r) noexcept;
  void refill(cache_record* r, batch* b) noexcept;
  // An empty full-size batch: a spare, or a new one (nullptr: no memory).
  batch* take_spare(cache_record* r) noexcept;
  // Keeps `b` (emptied) as a spare if it is full-size and there is room.
  void give_spare(cache_record* r, batch* b) noexcept;
  // Moves half of r's slots to its shared queue. False when out of memory.
  bool spill(cache_record* r) noexcept;
  // Destroys the objects of a detached chain and frees it. Static: the
  // engine may be destroyed by the objects it destroys.
  static void destroy_chain(engine_client client, batch* b) noexcept;
  // Moves every object of every tier (all threads' slots included) out as
  // one chain.
  batch* take_all_locked() noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits for collectors working on this engine, then take_all_locked();
  // with `unregister`, also retires the engine's id and makes its records
  // in threads' tables unusable.
  batch* quiesce_and_take_all(bool unregister) noexcept;
  // In a fork() child: hands the records of threads that do not exist there
  // to the engine, and frees them.
  void adopt_records_of_absent_threads() noexcept ABSL_NO_THREAD_SAFETY_ANALYSIS;
  // Hands a dying thread's record over to the engine (registry lock held).
  void adopt(cache_record* r) noexcept;
  void flush_record(cache_record* r, bool may_destroy) noexcept;

  // Read on every call: kept together, first.
  uint32_t id_ = 0;
  // Collect cycles so far. Written under mu_; read racily by owners on every
  // call. 64 bits: it never wraps.
  std::atomic<uint64_t> epoch_{0};

  const engine_client client_;
  const uint32_t capacity_;
  const uint32_t batch_size_;
  uint64_t serial_ = 0;  // unique per engine for the life of the process
  uint32_t pins_ = 0;    // collectors working on this engine; under the registry lock

  mutable mutex mu_;
  cache_record* records_ ABSL_GUARDED_BY(mu_) = nullptr;
  batch_list orphans_ ABSL_GUARDED_BY(mu_);  // primary objects of exited threads
  batch_list victim_ ABSL_GUARDED_BY(mu_);
  engine_stats retired_ ABSL_GUARDED_BY(mu_);  // counters of exited threads
};

// Hands every record of the calling thread to its engine and frees them.
// Runs at thread exit; afterwards the thread caches nothing.
void release_this_thread() noexcept;

// Runs age() on every live engine.
void collect_all() noexcept;
// Moves the calling thread's slots of every engine out of its private tier.
void flush_thread_cache_all() noexcept;

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_INTERNAL_ENGINE_H_
