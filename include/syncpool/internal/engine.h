// syncpool/internal/engine.h
//
// The one pool engine behind every face of syncpool: a pool<T> is an engine
// with one class, a pool_resource an engine with one class per block size.
// It caches type-erased `void*` items in three tiers, as Go's sync.Pool does:
//
//   1. one *thread cache* per (thread, engine): for every class the thread
//      used, an array of items only that thread touches. A hit is a few
//      plain loads and stores: no lock, no atomic read-modify-write.
//   2. per class, a *depot* of batches, under a spin lock taken once per
//      batch: thread caches spill into it and refill from it, so what one
//      thread frees reaches the others (Go's shared queues and stealing).
//   3. per class, the *victim* generation: a collect cycle destroys the old
//      victim and makes everything cached the new victim; get() looks there
//      only after the primary tiers, so idle items age out.
//
// How a collector reaches a thread cache without stopping its owner (an
// asymmetric fence, as liburcu and folly's hazard pointers do):
//   - The owner brackets every use of its cache: it raises a per-thread
//     `busy` word, then reads the engine's `key`, which must equal the key it
//     stored beside its cache pointer; then it works; then it lowers `busy`.
//     Plain loads and stores, a compiler barrier in between.
//   - A collector stores a new key (revoking every cache of the engine),
//     calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) once per cycle, then
//     takes the content of every cache whose owner is not busy. Either the
//     owner saw the new key (and goes to its slow path, which takes the
//     engine lock), or the collector saw it busy (and leaves its cache for
//     this cycle).
//   - Where the kernel refuses membarrier (seccomp), the collector only
//     revokes; each owner ages its own cache on its next call. Idle threads
//     then keep their caches (engine_stats::reaches_idle_threads says so).
//   - Under ThreadSanitizer both sides use sequentially consistent atomics
//     instead, which TSan understands.
//
// Nothing here allocates until first use; the faces supply the memory for
// bookkeeping (pool_resource takes it from its upstream).
//
// Users never see this header's types; they may change at any time.

#ifndef SYNCPOOL_INTERNAL_ENGINE_H_
#define SYNCPOOL_INTERNAL_ENGINE_H_

#include "syncpool/internal/config.h"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"
#include "syncpool/internal/mutex.h"  // also SYNCPOOL_TSAN

namespace syncpool {
class pool_resource;
namespace internal {

class engine;
struct thread_cache;

// Where the items handed out by an engine (or one class of it) came from,
// and what it holds. A snapshot: running threads' counters move meanwhile.
struct engine_stats {
  uint64_t local_hits = 0;   // the thread's own cache, or a batch it spilled
  uint64_t stolen = 0;       // a batch spilled by another (or an exited) thread
  uint64_t victim_hits = 0;  // the victim generation
  uint64_t misses = 0;       // nothing cached: the face made a new item
  uint64_t cached = 0;       // items held in every tier right now
  uint64_t thread_caches = 0;  // (thread, engine) caches alive, orphans included
  // False when membarrier() is unavailable: a collector then cannot take
  // an idle thread's cache, which waits for its owner's next call.
  bool reaches_idle_threads = true;

  engine_stats& operator+=(const engine_stats& o) noexcept {
    local_hits += o.local_hits;
    stolen += o.stolen;
    victim_hits += o.victim_hits;
    misses += o.misses;
    cached += o.cached;
    thread_caches += o.thread_caches;
    reaches_idle_threads = reaches_idle_threads && o.reaches_idle_threads;
    return *this;
  }
};

// Items moved between tiers, a batch at a time, so that one lock moves many.
struct batch {
  batch* next;
  const thread_cache* origin;  // the cache that spilled it; nullptr: anyone
  uint32_t count;
  uint32_t capacity;
  void* items[1];  // really `capacity` items

  static constexpr std::size_t bytes_for(uint32_t capacity) noexcept {
    return offsetof(batch, items) + sizeof(void*) * (capacity == 0 ? 1 : capacity);
  }
  static batch* of_items(void** items) noexcept {
    return reinterpret_cast<batch*>(reinterpret_cast<char*>(items) - offsetof(batch, items));
  }
};

// A LIFO list of batches with a running item count. Not thread-safe.
class batch_list {
 public:
  batch_list() = default;
  batch_list(const batch_list&) = delete;
  batch_list& operator=(const batch_list&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  uint64_t size() const noexcept { return size_; }
  void push(batch* b) noexcept;
  batch* pop() noexcept;
  void splice(batch_list& other) noexcept;  // appends all of `other`
  batch* release() noexcept;                // detaches the whole chain

 private:
  batch* head_ = nullptr;
  batch* tail_ = nullptr;
  uint64_t size_ = 0;
};

// One class's state shared by all threads: depot and victim. The face owns
// the storage (pool<T> has one inline; pool_resource one per class it
// created) and hands it to the engine through engine_client::shared.
struct class_shared {
  spin_mutex mu;
  batch_list depot ABSL_GUARDED_BY(mu);
  batch_list victim ABSL_GUARDED_BY(mu);
  // Empty batches that hold a whole spill (batch_of() items or more): a
  // refill leaves one here and the next spill fills it, under the lock each takes anyway, so that a
  // steady stream of spills and refills allocates no batch. A collect
  // cycle frees them.
  batch_list spares ABSL_GUARDED_BY(mu);
  // Written only under mu (plain load and store: no read-modify-write),
  // read without it.
  std::atomic<uint64_t> available{0};  // items in depot + victim: lets callers skip the lock
  std::atomic<uint32_t> spare_batches{0};
  // The cache that last spilled into or refilled from the depot (compared,
  // never followed): a trip after another cache's is a crossed one (see
  // engine::grow_budget).
  const thread_cache* last_user ABSL_GUARDED_BY(mu) = nullptr;
  // Records `c` as the depot's user (mu held); true when another cache used
  // it last.
  bool note_user_locked(const thread_cache* c) noexcept ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    const bool crossed = last_user != nullptr && last_user != c;
    last_user = c;
    return crossed;
  }
  // Counted on slow paths, under mu; local hits of freed caches are
  // retired here. misses is counted without the lock.
  std::atomic<uint64_t> retired_hits{0};
  std::atomic<uint64_t> stolen{0};
  std::atomic<uint64_t> victim_hits{0};
  std::atomic<uint64_t> misses{0};

  // Adds `n` (wrapping: a negative n as its two's complement) to a counter
  // written only under mu.
  static void add_locked(std::atomic<uint64_t>& counter, uint64_t n) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Nothing that a collector must visit.
  bool idle() const noexcept {
    return available.load(std::memory_order_relaxed) == 0 && spare_batches.load(std::memory_order_relaxed) == 0;
  }
};

// One class in a thread cache. Owner-only, except for a collector that
// holds the engine lock while the owner is known to be out (see the top).
// 32 bytes: the hot path indexes it with a shift.
struct class_slots {
  // The items in `items` (the low 16 bits) and the hits the slots served
  // (the 48 bits above, wrapping): one word, so that a hit pays one load and
  // one store for both. stats() reads it.
  std::atomic<uint64_t> state{0};
  // How many items the slots may hold: the class's share of the cache's
  // budget (thread_cache::reserved), so that the fast paths need test
  // nothing else. At most `array`; 0 when the class holds no share.
  uint16_t capacity = 0;
  uint16_t refill = 0;     // how many the face makes at the next miss
  uint16_t array = 0;      // room in `items`
  // The last refill left items of another cache's batch in the depot for
  // want of room: the class is fed by another thread's spills (a producer
  // of a consumer's frees), and its room may grow past a batch of its own.
  uint16_t fed = 0;
  void** items = nullptr;  // a batch's items (batch::of_items); nullptr: no array
  uint64_t weight = 0;     // of one item against the cache's budget

  static constexpr unsigned kCountBits = 16;
  static constexpr uint64_t kCountMask = (uint64_t{1} << kCountBits) - 1;
  // Added to `state` by a hit: one hit more, one item less.
  static constexpr uint64_t kHit = (uint64_t{1} << kCountBits) - 1;

  uint32_t count() const noexcept { return static_cast<uint32_t>(state.load(std::memory_order_relaxed) & kCountMask); }
  void set_count(uint32_t n) noexcept {
    state.store((state.load(std::memory_order_relaxed) & ~kCountMask) | n, std::memory_order_relaxed);
  }
  uint64_t hits() const noexcept { return state.load(std::memory_order_relaxed) >> kCountBits; }
  // The slots never served a hit, and the face never carved blocks into
  // them (refill_count): their owner only puts items in, as the consumer of
  // another thread's blocks does (see engine::give).
  bool never_served() const noexcept { return hits() == 0 && refill == 0; }
  void add_hits(uint64_t n) noexcept {
    state.store(state.load(std::memory_order_relaxed) + (n << kCountBits), std::memory_order_relaxed);
  }
};
static_assert(sizeof(class_slots) == 32);

// One (thread, engine) cache. Memory from the face (engine_client::meta),
// 64-byte aligned so that no two threads' hot fields share a line.
struct alignas(64) thread_cache {
  // --- owner-only, hot ---
  uint32_t base = 0;      // the class of cls[0]
  uint32_t nclasses = 0;  // entries of `cls`: classes base .. base + nclasses - 1
  // The sum over classes of capacity x weight: what the slots could hold,
  // all classes together. Never above `budget`.
  uint64_t reserved = 0;
  uint64_t budget = 0;  // the bound on `reserved`
  class_slots* cls = nullptr;
  // --- guarded by the engine lock (and the registry lock for owner links) ---
  engine* eng = nullptr;
  struct thread_state* owner = nullptr;  // nullptr: the thread exited
  uint64_t valid_key = 0;     // the key under which the owner may use it
  uint64_t aged_cycle = 0;    // the engine cycle its content was last aged in
  uint64_t active_cycle = 0;  // the engine cycle its owner last revalidated in
  thread_cache* next = nullptr;  // the engine's list
  thread_cache* prev = nullptr;
  thread_cache* tnext = nullptr;  // the owner's list
  thread_cache* tprev = nullptr;
  std::size_t cls_bytes = 0;  // of `cls` when it is not inline
  batch* spares = nullptr;    // empty batches kept for spills (owner-only)
  uint32_t spare_count = 0;
  // Spills of full slots and refills from its own spills since its budget
  // last changed (owner-only; reset with the budget), and the slot hits of
  // all its classes when churn was last weighed (see grow_budget).
  uint32_t churn = 0;
  // Whether the last window of churn qualified (see grow_budget).
  bool armed = false;
  // Of `churn`, the depot trips that followed another cache's at that
  // class (class_shared::last_user): each pulls the depot's lines (and its
  // batches') from another CPU.
  uint16_t crossed = 0;
  uint64_t hits_mark = 0;
};

// A cache's class table starts inline, right after it, with room for a few
// classes; it moves out only for a thread that uses more. An engine of one
// class never moves it. (The fast paths reach the table through the
// thread's tls_entry, which mirrors `cls`, `base` and `nclasses`.)
inline constexpr uint32_t kInlineClasses = 2;
static_assert(sizeof(thread_cache) % alignof(class_slots) == 0, "the inline table starts right after the cache");
ABSL_ATTRIBUTE_ALWAYS_INLINE inline class_slots* inline_slots(thread_cache* c) noexcept {
  return reinterpret_cast<class_slots*>(reinterpret_cast<char*>(c) + sizeof(thread_cache));
}

// The calling thread's view of the engines: a direct-mapped table from an
// engine's key to this thread's cache in it, in static TLS (no heap), and
// the `busy` word of the asymmetric fence.
inline constexpr uint32_t kTlsSlots = 64;

// One entry of that table. `key` and `cache` are atomic only so that a dying
// cache's entry can be cleared by another thread (relaxed: plain loads and
// stores). The rest mirrors the cache's class table for the fast paths, so
// that a hit goes from the entry straight to its class's slots without
// loading the cache's header first (one dependent load less); only the
// owner reads or writes it, and it is valid while `key` matches.
struct tls_entry {
  std::atomic<uint64_t> key{0};  // 0: empty
  std::atomic<thread_cache*> cache{nullptr};
  class_slots* cls = nullptr;  // cache->cls
  uint32_t base = 0;           // cache->base
  uint32_t nclasses = 0;       // cache->nclasses
};

// Engine keys step by the size of an entry, so that a key's entry lies at
// byte offset key % (kTlsSlots * kKeyStep): one `and` on the hot path.
inline constexpr uint64_t kKeyStep = sizeof(tls_entry);
static_assert(kKeyStep == 32);

struct thread_state {
  // The asymmetric fence's word, in two halves: the fast paths raise `fast`
  // (they never nest); slow paths count their nesting in `depth` (a face
  // may call into another engine from one: a pool_resource over a
  // pool_resource). A collector reads both.
  std::atomic<uint32_t> fast{0};
  std::atomic<uint32_t> depth{0};
  uint32_t flags = 0;                // kHooked, kExited
  thread_cache* owned = nullptr;     // this thread's caches (registry lock)
  // This thread's t_table, for a collector that frees one of its caches
  // (set on first use).
  tls_entry* table = nullptr;

  bool busy() const noexcept {
#ifdef SYNCPOOL_TSAN
    return fast.load(std::memory_order_seq_cst) != 0 || depth.load(std::memory_order_seq_cst) != 0;
#else
    return fast.load(std::memory_order_acquire) != 0 || depth.load(std::memory_order_acquire) != 0;
#endif
  }
};

inline thread_local constinit thread_state t_thread{};
inline thread_local constinit tls_entry t_table[kTlsSlots] = {};

// The entry of `table` that a key maps to.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline tls_entry& entry_for(tls_entry* table, uint64_t key) noexcept {
  return table[(key / kKeyStep) % kTlsSlots];
}

// Points the entry at c's class table and range (the owner, whenever it
// installs c or c's table changes).
inline void mirror_table(tls_entry& entry, const thread_cache* c) noexcept {
  entry.cls = c->cls;
  entry.base = c->base;
  entry.nclasses = c->nclasses;
}

// What an engine needs from its face: one static table per face type.
struct engine_client {
  // Destroys (pool<T>) or gives back (pool_resource) `n` items of class
  // `cls`. Runs on whichever thread collects, with no engine lock held.
  void (*destroy)(void* ctx, uint32_t cls, void** items, std::size_t n) noexcept;
  // The shared state of class `cls`, which the face created before any item
  // of that class reached the engine.
  class_shared* (*shared)(void* ctx, uint32_t cls) noexcept;
  // Writes the classes that have shared state (in any order) to `out` (room
  // for every class) and returns how many: the engine visits only those.
  uint32_t (*classes_in_use)(const void* ctx, uint32_t* out) noexcept;
  // Slots a thread keeps for class `cls` (>= 1), and how many items a
  // spill or refill moves (>= 1, <= capacity).
  // `budget`: the asking cache's (a growing cache keeps more per class).
  uint32_t (*capacity)(const void* ctx, uint32_t cls, uint64_t budget) noexcept;
  uint32_t (*batch_size)(const void* ctx, uint32_t cls, uint64_t budget) noexcept;
  // The weight of one item of class `cls` against a cache's budget.
  uint64_t (*weight)(const void* ctx, uint32_t cls) noexcept;
  // Bookkeeping memory, aligned to `alignment` (<= 64); nullptr when there
  // is none. Never calls back into this engine.
  void* (*meta_alloc)(void* ctx, std::size_t bytes, std::size_t alignment) noexcept;
  void (*meta_free)(void* ctx, void* p, std::size_t bytes, std::size_t alignment) noexcept;
  // Runs after a collect pass over the engine, with no lock held (nullptr:
  // nothing to do); pool_resource gives back what it holds when idle.
  void (*after_collect)(void* ctx) noexcept;
  // Whether destroy, after_collect and the memory a flush spills into may
  // reach the face's upstream from the calling thread now (nullptr:
  // always). When not, a collect pass keeps what died as victims for a
  // later pass, and a flush leaves this engine's cache as it is: see
  // serialized_upstream::may_call_now() for why.
  bool (*may_call_out)(const void* ctx) noexcept;
};

// Whether the calling thread is inside a pool_resource's call to an upstream
// that takes its lock (src/resource_parts.h): a pool<T>'s objects, whose
// destructors may free into such a resource, are not destroyed from there.
bool inside_locked_upstream_call() noexcept;

inline constexpr uint32_t kMaxClasses = 128;

struct engine_config {
  uint32_t classes = 1;  // at most kMaxClasses
  uint64_t budget = 8;   // the most one thread cache may hold, in weight units
  // What a new cache may hold (0: `budget`). A cache grows towards `budget`
  // while its owner takes back what it spilled itself (its working set is
  // larger than its budget), and halves back each collect cycle; all the
  // engine's caches together grow by at most `growth_limit` above their
  // initial budgets.
  uint64_t initial_budget = 0;
  uint64_t growth_limit = 0;
};
// (An engine of one class covers it in every cache from the start, so that
// the fast paths may skip the range test: try_get_fast<true>.)

// Test-only access to state that is impractical to reach for real.
struct testing_hooks {
  static uint64_t next_engine_key() noexcept;
  static void set_next_engine_key(uint64_t key) noexcept;
  static uint64_t key_of(const engine& e) noexcept;
  // Moves the engine's cycle count to `cycle`, its caches' with it (as if
  // that many cycles had passed, each seen by every cache).
  static void set_cycle(engine& e, uint64_t cycle) noexcept;
  // Makes membarrier() look unavailable (true) or restores it (false).
  static void pretend_no_membarrier(bool on) noexcept;
  // Ends the resource's young phase (see pool_resource.cc) until release()
  // or an idle reset starts a new one, for tests of what the thread caches
  // do.
  static void end_young_phase(pool_resource& r) noexcept;
  // Holds (true) or lets go (false) the lock that the resource's release(),
  // stats() and idle reset take, as a stats() call in another thread would.
  static void hold_reset_lock(pool_resource& r, bool on) noexcept;
  // The same for the young phase's lock, taken as it is (an owner is not
  // revoked: see pool_resource.cc, young_state::owner).
  static void hold_young_lock(pool_resource& r, bool on) noexcept;
  // Whether some thread owns the resource's young phase (works on it
  // without its lock), and the revocations of owners that allocate or
  // deallocate made so far in the process (the owners' back-off counts
  // those).
  static bool young_phase_owned(pool_resource& r) noexcept;
  static uint64_t young_revocations() noexcept;
  // The calling thread's cache budget in the resource (0: it has no valid
  // cache there), and the growth its caches were granted together.
  static uint64_t thread_budget(pool_resource& r) noexcept;
  static uint64_t growth_granted(pool_resource& r) noexcept;
  static uint64_t thread_budget(const engine& e) noexcept;
  // Global heap calls made by pool_resource's debug checks (their records;
  // always 0 in a build without SYNCPOOL_DEBUG_CHECKS).
  static uint64_t checker_heap_calls() noexcept;
  // The bytes a resource's bookkeeping arena sets aside for one object.
  static std::size_t arena_bucket_bytes(std::size_t bytes, std::size_t alignment) noexcept;
  // Objects the resource's bookkeeping arena handed out so far (batches,
  // caches, class state, records), wrapping at 2^32.
  static uint32_t arena_allocations(pool_resource& r) noexcept;
  static uint64_t growth_granted(const engine& e) noexcept;
  template <class Face>
  static engine& engine_of(Face& face) noexcept {
    return face.engine_;
  }
};

// Whether a collector can take idle threads' caches in this process.
bool asymmetric_fence_available() noexcept;
// The heavy side of the asymmetric fence, for a face's own owner/revoker
// pair (pool_resource's young phase): the caller stored its revocation
// before; after this, an owner that raised its busy word before that store
// shows it raised, and one that raises it later sees the store. Takes no
// lock. Only sound where asymmetric_fence_available() was true when the
// owner began (the owner side: plain stores and loads, as enter_fast()).
void asymmetric_fence_heavy() noexcept;

class engine {
 public:
  // Allocates nothing and registers nothing: that waits for first use.
  engine(const engine_client* client, void* ctx, engine_config config) noexcept;
  // The key it was made with, until its first revocation (a collect cycle
  // or drain() over a used engine): engines made later have larger ones
  // (every thread's, process-wide), so a face may order itself by it before
  // its first use (pool_resource, for fork()).
  uint64_t construction_key() const noexcept { return key_.load(std::memory_order_relaxed); }
  ~engine();  // destroys every item cached, in every tier and thread
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // The calling thread's newest cached item of class `cls`, or nullptr
  // (then call get_slow()). No call, no lock, no atomic read-modify-write.
  // `single`: the engine has one class, which every cache covers.
  template <bool single = false>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* try_get_fast(uint32_t cls) noexcept {
    thread_state& t = t_thread;
    enter_fast(t);
    void* item = nullptr;
    const uint64_t key = load_key();
    tls_entry& entry = entry_for(t_table, key);
    if (ABSL_PREDICT_TRUE(entry.key.load(std::memory_order_relaxed) == key)) {
      const uint32_t i = single ? 0 : cls - entry.base;  // wraps below base: fails the test
      if (ABSL_PREDICT_TRUE(single || i < entry.nclasses)) {
        class_slots& cs = entry.cls[i];
        const uint64_t state = cs.state.load(std::memory_order_relaxed);
        // 64 bits wide, so that items[n - 1] folds into one addressing mode.
        const uint64_t n = state & class_slots::kCountMask;
        if (ABSL_PREDICT_TRUE(n != 0)) {
          item = cs.items[n - 1];
          // Never null (faces never cache one): lets the caller's miss test
          // fold into the branches above.
          ABSL_ASSUME(item != nullptr);
          cs.state.store(state + class_slots::kHit, std::memory_order_relaxed);
        }
      }
    }
    leave_fast(t);
    return item;
  }

  // Caches `item` in the calling thread's cache if it has room; false
  // otherwise (then call put_slow()).
  template <bool single = false>
  ABSL_ATTRIBUTE_ALWAYS_INLINE bool try_put_fast(uint32_t cls, void* item) noexcept {
    thread_state& t = t_thread;
    enter_fast(t);
    bool done = false;
    const uint64_t key = load_key();
    tls_entry& entry = entry_for(t_table, key);
    if (ABSL_PREDICT_TRUE(entry.key.load(std::memory_order_relaxed) == key)) {
      const uint32_t i = single ? 0 : cls - entry.base;
      if (ABSL_PREDICT_TRUE(single || i < entry.nclasses)) {
        class_slots& cs = entry.cls[i];
        const uint64_t state = cs.state.load(std::memory_order_relaxed);
        const uint32_t n = static_cast<uint32_t>(state & class_slots::kCountMask);
        if (ABSL_PREDICT_TRUE(n < cs.capacity)) {
          cs.items[n] = item;
          cs.state.store(state + 1, std::memory_order_relaxed);
          done = true;
        }
      }
    }
    leave_fast(t);
    return done;
  }

  // A critical section over the calling thread's cache, for slow paths: a
  // collector leaves the cache alone meanwhile, and an idle face cannot be
  // reset under it. Faces run their own slow work (making items) inside.
  struct scope {
    thread_cache* cache = nullptr;  // nullptr: no cache (an exiting thread, no memory)
    uint32_t depth = 0;
  };
  // Enters (even without a cache: then only the shared tiers serve).
  scope enter_slow(uint32_t cls);
  void leave_slow(const scope& s) noexcept;
  // Every tier after the fast path: the slots (after a revalidation), the
  // depot, the victim. nullptr: nothing cached (counted as a miss).
  void* take(scope& s, uint32_t cls);
  // Caches `item`, spilling as needed; without a cache or memory, into the
  // depot, or back to the face (destroy) as a last resort.
  void give(scope& s, uint32_t cls, void* item) noexcept;
  // give() of items[0..n), in order; what fits in the slots as they are is
  // copied in at once (a face's refill: the blocks it made beside the one
  // it hands out).
  void give_n(scope& s, uint32_t cls, void* const* items, std::size_t n) noexcept;
  // How many items the face should make at a miss of class `cls` (>= 1):
  // it grows while this thread keeps missing, so that a thread that needs a
  // few items does not get a whole batch.
  uint32_t refill_count(scope& s, uint32_t cls) noexcept;

  // Out of line: the fast paths inline into their callers without saving
  // registers for the slow ones.
  ABSL_ATTRIBUTE_NOINLINE void* get_slow(uint32_t cls);
  ABSL_ATTRIBUTE_NOINLINE void put_slow(uint32_t cls, void* item) noexcept;
  template <bool single = false>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void* try_get(uint32_t cls) {
    void* item = try_get_fast<single>(cls);
    return ABSL_PREDICT_TRUE(item != nullptr) ? item : get_slow(cls);
  }
  template <bool single = false>
  ABSL_ATTRIBUTE_ALWAYS_INLINE void put(uint32_t cls, void* item) noexcept {
    if (ABSL_PREDICT_FALSE(!try_put_fast<single>(cls, item))) put_slow(cls, item);
  }

  // For a face that gave memory back outside the engine (a young class's
  // last chunk, the last direct block): puts the engine back on the
  // collectors' list if it left it, so that the next cycle runs the face's
  // after_collect (which gives back what is left once the face is idle).
  // A relaxed load while it is listed already.
  void keep_collected() noexcept;

  // One collect cycle over this engine alone (syncpool::collect() runs one
  // over every engine). Safe from any thread at any time, concurrently with
  // drain(). An item destroyed here may own the engine: nothing touches
  // the engine once destroying starts.
  void collect();

  // Takes every item of every tier and thread out and destroys it
  // (destroy == true) or forgets it (false); frees every thread cache. The
  // caller guarantees that no other thread uses the engine meanwhile
  // (collect() may run); threads still alive start afresh on their next
  // call. The engine stays closed to collectors (so that the face can give
  // its own state back undisturbed) until reopen().
  void drain(bool destroy);
  void reopen() noexcept;

  // Moves the calling thread's slots into the depot.
  void flush_this_thread() noexcept;

  engine_stats stats() const;
  engine_stats class_stats(uint32_t cls) const;

  // For a face's after_collect (the caller's collect pass holds the one
  // pin): when the engine holds no thread cache and no item and no other
  // collector is at work on it, runs `reset`, which may drop the face's
  // state (it returns false to say it did not). No thread can create a
  // cache meanwhile: the registry and engine locks are held. `busy`, if
  // given, is set when another collector has the engine pinned (the face
  // should try again at the next cycle).
  template <class F>
  bool if_idle(F&& reset, bool* busy = nullptr) {
    std::lock_guard<std::mutex> rlock(registry_mutex());
    lock_guard lock(mu_);
    if (pins_ > 1) {
      if (busy != nullptr) *busy = true;
      return false;
    }
    if (caches_ != nullptr || !all_shared_empty_locked()) return false;
    return reset();
  }

 private:
  friend struct engine_registry;
  friend struct testing_hooks;
  friend struct collector_pass;
  friend void release_this_thread() noexcept;
  friend void collect_all() noexcept;
  friend void flush_thread_cache_all() noexcept;

  // The asymmetric fence's owner side: the fast paths' flag...
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void enter_fast(thread_state& t) noexcept {
#ifdef SYNCPOOL_TSAN
    t.fast.store(1, std::memory_order_seq_cst);
#else
    t.fast.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE static void leave_fast(thread_state& t) noexcept {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.fast.store(0, std::memory_order_release);
  }
  // ...and the slow paths' depth.
  static uint32_t enter(thread_state& t) noexcept {
    const uint32_t depth = t.depth.load(std::memory_order_relaxed);
#ifdef SYNCPOOL_TSAN
    t.depth.store(depth + 1, std::memory_order_seq_cst);
#else
    t.depth.store(depth + 1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
    return depth;
  }
  static void leave(thread_state& t, uint32_t depth) noexcept {
    std::atomic_signal_fence(std::memory_order_seq_cst);
    t.depth.store(depth, std::memory_order_release);
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE uint64_t load_key() const noexcept {
#ifdef SYNCPOOL_TSAN
    return key_.load(std::memory_order_seq_cst);
#else
    return key_.load(std::memory_order_relaxed);
#endif
  }

  static std::mutex& registry_mutex() noexcept;

  // The calling thread's cache, valid under the current key, with slots for
  // `cls`; the caller is inside its critical section (busy raised; the
  // whole slow path runs inside it: a collector leaves a busy owner's
  // caches alone). nullptr: the thread is exiting, or no memory.
  thread_cache* own_cache(uint32_t cls);
  // c's slots for class `cls` (c covers it).
  static class_slots& slots_of(thread_cache* c, uint32_t cls) noexcept { return c->cls[cls - c->base]; }
  // Makes the calling thread's cache valid again after a revocation (or
  // creates one, or takes over an exited thread's): ages what it missed.
  thread_cache* revalidate(thread_state& t);
  thread_cache* find_own_cache_locked(const thread_state& t) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  thread_cache* new_cache() noexcept;
  // Grows c's class table to cover `cls`; false when out of memory.
  bool cover_class(thread_cache* c, uint32_t cls) noexcept;
  // Gives class `cls` of c room for one more item: a larger share of the
  // budget (doubling up to the class's capacity) and an array to match.
  // False when there is no memory, or the slots are full at the most they
  // may hold (then spill).
  bool make_room_in_array(thread_cache* c, uint32_t cls) noexcept;
  // Raises class `cls`'s capacity towards `want` (at most the class's
  // capacity) within the free room of c's budget, and gives it an array of
  // at least that much. A class below a few slots takes them from the
  // other classes' shares (spilling what they hold) when there is no room.
  // False when nothing was gained.
  bool grow_slots(thread_cache* c, uint32_t cls, uint32_t want) noexcept;
  // Spills everything class `cls` of c holds and gives back its share of
  // the budget (its array stays). False when a spill found no memory.
  bool release_share(thread_cache* c, uint32_t cls) noexcept;
  batch* new_batch(thread_cache* c, uint32_t capacity) noexcept;
  void free_batch(batch* b) noexcept;
  void keep_spare(thread_cache* c, batch* b) noexcept;
  // Moves up to batch_size items of class `cls` (the oldest) to the depot.
  // Moves the class's oldest batch_of(cls) items (`all`: every item) to
  // the depot as one batch.
  // `crossed`, if given, tells whether the depot's last user was another
  // cache.
  bool spill(thread_cache* c, uint32_t cls, bool all = false, bool* crossed = nullptr) noexcept;
  // The shared tiers without a cache: one item from the depot or victim;
  // one item into the depot.
  void* take_shared(uint32_t cls);
  void give_shared(uint32_t cls, void* item) noexcept;
  class_shared* shared(uint32_t cls) const noexcept { return client_->shared(ctx_, cls); }
  uint32_t capacity_of(const thread_cache* c, uint32_t cls) const noexcept {
    return client_->capacity(ctx_, cls, c->budget);
  }
  uint32_t batch_of(const thread_cache* c, uint32_t cls) const noexcept {
    return client_->batch_size(ctx_, cls, c->budget);
  }
  // A class whose slots hold at most one_way_batch() and spill all of it
  // (see give()): one that never served its thread, in an engine of several
  // classes. (pool<T>'s misses carve nothing, so a thread that gets and
  // then puts its first objects would look one-way; its capacity is small
  // and its own, local_capacity.)
  bool one_way(const class_slots& cs) const noexcept { return nclasses_ != 1 && cs.never_served(); }
  // The most a one-way class holds, and spills at once: a batch, and no
  // more than one_way_bound(), a few KiB of items whatever the budget (see
  // give()).
  uint32_t one_way_batch(const thread_cache* c, uint32_t cls) const noexcept;
  uint32_t one_way_bound(uint32_t cls) const noexcept;
  // An engine of one class is bounded by its slots alone (its capacity is
  // within its budget): its items weigh nothing, so that its fast paths
  // (try_get_fast<true>) skip the budget.
  uint64_t weight_of(uint32_t cls) const noexcept { return nclasses_ == 1 ? 0 : client_->weight(ctx_, cls); }
  // Takes a batch from the depot (or the victim) into c's slots for `cls`.
  void* refill_from_shared(thread_cache* c, uint32_t cls);
  // Ages c's content by the cycles it missed (engine lock held).
  void age_cache_locked(thread_cache* c, batch_list* dead) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Detaches all of c's slots into the victim or a dead list.
  void detach_slots_locked(thread_cache* c, bool to_victim, batch_list* dead)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves c's items to the shared tiers (an exited or vanished owner).
  void hand_over_locked(thread_cache* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Frees c's memory (its arrays and spares too); c must be unlinked.
  void free_cache(thread_cache* c) noexcept;
  // The owner, after it spilled full slots or took back a batch it spilled
  // itself (`crossed`: a depot trip after another cache's): counts the
  // churn, and doubles its budget when it qualifies, within budget_ and
  // what is left of growth_limit_.
  void grow_budget(thread_cache* c, bool crossed) noexcept;
  // Halves a cache's budget (not below initial_budget_), its owner out.
  void shrink_budget(thread_cache* c) noexcept;
  void unlink_cache_locked(thread_cache* c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool all_shared_empty_locked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls f(cls, shared) for each class the face has state for.
  template <class F>
  void for_each_shared(F f) const {
    uint32_t classes[kMaxClasses];
    const uint32_t n = client_->classes_in_use(ctx_, classes);
    for (uint32_t i = 0; i < n; ++i) {
      if (class_shared* sh = shared(classes[i])) f(classes[i], sh);
    }
  }
  // The collector: a new key (revoking every cache) and a new cycle.
  void revoke_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ages the shared tiers and takes what idle owners hold (when a fence
  // covers a revocation); frees caches idle for a whole cycle.
  void collect_pass_locked(bool fence_ok, batch_list* dead, thread_cache** to_free)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void destroy_chain(const engine_client* client, void* ctx, batch* b) noexcept;
  void free_caches(thread_cache* list) noexcept;
  // The face may reach its upstream from this thread now (engine_client::
  // may_call_out).
  bool may_call_out() const noexcept { return client_->may_call_out == nullptr || client_->may_call_out(ctx_); }
  // What a collect pass found dead, back to the victims (the face may not
  // destroy it from this thread now): a later pass destroys it.
  void keep_as_victims(batch* b) noexcept;

  // Read on every call: first.
  std::atomic<uint64_t> key_;

  const engine_client* const client_;
  void* const ctx_;
  const uint32_t nclasses_;
  const uint64_t budget_;          // a cache's largest budget
  const uint64_t initial_budget_;  // a new cache's
  const uint64_t growth_limit_;
  // The sum over live caches of (budget - initial_budget_): owners raise it
  // (grow_budget), the engine lock's holders and free_cache lower it.
  std::atomic<uint64_t> growth_granted_{0};

  mutable mutex mu_;
  thread_cache* caches_ ABSL_GUARDED_BY(mu_) = nullptr;  // live and orphaned
  uint64_t cycle_ ABSL_GUARDED_BY(mu_) = 0;
  // The latest revocation: its key, and the fences started when it was
  // stored (a fence numbered above covers it); the newest key known fenced.
  uint64_t revoked_key_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t revoked_fences_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t fenced_key_ ABSL_GUARDED_BY(mu_) = 0;

  // The registry's (its lock): collectors at work, the active list, the
  // collect pass that last revoked and processed the engine.
  uint32_t pins_ = 0;
  bool closed_ = false;  // drained: collectors keep away until reopen()
  // On the registry's active list (written under its mutex; read without it
  // by keep_collected()).
  std::atomic<bool> active_{false};
  // Set (under the registry lock) the first time the engine is listed: an
  // engine never listed never had a cache, an item or syncpool::collect()'s
  // pin (which it takes on listed engines only; a member collect() racing
  // with destruction is the caller's error, as any member call is), so
  // drain() has nothing to do.
  std::atomic<bool> ever_active_{false};
  engine* active_next_ = nullptr;
  engine* active_prev_ = nullptr;
  // On the registry's list of pinned engines (pins_ > 0), which a fork
  // child clears: a collector may pin an engine that is not active (a
  // member collect(), or collect() after it took the engine off the list).
  engine* pinned_next_ = nullptr;
  uint64_t pass_revoked_ = 0;
  uint64_t pass_done_ = 0;
};

// Hands every cache of the calling thread to its engine. Runs at thread
// exit; afterwards the thread caches nothing.
void release_this_thread() noexcept;
// One collect cycle over every active engine.
void collect_all() noexcept;
// Moves the calling thread's slots of every engine into the depots.
void flush_thread_cache_all() noexcept;

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_INTERNAL_ENGINE_H_
