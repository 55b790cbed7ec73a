// The slow paths of the pool engine: thread caches (creation, revalidation,
// spills and refills), the collector, thread exit, drain, fork.
//
// Who may touch a thread cache `c`:
//   - its owner, inside a critical section (busy raised, and the key in its
//     table checked after that): the fast paths and every slow path of the
//     engine run so;
//   - a collector holding the engine lock, once a fence covers a revocation
//     newer than c's key and c's owner was seen out of any critical section
//     (collect_pass_locked): the owner's next entry sees a key that does not
//     match and waits in revalidate() for the engine lock;
//   - drain() and thread exit, under the engine lock, when the owner cannot
//     be using the engine.
//
// Lock order: registry mutex -> engine::mu_ -> class_shared::mu.
// No user code (engine_client::destroy) runs while any of them is held.
// Bookkeeping memory (engine_client::meta_alloc) may be asked for inside a
// critical section but never under a lock.

#include "syncpool/internal/engine.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>

#include "absl/base/macros.h"
#include "fork.h"

namespace syncpool {
namespace internal {

namespace {

constexpr uint32_t kHooked = 1;  // the thread's exit hook is registered
constexpr uint32_t kExited = 2;  // its caches were handed over: shared tiers only
constexpr uint32_t kMaxSpares = 2;
// A cache's budget grows after this many spills of full slots or refills
// from its own spills per class it covers (see grow_budget).
constexpr uint32_t kChurnPerClass = 4;
// ... and only when there were at most this many slot hits per such event,
// or per crossed one (a depot trip after another cache's at that class).
// A trip costs about 300 instructions; a crossed one also pulls the depot's
// and its batches' lines from another CPU: in compare_allocators' threads
// workload, 2 threads on one resource took 9.5 ns per operation against 7.0
// on two resources (2-core EPYC VM), at one trip per ~500 hits; without
// trips (a larger budget), 7.8. So a thread that crosses that often grows.
constexpr uint64_t kHitsPerChurn = 32;
constexpr uint64_t kHitsPerCrossedChurn = 2048;
// thread_cache::crossed counts at most one window of churn.
static_assert(uint64_t{kChurnPerClass} * kMaxClasses <= UINT16_MAX);
// Empty batches a class keeps at its depot (class_shared::spares), so that
// a spill finds one without the arena. One in flight per spilling thread is
// what a producer/consumer pair needs (4 and 64 made the same number of
// arena calls, 5.1-5.8 thousand for 2 million blocks handed over); at 64,
// threads that came and went left 445 KB of empty batches behind. A thread
// that spills many batches at once (compare_allocators' batch) pays: 142 ->
// 145 instructions per block, about 5% of its time.
constexpr uint32_t kMaxClassSpares = 4;
// The share of the budget a class may take from the others (in items).
constexpr uint32_t kFloorSlots = 4;
// What a one-way class (engine::one_way) holds at most: this many bytes of
// items, but never fewer than kOneWayMinItems items (nor more than a
// batch). The blocks a consumer holds are blocks its producer makes anew,
// and touches cold: at a batch (up to 32 blocks) per class,
// compare_allocators' prodcons mixed workload (producer and consumer on
// distinct CPUs) peaked at 1.47-1.54 MiB and took 5.1-6.2 us per 64 blocks;
// at 4 KiB, 1.04-1.26 MiB and 4.0-4.6 us. Its 1024 B column spills 8 blocks
// at a time instead of 32: 4.7-5.0 us against 4.3-4.9 (alternated runs).
constexpr uint64_t kOneWayBytes = 4096;
constexpr uint32_t kOneWayMinItems = 8;
// Class tables and batches (a cache's item arrays are batches) are asked
// for whole cache lines: they are written at every hit, and a table or an
// array of one thread next to another's in the face's memory would pull the
// line between their CPUs (false sharing). (Thread caches are aligned by
// their type.)
constexpr std::size_t kMetaAlignment = 64;

}  // namespace

// ---------------------------------------------------------------------------
// batch_list

void batch_list::push(batch* b) noexcept {
  b->next = head_;
  head_ = b;
  if (tail_ == nullptr) tail_ = b;
  size_ += b->count;
}

batch* batch_list::pop() noexcept {
  batch* b = head_;
  if (b == nullptr) return nullptr;
  head_ = b->next;
  if (head_ == nullptr) tail_ = nullptr;
  b->next = nullptr;
  size_ -= b->count;
  return b;
}

void batch_list::splice(batch_list& other) noexcept {
  if (other.head_ == nullptr) return;
  if (head_ == nullptr) {
    head_ = other.head_;
  } else {
    tail_->next = other.head_;
  }
  tail_ = other.tail_;
  size_ += other.size_;
  other.head_ = other.tail_ = nullptr;
  other.size_ = 0;
}

batch* batch_list::release() noexcept {
  batch* b = head_;
  head_ = tail_ = nullptr;
  size_ = 0;
  return b;
}

// ---------------------------------------------------------------------------
// The asymmetric fence's heavy side.

namespace {

std::atomic<bool> g_pretend_no_membarrier{false};

// Registers this process for MEMBARRIER_CMD_PRIVATE_EXPEDITED; false when
// the kernel (or a seccomp filter) refuses.
bool register_membarrier() noexcept {
  const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

std::atomic<int>& membarrier_state() {
  // -1: not yet known; 0: unavailable; 1: registered.
  static std::atomic<int> state{-1};
  return state;
}

[[maybe_unused]] bool membarrier_ready() noexcept {
  std::atomic<int>& s = membarrier_state();
  int v = s.load(std::memory_order_acquire);
  if (v < 0) {
    v = register_membarrier() ? 1 : 0;
    s.store(v, std::memory_order_release);
  }
  return v == 1;
}

// Fences issued and completed: a revocation whose key was stored when
// `started` read s is covered once `completed` >= s + 1 (the fence numbered
// s + 1 began after the store).
struct fence_counters {
  std::mutex mu;  // one fence at a time, so that numbers mean order
  std::atomic<uint64_t> started{0};
  std::atomic<uint64_t> completed{0};
};

fence_counters& fences() {
  static fence_counters* f = new fence_counters;
  return *f;
}

// The barrier alone: membarrier() when it is to be used, then a full fence.
void barrier_on_every_cpu(bool use_membarrier) noexcept {
#ifdef SYNCPOOL_TSAN
  // TSan's variant orders both sides with sequentially consistent atomics.
  (void)use_membarrier;
#else
  if (use_membarrier) syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

// Makes every store before it visible to every thread's loads after it,
// with a barrier on each CPU that runs one of our threads.
void heavy_fence(bool use_membarrier) noexcept {
  fence_counters& f = fences();
  std::lock_guard<std::mutex> lock(f.mu);
  f.started.fetch_add(1, std::memory_order_seq_cst);
  barrier_on_every_cpu(use_membarrier);
  f.completed.fetch_add(1, std::memory_order_seq_cst);
}

}  // namespace

void asymmetric_fence_heavy() noexcept {
  // membarrier_ready(), not asymmetric_fence_available(): a test that only
  // pretends membarrier is gone must not skip the barrier an owner set up
  // before relies on.
#ifdef SYNCPOOL_TSAN
  barrier_on_every_cpu(false);
#else
  barrier_on_every_cpu(membarrier_ready());
#endif
}

bool asymmetric_fence_available() noexcept {
#ifdef SYNCPOOL_TSAN
  // TSan's variant: both sides use sequentially consistent atomics.
  return !g_pretend_no_membarrier.load(std::memory_order_relaxed);
#else
  return !g_pretend_no_membarrier.load(std::memory_order_relaxed) && membarrier_ready();
#endif
}

// ---------------------------------------------------------------------------
// The registry: engine keys, active engines, pins, thread lists.

// A collector's pin on an engine, on the collecting thread's stack. An
// engine destroyed by what its own collect cycle destroys (an item that
// owned its pool) takes the pin over instead of waiting for it.
struct pin_frame {
  engine* e;
  pin_frame* up;
};

namespace {
thread_local constinit pin_frame* t_pins = nullptr;
std::atomic<uint64_t> g_next_key{kKeyStep};

uint64_t new_key() noexcept { return g_next_key.fetch_add(kKeyStep, std::memory_order_relaxed); }
}  // namespace

struct engine_registry final : fork_participant {
  std::mutex mu;
  std::condition_variable unpinned;
  engine* active = nullptr;  // engines with caches or items (collect visits these)
  engine* pinned = nullptr;  // engines with pins_ > 0

  static engine_registry& get() {
    // Never destroyed: threads and static pools may outlive any order.
    static engine_registry* r = [] {
      auto* reg = new engine_registry;
      reg->enlist(0);
      return reg;
    }();
    return *r;
  }

  void activate(engine* e) {
    if (e->active_.load(std::memory_order_relaxed)) return;
    e->active_.store(true, std::memory_order_relaxed);
    e->ever_active_.store(true, std::memory_order_relaxed);
    e->active_prev_ = nullptr;
    e->active_next_ = active;
    if (active != nullptr) active->active_prev_ = e;
    active = e;
  }
  void deactivate(engine* e) {
    if (!e->active_.load(std::memory_order_relaxed)) return;
    e->active_.store(false, std::memory_order_relaxed);
    if (e->active_prev_ != nullptr) {
      e->active_prev_->active_next_ = e->active_next_;
    } else {
      active = e->active_next_;
    }
    if (e->active_next_ != nullptr) e->active_next_->active_prev_ = e->active_prev_;
    e->active_next_ = e->active_prev_ = nullptr;
  }

  void pin(engine* e, pin_frame& f) {
    add_pin(e);
    f = pin_frame{e, t_pins};
    t_pins = &f;
  }
  // Drops the pin unless the engine died meanwhile and took it over.
  void unpin(pin_frame& f) {
    {
      std::lock_guard<std::mutex> lock(mu);
      unpin_locked(f);
    }
    unpinned.notify_all();
  }
  // The same, the registry lock held (the caller notifies `unpinned`).
  void unpin_locked(pin_frame& f) {
    t_pins = f.up;
    if (f.e != nullptr) drop_pin(f.e);
  }
  // Every change of a pin count, so that the pinned list is exact. (Singly
  // linked: it holds an engine per thread pinning one (collectors, and
  // threads making a cache or flushing theirs), a handful, and a pointer
  // more would not fit pool_resource's inline storage.)
  void add_pin(engine* e) {
    if (e->pins_++ != 0) return;
    e->pinned_next_ = pinned;
    pinned = e;
  }
  void drop_pin(engine* e) {
    if (--e->pins_ != 0) return;
    engine** link = &pinned;
    while (*link != e) link = &(*link)->pinned_next_;
    *link = e->pinned_next_;
    e->pinned_next_ = nullptr;
  }

  // Sorts the active list by address (merge sort of the forward links, then
  // the back links; no memory, no recursion deeper than log n). fork() takes
  // every active engine's lock at once, in list order, and the list's own
  // order is the order engines last became active: two forks could take two
  // engines' locks in opposite orders. No deadlock follows (the fork
  // handlers are the only holders of two engine locks at once, and hold
  // `mu` around them), but ThreadSanitizer's deadlock detector reports an
  // inversion; in address order it sees one order.
  static engine* sorted_by_address(engine* head, std::size_t n) noexcept {
    if (n <= 1) {
      if (head != nullptr) head->active_next_ = nullptr;
      return head;
    }
    engine* second = head;
    for (std::size_t i = 0; i < n / 2; ++i) second = second->active_next_;
    engine* a = sorted_by_address(head, n / 2);
    engine* b = sorted_by_address(second, n - n / 2);
    engine* merged = nullptr;
    engine** tail = &merged;
    while (a != nullptr && b != nullptr) {
      engine*& from = std::less<engine*>()(a, b) ? a : b;
      *tail = from;
      tail = &from->active_next_;
      from = from->active_next_;
    }
    *tail = a != nullptr ? a : b;
    return merged;
  }
  void sort_active_locked() noexcept {
    std::size_t n = 0;
    for (engine* e = active; e != nullptr; e = e->active_next_) ++n;
    active = sorted_by_address(active, n);
    engine* prev = nullptr;
    for (engine* e = active; e != nullptr; e = e->active_next_) {
      e->active_prev_ = prev;
      prev = e;
    }
  }

  // fork(): the registry, then every active engine and its classes, in
  // address order (see sort_active_locked()). An engine with no cache and
  // no item holds its lock only in revalidate(), under this mutex (see
  // there).
  void lock_for_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (r != rank::engines) return;
    fences().mu.lock();
    mu.lock();
    sort_active_locked();
    // An engine of one class (pool<T>) has its class's lock locked here; a
    // pool_resource's classes are its own participant's (rank blocks).
    for (engine* e = active; e != nullptr; e = e->active_next_) {
      e->mu_.lock();
      if (e->nclasses_ == 1) e->shared(0)->mu.lock();
    }
  }
  void unlock_after_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (r != rank::engines) return;
    for (engine* e = active; e != nullptr; e = e->active_next_) {
      if (e->nclasses_ == 1) e->shared(0)->mu.unlock();
      e->mu_.unlock();
    }
    mu.unlock();
    fences().mu.unlock();
  }
  void reset_after_fork(rank r) noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS;
};

namespace {
// The registry and the fence counters are made while the library loads,
// before main() and its threads, not at first use: a fork() while another
// thread ran a function-local static's initializer left the child waiting
// forever on its guard (see fork.cc's handlers, where a probe found it).
// Their get()s stay lazy for pools built by other libraries' static
// initializers that run first.
[[maybe_unused]] const bool g_made_at_load = [] {
  engine_registry::get();
  fences();
  return true;
}();
}  // namespace

std::mutex& engine::registry_mutex() noexcept { return engine_registry::get().mu; }

// ---------------------------------------------------------------------------
// Thread lists and thread exit

namespace {

struct thread_exit_hook {
  ~thread_exit_hook() { release_this_thread(); }
};

void ensure_exit_hook(thread_state& t) {
  if ((t.flags & kHooked) != 0) return;
  // Constructing it registers its destructor for this thread's exit
  // (__cxa_thread_atexit: glibc's own calloc, not operator new).
  static thread_local thread_exit_hook hook;
  (void)hook;
  t.flags |= kHooked;
}

// Both under the registry lock.
void unlink_from_owner(thread_cache* c) {
  thread_state* t = c->owner;
  if (t == nullptr) return;
  // Its entry in the owner's table goes too, so that nothing reaches freed
  // memory through it. Only the entry of its last key can ever match:
  // keys come from one 64-bit counter and are never handed out twice, and
  // every install is under the cache's latest key. The owner may be
  // writing that entry meanwhile (it writes the cache, then the key): the
  // key is zeroed only while `c` still sits beside it, with a
  // compare-and-swap, so at worst a fresh entry of the owner's is lost (it
  // finds its cache again on its slow path).
  if (t->table != nullptr) {
    tls_entry& entry = entry_for(t->table, c->valid_key);
    if (entry.cache.load(std::memory_order_relaxed) == c) {
      uint64_t k = entry.key.load(std::memory_order_relaxed);
      if (k != 0) entry.key.compare_exchange_strong(k, 0, std::memory_order_relaxed);
    }
  }
  if (c->tprev != nullptr) {
    c->tprev->tnext = c->tnext;
  } else {
    t->owned = c->tnext;
  }
  if (c->tnext != nullptr) c->tnext->tprev = c->tprev;
  c->tnext = c->tprev = nullptr;
  c->owner = nullptr;
}

void link_to_owner(thread_cache* c, thread_state& t) {
  // Only a thread links its own caches: its table is t_table.
  t.table = t_table;
  c->owner = &t;
  c->tprev = nullptr;
  c->tnext = t.owned;
  if (t.owned != nullptr) t.owned->tprev = c;
  t.owned = c;
}

// A batch on its way to destruction carries its class in `origin`.
const thread_cache* class_tag(uint32_t cls) noexcept {
  return reinterpret_cast<const thread_cache*>(uintptr_t{cls});
}

// What a collect pass leaves to do once its locks are dropped.
struct pass_result {
  batch_list dead;
  thread_cache* to_free = nullptr;
};

}  // namespace

void release_this_thread() noexcept {
  thread_state& t = t_thread;
  if ((t.flags & kExited) != 0) return;
  engine_registry& reg = engine_registry::get();
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    while (thread_cache* c = t.owned) {
      engine* e = c->eng;
      lock_guard elock(e->mu_);
      e->hand_over_locked(c);
      // An orphan now: a collector frees it, or a new thread takes it over.
      unlink_from_owner(c);
    }
    t.flags |= kExited;
  }
  for (tls_entry& entry : t_table) entry.key.store(0, std::memory_order_relaxed);
}

void engine::hand_over_locked(thread_cache* c) {
  // What missed a cycle is a victim already; the rest stays primary (the
  // depot), for other threads to take.
  const bool aged = c->aged_cycle != cycle_;
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    class_slots& cs = c->cls[i];
    if (cs.items == nullptr) continue;
    const uint32_t n = cs.count();
    batch* b = batch::of_items(cs.items);
    cs.items = nullptr;
    cs.capacity = 0;
    cs.array = 0;
    cs.set_count(0);
    if (n == 0) {
      free_batch(b);
      continue;
    }
    b->count = n;
    b->origin = nullptr;
    class_shared* sh = shared(c->base + i);
    spin_lock_guard slock(sh->mu);
    (aged ? sh->victim : sh->depot).push(b);
    class_shared::add_locked(sh->available, n);
  }
  c->reserved = 0;
}

// ---------------------------------------------------------------------------
// engine: construction, destruction

engine::engine(const engine_client* client, void* ctx, engine_config config) noexcept
    : key_(new_key()),
      client_(client),
      ctx_(ctx),
      nclasses_(std::clamp<uint32_t>(config.classes, 1, kMaxClasses)),
      budget_(std::max<uint64_t>(config.budget, 1)),
      initial_budget_(config.initial_budget == 0 ? budget_ : std::clamp<uint64_t>(config.initial_budget, 1, budget_)),
      growth_limit_(config.growth_limit) {}

engine::~engine() { drain(/*destroy=*/true); }

void engine::destroy_chain(const engine_client* client, void* ctx, batch* b) noexcept {
  while (b != nullptr) {
    batch* next = b->next;
    const auto cls = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(b->origin));
    if (b->count != 0) client->destroy(ctx, cls, b->items, b->count);
    client->meta_free(ctx, b, batch::bytes_for(b->capacity), kMetaAlignment);
    b = next;
  }
}

// ---------------------------------------------------------------------------
// engine: memory for caches and batches

batch* engine::new_batch(thread_cache* c, uint32_t capacity) noexcept {
  if (c != nullptr) {
    for (batch** p = &c->spares; *p != nullptr; p = &(*p)->next) {
      if ((*p)->capacity == capacity) {
        batch* b = *p;
        *p = b->next;
        --c->spare_count;
        b->next = nullptr;
        b->count = 0;
        return b;
      }
    }
  }
  void* mem = client_->meta_alloc(ctx_, batch::bytes_for(capacity), kMetaAlignment);
  if (mem == nullptr) return nullptr;
  auto* b = static_cast<batch*>(mem);
  b->next = nullptr;
  b->origin = nullptr;
  b->count = 0;
  b->capacity = capacity;
  return b;
}

void engine::free_batch(batch* b) noexcept {
  client_->meta_free(ctx_, b, batch::bytes_for(b->capacity), kMetaAlignment);
}

void engine::keep_spare(thread_cache* c, batch* b) noexcept {
  if (c == nullptr || c->spare_count >= kMaxSpares) {
    free_batch(b);
    return;
  }
  b->count = 0;
  b->next = c->spares;
  c->spares = b;
  ++c->spare_count;
}

namespace {
constexpr std::size_t kCacheBytes = sizeof(thread_cache) + sizeof(class_slots) * kInlineClasses;
}  // namespace

thread_cache* engine::new_cache() noexcept {
  void* mem = client_->meta_alloc(ctx_, kCacheBytes, alignof(thread_cache));
  if (mem == nullptr) return nullptr;
  auto* c = new (mem) thread_cache;
  c->cls = inline_slots(c);
  for (uint32_t i = 0; i < kInlineClasses; ++i) new (&c->cls[i]) class_slots;
  c->cls[0].weight = weight_of(0);
  // Covers no class yet (cover_class() sets the base), but an engine of one
  // class covers it from the start: its fast paths skip the range test.
  c->nclasses = nclasses_ == 1 ? 1 : 0;
  c->budget = initial_budget_;
  c->eng = this;
  return c;
}

void engine::free_cache(thread_cache* c) noexcept {
  if (c->budget > initial_budget_) growth_granted_.fetch_sub(c->budget - initial_budget_, std::memory_order_relaxed);
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    if (c->cls[i].items != nullptr) free_batch(batch::of_items(c->cls[i].items));
  }
  while (batch* b = c->spares) {
    c->spares = b->next;
    free_batch(b);
  }
  if (c->cls_bytes != 0) client_->meta_free(ctx_, c->cls, c->cls_bytes, kMetaAlignment);
  c->~thread_cache();
  client_->meta_free(ctx_, c, kCacheBytes, alignof(thread_cache));
}

void engine::grow_budget(thread_cache* c, bool crossed) noexcept {
  // Not at the first sign: a thread that frees a few blocks of every class
  // and then reuses some (a server's worker warming up) would grow for
  // nothing. One that keeps spilling full slots or refilling from its own
  // spills, a few times per class it uses, churns through its budget.
  const uint32_t churn = ++c->churn;
  if (crossed) ++c->crossed;
  if (churn < kChurnPerClass * std::max<uint32_t>(c->nclasses, 2)) return;
  const uint32_t crossings = std::min<uint32_t>(c->crossed, churn);
  c->churn = 0;
  c->crossed = 0;
  // Nor where the churn is rare next to the hits: a thread whose classes
  // drift around a steady footprint spills now and then, and would grow
  // forever (64 such threads held 15 MiB more in compare_allocators'
  // threads workload).
  uint64_t hits = 0;
  for (uint32_t i = 0; i < c->nclasses; ++i) hits += c->cls[i].hits();
  const uint64_t since = hits - std::min(hits, c->hits_mark);
  c->hits_mark = hits;
  // (Crossed trips are dear: a thread that crosses often grows even with
  // many hits between them.)
  if (since > kHitsPerChurn * (churn - crossings) + kHitsPerCrossedChurn * crossings) {
    c->armed = false;
    return;
  }
  // Nor after one such window: a worker that goes once through every class
  // (a few blocks each, more than their slots hold) and then parks churns
  // that much too, and 64 of them held twice their budget, 4 MiB more, in
  // compare_allocators' idle workload. A thread that keeps churning grows
  // one window later.
  if (!c->armed) {
    c->armed = true;
    return;
  }
  const uint64_t want = std::min(c->budget, budget_ - c->budget);
  if (want == 0) return;
  uint64_t granted = growth_granted_.load(std::memory_order_relaxed);
  uint64_t step = 0;
  do {
    step = std::min(want, growth_limit_ - std::min(growth_limit_, granted));
    if (step == 0) return;
  } while (!growth_granted_.compare_exchange_weak(granted, granted + step, std::memory_order_relaxed));
  c->budget += step;
}

void engine::shrink_budget(thread_cache* c) noexcept {
  c->churn = 0;
  c->crossed = 0;
  c->armed = false;
  const uint64_t to = std::max(initial_budget_, c->budget / 2);
  if (to >= c->budget) return;
  growth_granted_.fetch_sub(c->budget - to, std::memory_order_relaxed);
  c->budget = to;
}

void engine::free_caches(thread_cache* list) noexcept {
  while (list != nullptr) {
    thread_cache* next = list->next;
    free_cache(list);
    list = next;
  }
}

namespace {
// The owner, once c's class table or range changed: the fast paths read
// them through c's TLS entry, which follows here, before an old table goes
// back to the face (whose upstream may be anyone's code). If the entry no
// longer holds c under its key (another engine took the slot while this
// one asked for memory), the next call installs c afresh.
void follow_table(thread_cache* c) noexcept {
  tls_entry& entry = entry_for(t_table, c->valid_key);
  if (entry.key.load(std::memory_order_relaxed) == c->valid_key && entry.cache.load(std::memory_order_relaxed) == c) {
    mirror_table(entry, c);
  }
}
}  // namespace

bool engine::cover_class(thread_cache* c, uint32_t cls) noexcept {
  // Owner, inside its critical section. The table covers a contiguous range
  // of classes, so that a thread using one class pays for one entry.
  if (c->nclasses == 0) {
    c->cls[0].weight = weight_of(cls);
    lock_guard lock(mu_);  // stats() reads the range under the engine lock
    c->base = cls;
    c->nclasses = 1;
    follow_table(c);
    return true;
  }
  uint32_t lo = std::min(c->base, cls);
  uint32_t hi = std::max(c->base + c->nclasses, cls + 1);
  if (c->cls_bytes == 0 && hi - lo <= kInlineClasses) {
    // Still fits inline: shift the entries if the base moves down. Under
    // the engine lock, as stats() reads them under it (rare: once per
    // range change).
    lock_guard lock(mu_);
    if (lo < c->base) {
      const uint32_t shift = c->base - lo;
      for (uint32_t i = c->nclasses; i-- > 0;) {
        class_slots& from = c->cls[i];
        class_slots& to = c->cls[i + shift];
        to.state.store(from.state.load(std::memory_order_relaxed), std::memory_order_relaxed);
        to.capacity = from.capacity;
        to.refill = from.refill;
        to.fed = from.fed;
        to.array = from.array;
        to.items = from.items;
        to.weight = from.weight;
      }
      for (uint32_t i = 0; i < shift; ++i) {
        c->cls[i].~class_slots();
        new (&c->cls[i]) class_slots;
      }
    }
    for (uint32_t i = 0; i < hi - lo; ++i) c->cls[i].weight = weight_of(lo + i);
    c->base = lo;
    c->nclasses = hi - lo;
    follow_table(c);
    return true;
  }
  // An engine of one class never gets here: it covers its class from the
  // start (new_cache), so its fast paths skip the range test.
  ABSL_ASSERT(nclasses_ > 1);
  // Grow by half again, in the direction of the new class, to make room
  // for its neighbours too.
  const uint32_t span = hi - lo;
  const uint32_t extra = std::max<uint32_t>(span / 2, 2);
  if (cls < c->base) {
    lo = lo > extra ? lo - extra : 0;
  } else {
    hi = std::min(nclasses_, hi + extra);
  }
  const uint32_t want = hi - lo;
  const std::size_t bytes = sizeof(class_slots) * want;
  void* mem = client_->meta_alloc(ctx_, bytes, kMetaAlignment);
  if (mem == nullptr) return false;
  // The face's memory may have come from its upstream, and an upstream may
  // call back into this engine on this thread (a deallocate of blocks of
  // other classes, when it gives memory back to a resource over it): that
  // call may have widened the range meanwhile, past [lo, hi). Then the
  // copy below would write past the new table: start again from the range
  // as it is now.
  if (c->base < lo || c->base + c->nclasses > hi) {
    client_->meta_free(ctx_, mem, bytes, kMetaAlignment);
    return cls - c->base < c->nclasses || cover_class(c, cls);
  }
  auto* table = static_cast<class_slots*>(mem);
  for (uint32_t i = 0; i < want; ++i) {
    new (&table[i]) class_slots;
    table[i].weight = weight_of(lo + i);
  }
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    const class_slots& from = c->cls[i];
    class_slots& to = table[c->base + i - lo];
    to.state.store(from.state.load(std::memory_order_relaxed), std::memory_order_relaxed);
    to.capacity = from.capacity;
    to.refill = from.refill;
    to.fed = from.fed;
    to.array = from.array;
    to.items = from.items;
  }
  void* old = nullptr;
  std::size_t old_bytes = 0;
  {
    lock_guard lock(mu_);
    if (c->cls_bytes != 0) {
      old = c->cls;
      old_bytes = c->cls_bytes;
    }
    c->cls = table;
    c->cls_bytes = bytes;
    c->base = lo;
    c->nclasses = want;
  }
  follow_table(c);
  if (old != nullptr) client_->meta_free(ctx_, old, old_bytes, kMetaAlignment);
  return true;
}

uint32_t engine::one_way_bound(uint32_t cls) const noexcept {
  const uint64_t w = weight_of(cls);
  if (w == 0) return UINT32_MAX;
  return static_cast<uint32_t>(std::max<uint64_t>(std::min<uint64_t>(kOneWayBytes / w, UINT32_MAX), kOneWayMinItems));
}

uint32_t engine::one_way_batch(const thread_cache* c, uint32_t cls) const noexcept {
  return std::min(batch_of(c, cls), one_way_bound(cls));
}

bool engine::make_room_in_array(thread_cache* c, uint32_t cls) noexcept {
  // Owner, inside its critical section.
  class_slots& cs = slots_of(c, cls);
  if (cs.count() < cs.capacity) return true;
  const uint32_t cap = capacity_of(c, cls);
  if (cs.capacity >= cap) return false;  // full: spill
  // Shares start small and double: a thread that keeps a few items of a
  // class pays for a few slots. A one-way class stops at
  // one_way_batch() (see give()).
  const uint32_t most = one_way(cs) ? std::min(cap, one_way_batch(c, cls)) : cap;
  if (cs.capacity >= most) return false;
  const uint32_t want = cs.capacity == 0 ? std::min<uint32_t>(most, 4) : std::min<uint32_t>(most, cs.capacity * 2);
  if (!grow_slots(c, cls, want)) return false;
  // (Read again: grow_slots may have called out, and the table moved.)
  const class_slots& now = slots_of(c, cls);
  return now.count() < now.capacity;
}

bool engine::grow_slots(thread_cache* c, uint32_t cls, uint32_t want) noexcept {
  class_slots& cs = slots_of(c, cls);
  if (want <= cs.capacity) return false;
  const uint64_t w = cs.weight;
  // Every class may have a few slots (kFloorSlots, and no more than a
  // quarter of the budget, but one): below that, a class takes from the
  // others when the budget is full. Above it, a class grows only into free
  // room, and a full class spills a batch instead: with the budget shared
  // out, the shares stay put and a free that finds its class full pays one
  // spill per half share, not a search of the table.
  if (w != 0 && cs.capacity < kFloorSlots) {
    const auto quarter = static_cast<uint32_t>(std::min<uint64_t>(c->budget / 4 / w, kFloorSlots));
    const uint32_t floor = std::min(capacity_of(c, cls), std::max<uint32_t>(quarter, 1));
    const uint64_t need = cs.capacity < floor ? uint64_t{floor - cs.capacity} * w : 0;
    // (An item heavier than the budget takes nothing: it goes to the depot.)
    if (need != 0 && need <= c->budget && c->reserved + need > c->budget) {
      // Down to three quarters of the budget, so that the next classes
      // find room (a class heavier than a quarter of it takes only what it
      // needs): first the room others hold and do not use (half of it, so
      // that they do not fault on their next free), the heaviest classes
      // first; then whole shares, a class spilling all it holds as one
      // batch.
      const uint64_t low = need <= c->budget / 4 ? c->budget - c->budget / 4 : c->budget;
      for (uint32_t i = c->nclasses; c->reserved + need > low && i-- > 0;) {
        class_slots& other = c->cls[i];
        const uint32_t n = other.count();
        if (c->base + i == cls || other.capacity <= n) continue;
        const uint32_t keep = n + (other.capacity - n) / 2;
        c->reserved -= uint64_t{other.capacity - keep} * other.weight;
        other.capacity = static_cast<uint16_t>(keep);
      }
      for (uint32_t i = c->nclasses; c->reserved + need > low && i-- > 0;) {
        const uint32_t k = c->base + i;
        if (k != cls && c->cls[i].capacity != 0 && !release_share(c, k)) break;
      }
    }
  }
  // What this class may grow to, from the state as it is now. Every call
  // out of the engine (release_share() above, new_batch() below) may reach
  // the face's upstream, and an upstream may call back into syncpool on
  // this thread: a deallocate of a class this cache does not cover yet
  // moves the class table (cover_class), and flush_thread_cache() or a
  // revalidation empties the slots. So `cs` is looked up again after each.
  auto grant = [&](const class_slots& now) {
    if (w == 0) return want;
    const uint64_t room = c->budget - std::min(c->budget, c->reserved);
    return now.capacity + static_cast<uint32_t>(std::min<uint64_t>(want - std::min<uint32_t>(want, now.capacity), room / w));
  };
  class_slots* now = &slots_of(c, cls);
  const uint32_t first = grant(*now);
  if (first <= now->capacity) return false;
  if (now->array < first) {
    // Arrays double (`want`), whatever share they hold now.
    batch* b = new_batch(c, want);
    if (b == nullptr) return false;
    now = &slots_of(c, cls);
    if (now->array >= want) {
      keep_spare(c, b);  // a call back into this engine grew the array meanwhile
    } else {
      batch* old = nullptr;
      if (now->items != nullptr) {
        std::memcpy(b->items, now->items, sizeof(void*) * now->count());
        old = batch::of_items(now->items);
      }
      now->items = b->items;
      now->array = static_cast<uint16_t>(want);
      if (old != nullptr) free_batch(old);
    }
  }
  const uint32_t granted = std::min<uint32_t>(grant(*now), now->array);
  if (granted <= now->capacity) return false;
  c->reserved += uint64_t{granted - now->capacity} * w;
  now->capacity = static_cast<uint16_t>(granted);
  return true;
}

bool engine::release_share(thread_cache* c, uint32_t cls) noexcept {
  // (Looked up after each spill: see grow_slots.)
  while (slots_of(c, cls).count() != 0) {
    if (!spill(c, cls, /*all=*/true)) return false;
  }
  class_slots& cs = slots_of(c, cls);
  c->reserved -= uint64_t{cs.capacity} * cs.weight;
  cs.capacity = 0;
  return true;
}

// ---------------------------------------------------------------------------
// engine: the calling thread's cache

thread_cache* engine::find_own_cache_locked(const thread_state& t) const {
  for (thread_cache* c = caches_; c != nullptr; c = c->next) {
    if (c->owner == &t) return c;
  }
  return nullptr;
}

void engine::age_cache_locked(thread_cache* c, batch_list* dead) {
  const uint64_t missed = cycle_ - c->aged_cycle;
  c->aged_cycle = cycle_;
  if (missed == 0) return;
  // Content that was primary when a cycle began is a victim after it, and
  // dead after two.
  detach_slots_locked(c, /*to_victim=*/missed == 1, dead);
}

void engine::detach_slots_locked(thread_cache* c, bool to_victim, batch_list* dead) {
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    class_slots& cs = c->cls[i];
    const uint32_t n = cs.count();
    // Every share goes: the owner asks again for what it still needs.
    cs.capacity = 0;
    if (n == 0 || cs.items == nullptr) continue;  // an empty array stays
    batch* b = batch::of_items(cs.items);
    cs.items = nullptr;
    cs.array = 0;
    cs.set_count(0);
    b->count = n;
    if (to_victim) {
      b->origin = nullptr;
      class_shared* sh = shared(c->base + i);
      spin_lock_guard slock(sh->mu);
      sh->victim.push(b);
      class_shared::add_locked(sh->available, n);
    } else {
      b->origin = class_tag(c->base + i);
      dead->push(b);
    }
  }
  c->reserved = 0;
  // A cycle has passed: what the owner needs now shows again by its
  // growing back.
  shrink_budget(c);
}

thread_cache* engine::revalidate(thread_state& t) {
  if ((t.flags & kExited) != 0) return nullptr;
  batch_list dead;
  thread_cache* c = nullptr;
  engine_registry& reg = engine_registry::get();
  auto install = [&](thread_cache* x) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    age_cache_locked(x, &dead);
    const uint64_t key = key_.load(std::memory_order_relaxed);
    x->valid_key = key;
    x->active_cycle = cycle_;
    tls_entry& entry = entry_for(t_table, key);
    entry.cache.store(x, std::memory_order_relaxed);
    mirror_table(entry, x);
    entry.key.store(key, std::memory_order_relaxed);
    reg.activate(this);
  };
  {
    // The registry lock first: fork() locks only active engines, so an
    // inactive engine's lock is taken only under this one.
    std::lock_guard<std::mutex> rlock(reg.mu);
    lock_guard lock(mu_);
    c = find_own_cache_locked(t);
    if (c == nullptr) {
      // An exited thread's cache is as good as a new one.
      for (thread_cache* o = caches_; o != nullptr; o = o->next) {
        if (o->owner == nullptr) {
          c = o;
          link_to_owner(c, t);
          c->aged_cycle = cycle_;
          break;
        }
      }
    }
    if (c != nullptr) install(c);
  }
  if (c == nullptr) {
    // Memory out of every lock (it may ask upstream), with the engine
    // pinned meanwhile: an engine without caches may otherwise look idle
    // to its face, which would give back the memory we are carving from.
    pin_frame f;
    {
      std::lock_guard<std::mutex> rlock(reg.mu);
      reg.pin(this, f);
    }
    c = new_cache();
    {
      std::lock_guard<std::mutex> rlock(reg.mu);
      if (c != nullptr) {
        lock_guard lock(mu_);
        link_to_owner(c, t);
        c->next = caches_;
        if (caches_ != nullptr) caches_->prev = c;
        caches_ = c;
        c->aged_cycle = cycle_;
        install(c);
      }
      reg.unpin_locked(f);
    }
    reg.unpinned.notify_all();
    if (c == nullptr) return nullptr;
  }
  ensure_exit_hook(t);
  // Items that missed two cycles: destroyed here, with the cache consistent
  // (a destructor may come back into the engine).
  destroy_chain(client_, ctx_, dead.release());
  return c;
}

thread_cache* engine::own_cache(uint32_t cls) {
  thread_state& t = t_thread;
  for (int tries = 0; tries < 4; ++tries) {
    const uint64_t key = load_key();
    tls_entry& entry = entry_for(t_table, key);
    thread_cache* c =
        entry.key.load(std::memory_order_relaxed) == key ? entry.cache.load(std::memory_order_relaxed) : nullptr;
    if (c == nullptr) {
      // Revoked (or new): the engine lock orders us after any collector.
      c = revalidate(t);
      if (c == nullptr) return nullptr;
      continue;  // the key may have moved again meanwhile
    }
    if (cls - c->base >= c->nclasses && !cover_class(c, cls)) return nullptr;
    return c;
  }
  return nullptr;
}

engine::scope engine::enter_slow(uint32_t cls) {
  scope s;
  s.depth = enter(t_thread);
  try {
    s.cache = own_cache(cls);
  } catch (...) {
    s.cache = nullptr;
  }
  return s;
}

void engine::leave_slow(const scope& s) noexcept { leave(t_thread, s.depth); }

void* engine::get_slow(uint32_t cls) {
  scope s = enter_slow(cls);
  void* item = take(s, cls);
  leave_slow(s);
  return item;
}

void engine::put_slow(uint32_t cls, void* item) noexcept {
  scope s = enter_slow(cls);
  give(s, cls, item);
  leave_slow(s);
}

uint32_t engine::refill_count(scope& s, uint32_t cls) noexcept {
  if (s.cache == nullptr) return 1;
  class_slots& cs = slots_of(s.cache, cls);
  const uint32_t most = batch_of(s.cache, cls);
  const uint32_t n = cs.refill == 0 ? std::min<uint32_t>(2, most) : cs.refill;
  cs.refill = static_cast<uint16_t>(std::min(most, n * 2));
  return std::max<uint32_t>(n, 1);
}

// ---------------------------------------------------------------------------
// engine: spills and refills (the owner, inside its critical section)

bool engine::spill(thread_cache* c, uint32_t cls, bool all, bool* crossed) noexcept {
  if (slots_of(c, cls).count() == 0) return true;
  class_shared* sh = shared(cls);
  // A batch of batch_of() items, what a partial spill moves at most:
  // batches of the whole capacity sat half empty in the depot, and that
  // bookkeeping stayed with every parked thread's spills.
  const uint32_t capacity = all ? std::max(slots_of(c, cls).count(),
                                           one_way(slots_of(c, cls)) ? one_way_batch(c, cls) : batch_of(c, cls))
                                : batch_of(c, cls);
  batch* fresh = nullptr;  // made out of the lock when the class has no spare
  for (;;) {
    {
      spin_lock_guard lock(sh->mu);
      batch* b = fresh;
      if (b == nullptr && (b = sh->spares.pop()) != nullptr) {
        sh->spare_batches.store(sh->spare_batches.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
      }
      if (b != nullptr) {
        class_slots& cs = slots_of(c, cls);
        const uint32_t n = cs.count();
        const uint32_t moved = std::min({n, all ? n : std::min(batch_of(c, cls), std::max<uint32_t>(cs.capacity / 2, 1)), b->capacity});
        // The oldest leave; the newest (warm in cache) stay.
        std::memcpy(b->items, cs.items, sizeof(void*) * moved);
        std::memmove(cs.items, cs.items + moved, sizeof(void*) * (n - moved));
        cs.set_count(n - moved);
        b->count = moved;
        b->origin = c;
        b->next = nullptr;
        if (moved == 0) {
          if (sh->spare_batches.load(std::memory_order_relaxed) >= kMaxClassSpares) {
            // (Rare: the slots emptied meanwhile.) Freed out of the lock.
            fresh = b;
            break;
          }
          sh->spares.push(b);
          sh->spare_batches.store(sh->spare_batches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        } else {
          sh->depot.push(b);
          class_shared::add_locked(sh->available, moved);
          const bool after_another = sh->note_user_locked(c);
          if (crossed != nullptr) *crossed = after_another;
        }
        return true;
      }
    }
    // new_batch may call out (the face's memory): out of the lock, and the
    // slots are read only afterwards.
    fresh = new_batch(c, capacity);
    if (fresh == nullptr) return false;
  }
  keep_spare(c, fresh);
  return true;
}

void* engine::refill_from_shared(thread_cache* c, uint32_t cls) {
  // The depot first (primary): a whole batch moves into the slots. Then the
  // victim, one item per call and never into the slots, so that victims
  // age out unless asked for one by one (as Go does). One lock in all.
  class_shared* sh = shared(cls);
  if (sh == nullptr || sh->available.load(std::memory_order_relaxed) == 0) return nullptr;
  // Room first, out of the class's lock: a larger share (a class below its
  // few slots takes them from other classes' shares, spilling them; see
  // grow_slots) and a new array (from the face). Best effort: what does not
  // fit stays in the depot. The room doubles from 4 refill by refill (or
  // comes back at once to the array the class had) up to a batch: a thread
  // that needs a few blocks of a class takes a few, not a batch, and
  // leaves the rest to the threads that need them. (At a batch from the
  // first refill, compare_allocators' churn, threads that live for 256
  // blocks, held 97 KB of bookkeeping, 32-slot arrays, and peaked at
  // 276-300 KiB; so, 65 KB and 204-264 KiB.) A class fed by another
  // cache's spills grows up to its whole share instead: its batches are
  // the spiller's size, and a room of half of them made two trips of each
  // (prodcons 1024 B: a trip per 4 blocks, against a spill per 8).
  {
    const class_slots& cs = slots_of(c, cls);
    const uint32_t grown = std::max<uint32_t>(cs.capacity * 2u, cs.array);
    const uint32_t cap = capacity_of(c, cls);
    const uint32_t want = std::min(cap, std::max<uint32_t>(std::min(cs.fed ? cap : batch_of(c, cls), grown), 4));
    if (cs.capacity < want) grow_slots(c, cls, want);
  }
  batch* empty = nullptr;  // a batch left empty, for the thread's spares
  void* item = nullptr;
  // The batch is one this cache spilled: its working set outgrew its budget.
  bool own = false;
  bool crossed = false;  // another cache used the depot last
  {
    spin_lock_guard lock(sh->mu);
    batch* b = sh->depot.pop();
    if (b == nullptr) {
      b = sh->victim.pop();
      if (b == nullptr) return nullptr;
      if (b->count != 0) {
        item = b->items[--b->count];
        class_shared::add_locked(sh->available, -uint64_t{1});
        class_shared::add_locked(sh->victim_hits, 1);
      }
      if (b->count != 0) {
        b->next = nullptr;
        sh->victim.push(b);
      } else {
        empty = b;
      }
    } else {
      // (available drops by what is taken only, as in take_shared().)
      const uint32_t had = b->count;
      crossed = sh->note_user_locked(c);
      if (b->count != 0) {
        item = b->items[--b->count];
        // Its own spill: a local hit.
        own = b->origin == c;
        class_shared::add_locked(own ? sh->retired_hits : sh->stolen, 1);
        class_slots& cs = slots_of(c, cls);
        const uint32_t n = cs.count();
        // (No array, or no share: the pre-grow above found no memory or no
        // room; the rest stays in the depot.)
        const uint32_t taken = cs.items == nullptr ? 0 : std::min(cs.capacity - std::min<uint32_t>(n, cs.capacity), b->count);
        if (taken != 0) {
          std::memcpy(cs.items + n, b->items + (b->count - taken), sizeof(void*) * taken);
          cs.set_count(n + taken);
          b->count -= taken;
        }
        cs.fed = !own && b->count != 0;
      }
      class_shared::add_locked(sh->available, -uint64_t{had - b->count});
      // An emptied batch goes to the class's spares if it holds a whole
      // spill of this thread's, or if another live cache spilled it: that
      // one spills the same batches again (a consumer freeing a producer's
      // blocks), and kept or freed here, each spill of its would ask the
      // arena anew (prodcons mixed, 4 million blocks: 318,000 of 399,000
      // spills did; now about 10,000). (No origin: an exited thread's
      // array, which nobody spills again.)
      if (b->count != 0) {
        sh->depot.push(b);
      } else if (((b->origin != nullptr && b->origin != c) || b->capacity >= batch_of(c, cls)) &&
                 sh->spare_batches.load(std::memory_order_relaxed) < kMaxClassSpares) {
        b->next = nullptr;
        sh->spares.push(b);
        sh->spare_batches.store(sh->spare_batches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      } else {
        empty = b;
      }
    }
  }
  if (own) grow_budget(c, crossed);
  if (empty != nullptr) keep_spare(c, empty);
  return item;
}

void* engine::take_shared(uint32_t cls) {
  class_shared* sh = shared(cls);
  if (sh == nullptr) return nullptr;
  if (sh->available.load(std::memory_order_relaxed) != 0) {
    spin_lock_guard lock(sh->mu);
    for (batch_list* l : {&sh->depot, &sh->victim}) {
      batch* b = l->pop();
      if (b == nullptr) continue;
      // (available drops by what is taken only: never to 0 in passing,
      // where a collector reading it without the lock would take the
      // engine for idle.)
      void* item = b->count != 0 ? b->items[--b->count] : nullptr;
      if (item != nullptr) class_shared::add_locked(sh->available, -uint64_t{1});
      if (b->count != 0) {
        l->push(b);
      } else {
        free_batch(b);
      }
      if (item != nullptr) {
        class_shared::add_locked(l == &sh->victim ? sh->victim_hits : sh->stolen, 1);
        return item;
      }
    }
  }
  sh->misses.fetch_add(1, std::memory_order_relaxed);
  return nullptr;
}

void engine::give_shared(uint32_t cls, void* item) noexcept {
  batch* b = new_batch(nullptr, 1);
  if (b == nullptr) {
    client_->destroy(ctx_, cls, &item, 1);  // no memory to keep it
    return;
  }
  b->items[0] = item;
  b->count = 1;
  class_shared* sh = shared(cls);
  // Items reach a collector only through active engines.
  engine_registry& reg = engine_registry::get();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.activate(this);
  spin_lock_guard slock(sh->mu);
  sh->depot.push(b);
  class_shared::add_locked(sh->available, 1);
}

void* engine::take(scope& s, uint32_t cls) {
  thread_cache* c = s.cache;
  if (ABSL_PREDICT_FALSE(c == nullptr)) return take_shared(cls);
  class_slots& cs = slots_of(c, cls);
  const uint32_t n = cs.count();
  if (n != 0) {
    // The slots had one after all (the cache was just revalidated).
    void* item = cs.items[n - 1];
    cs.set_count(n - 1);
    cs.add_hits(1);
    return item;
  }
  void* item = refill_from_shared(c, cls);
  if (item == nullptr) {
    if (class_shared* sh = shared(cls)) sh->misses.fetch_add(1, std::memory_order_relaxed);
  }
  return item;
}

void engine::give(scope& s, uint32_t cls, void* item) noexcept {
  thread_cache* c = s.cache;
  if (c != nullptr) {
    // Room in the slots: a larger share of the budget, or a spill of the
    // oldest batch when the share is at its most (or the budget has none
    // to give). A one-way class (engine::one_way(): the consumer of
    // another thread's blocks) holds one_way_batch() at most and spills
    // all of it: its items serve only other threads, and every one held
    // here is one they make anew. (Half to all of a 64-slot share, for
    // each of 40 classes, was 0.4 MB of compare_allocators' prodcons mixed
    // workload.)
    bool ok = make_room_in_array(c, cls);
    const bool one_way_class = one_way(slots_of(c, cls));
    bool crossed = false;
    if (!ok && slots_of(c, cls).count() != 0 && spill(c, cls, one_way_class, &crossed)) {
      // The class's slots keep filling up: a larger budget means more
      // slots and larger batches, so fewer spills. Not for a one-way class
      // already at its bound, which no budget raises: a consumer grew to
      // the cap for nothing, out of the growth its resource's busy threads
      // share.
      if (!one_way_class || one_way_batch(c, cls) < one_way_bound(cls)) grow_budget(c, crossed);
      ok = make_room_in_array(c, cls);
    }
    class_slots& cs = slots_of(c, cls);
    const uint32_t n = cs.count();
    // (An item heavier than the whole budget goes to the depot below.)
    if (ok && n < cs.capacity) {
      cs.items[n] = item;
      cs.set_count(n + 1);
      return;
    }
  }
  // No cache (an exiting thread) or no memory: straight to the depot.
  give_shared(cls, item);
}

void engine::give_n(scope& s, uint32_t cls, void* const* items, std::size_t n) noexcept {
  std::size_t i = 0;
  while (i < n) {
    if (thread_cache* c = s.cache) {
      class_slots& cs = slots_of(c, cls);
      const uint32_t count = cs.count();
      if (count < cs.capacity) {
        // What give() does for each while there is room, all at once.
        const auto k = static_cast<uint32_t>(std::min<std::size_t>(n - i, cs.capacity - count));
        std::memcpy(&cs.items[count], items + i, sizeof(void*) * k);
        cs.set_count(count + k);
        i += k;
        continue;
      }
    }
    give(s, cls, items[i++]);  // makes room (grows, spills), or to the depot
  }
}

namespace {
// Set while this thread flushes a cache. A flush spills, a spill may ask the
// face for a batch, the face its upstream, and an upstream may flush this
// thread's caches (to give memory back when it is short): that flush would
// spill the same class again, and so on until the stack ran out. A flush
// from inside a flush does nothing instead.
thread_local constinit bool t_flushing = false;
}  // namespace

void engine::flush_this_thread() noexcept {
  // (Its spills may need batches from the face's upstream: not from inside
  // another resource's upstream call, see may_call_out().)
  if (t_flushing || !may_call_out()) return;
  t_flushing = true;
  thread_state& t = t_thread;
  const uint32_t depth = enter(t);
  const uint64_t key = load_key();
  tls_entry& entry = entry_for(t_table, key);
  if (entry.key.load(std::memory_order_relaxed) == key) {
    thread_cache* c = entry.cache.load(std::memory_order_relaxed);
    // Each class's share of the budget goes too: what the thread does next
    // asks for room afresh.
    // By class, not by index: a spill may call out, and a call back may
    // move the table's base (the classes it adds are not flushed).
    const uint32_t first = c->base;
    const uint32_t end = c->base + c->nclasses;
    for (uint32_t k = first; k < end; ++k) {
      if (k - c->base < c->nclasses) release_share(c, k);
    }
  }
  leave(t, depth);
  t_flushing = false;
}

// ---------------------------------------------------------------------------
// engine: the collector

bool engine::all_shared_empty_locked() const {
  bool empty = true;
  for_each_shared([&](uint32_t, const class_shared* sh) {
    empty = empty && sh->idle();
  });
  return empty;
}

void engine::revoke_locked() {
  const uint64_t key = new_key();
  key_.store(key, std::memory_order_seq_cst);
  // Read after the store: a fence numbered above this began after it.
  revoked_fences_ = fences().started.load(std::memory_order_seq_cst);
  revoked_key_ = key;
  ++cycle_;
}

void engine::collect_pass_locked(bool fence_ok, batch_list* dead, thread_cache** to_free) {
  if (fences().completed.load(std::memory_order_seq_cst) >= revoked_fences_ + 1) {
    fenced_key_ = std::max(fenced_key_, revoked_key_);
  }
  // Victims of the previous cycle die; primary items become the victim.
  for_each_shared([&](uint32_t k, class_shared* sh) {
    if (sh->idle()) return;
    spin_lock_guard slock(sh->mu);
    batch_list old_victim;
    old_victim.splice(sh->victim);
    old_victim.splice(sh->spares);  // empty: only their memory goes
    sh->spare_batches.store(0, std::memory_order_relaxed);
    sh->victim.splice(sh->depot);
    sh->available.store(sh->victim.size(), std::memory_order_relaxed);
    while (batch* b = old_victim.pop()) {
      b->origin = class_tag(k);
      dead->push(b);
    }
  });
  for (thread_cache* c = caches_; c != nullptr;) {
    thread_cache* next = c->next;
    if (c->owner == nullptr) {
      // An exited thread's: its items are in the shared tiers already.
      unlink_cache_locked(c);
      c->next = *to_free;
      *to_free = c;
    } else if (fence_ok && c->valid_key < fenced_key_ && !c->owner->busy()) {
      // Its owner is out, and comes back only through revalidate(), which
      // waits for this lock: the cache is ours for now.
      bool had_items = false;
      for (uint32_t i = 0; i < c->nclasses && !had_items; ++i) {
        had_items = c->cls[i].count() != 0;
      }
      if (had_items) {
        detach_slots_locked(c, /*to_victim=*/true, dead);
        c->aged_cycle = cycle_;
      } else if (c->active_cycle + 1 < cycle_) {
        // Unused for a whole cycle and empty: its memory goes back too.
        unlink_from_owner(c);
        unlink_cache_locked(c);
        c->next = *to_free;
        *to_free = c;
      }
    }
    c = next;
  }
}

void engine::unlink_cache_locked(thread_cache* c) {
  // Its hits live on in the classes' retired counters.
  for (uint32_t i = 0; i < c->nclasses; ++i) {
    const uint64_t h = c->cls[i].hits();
    if (h == 0) continue;
    if (class_shared* sh = shared(c->base + i)) {
      spin_lock_guard slock(sh->mu);
      class_shared::add_locked(sh->retired_hits, h);
    }
  }
  if (c->prev != nullptr) {
    c->prev->next = c->next;
  } else {
    caches_ = c->next;
  }
  if (c->next != nullptr) c->next->prev = c->prev;
  c->next = c->prev = nullptr;
}

namespace {
std::atomic<uint64_t> g_next_pass{1};
}  // namespace

void collect_all() noexcept {
  const bool fence_ok = asymmetric_fence_available();
  // Without the fence, idle threads' caches are out of reach; the calling
  // thread at least counts as idle.
  if (!fence_ok) flush_thread_cache_all();
  engine_registry& reg = engine_registry::get();
  const uint64_t pass = g_next_pass.fetch_add(1, std::memory_order_relaxed);
  // 1. Revoke every active engine: a new key, a new cycle.
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    for (engine* e = reg.active; e != nullptr; e = e->active_next_) {
      lock_guard elock(e->mu_);
      e->revoke_locked();
      e->pass_revoked_ = pass;
    }
  }
  // 2. One fence for all of them.
  heavy_fence(fence_ok);
  // 3. Each engine in turn, pinned: age the shared tiers, take what idle
  //    owners hold, free idle caches; then, out of the locks, destroy what
  //    died (which may destroy engines, this one included).
  for (;;) {
    engine* e = nullptr;
    pin_frame f;
    pass_result r;
    {
      std::lock_guard<std::mutex> lock(reg.mu);
      for (e = reg.active; e != nullptr && e->pass_done_ == pass; e = e->active_next_) {
      }
      if (e == nullptr) break;
      e->pass_done_ = pass;
      reg.pin(e, f);
      lock_guard elock(e->mu_);
      // An engine that became active after step 1 gets its cycle now; its
      // caches wait for the next pass (no fence covers this revocation).
      if (e->pass_revoked_ != pass) e->revoke_locked();
      e->collect_pass_locked(fence_ok, &r.dead, &r.to_free);
      // (An engine whose face may not call out now stays listed: its
      // after_collect, the idle reset, waits for a later pass.)
      if (e->caches_ == nullptr && r.to_free == nullptr && r.dead.empty() && e->all_shared_empty_locked() &&
          e->may_call_out()) {
        reg.deactivate(e);
      }
    }
    const engine_client* client = e->client_;
    void* ctx = e->ctx_;
    e->free_caches(r.to_free);
    if (!e->may_call_out()) {
      // From inside an upstream call (a callback of another resource's
      // upstream): this pass only ages; the next one destroys.
      e->keep_as_victims(r.dead.release());
      reg.unpin(f);
      continue;
    }
    engine::destroy_chain(client, ctx, r.dead.release());
    // `e` may be gone now (then f.e == nullptr).
    if (f.e != nullptr && client->after_collect != nullptr) client->after_collect(ctx);
    reg.unpin(f);
  }
}

void engine::keep_as_victims(batch* b) noexcept {
  while (b != nullptr) {
    batch* next = b->next;
    const auto cls = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(b->origin));
    b->next = nullptr;
    b->origin = nullptr;
    if (b->count == 0) {
      free_batch(b);
    } else {
      class_shared* sh = shared(cls);
      spin_lock_guard slock(sh->mu);
      sh->victim.push(b);
      class_shared::add_locked(sh->available, b->count);
    }
    b = next;
  }
}

void engine::keep_collected() noexcept {
  if (active_.load(std::memory_order_relaxed)) return;
  engine_registry& reg = engine_registry::get();
  std::lock_guard<std::mutex> lock(reg.mu);
  if (!closed_) reg.activate(this);
}

void engine::reopen() noexcept {
  std::lock_guard<std::mutex> lock(engine_registry::get().mu);
  closed_ = false;
}

void engine::collect() {
  const bool fence_ok = asymmetric_fence_available();
  if (!fence_ok) flush_this_thread();
  engine_registry& reg = engine_registry::get();
  pin_frame f;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    if (closed_) return;  // release() is giving everything back right now
    reg.pin(this, f);
    lock_guard elock(mu_);
    revoke_locked();
  }
  heavy_fence(fence_ok);
  pass_result r;
  const engine_client* client = client_;
  void* ctx = ctx_;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    lock_guard elock(mu_);
    collect_pass_locked(fence_ok, &r.dead, &r.to_free);
    if (caches_ == nullptr && r.to_free == nullptr && r.dead.empty() && all_shared_empty_locked() && may_call_out()) {
      reg.deactivate(this);
    }
  }
  free_caches(r.to_free);
  if (!may_call_out()) {
    keep_as_victims(r.dead.release());  // as in collect_all()
    reg.unpin(f);
    return;
  }
  destroy_chain(client, ctx, r.dead.release());
  // From here `this` may be gone (an item destroyed above owned it).
  if (f.e != nullptr && client->after_collect != nullptr) client->after_collect(ctx);
  reg.unpin(f);
}

// ---------------------------------------------------------------------------
// engine: drain (release() and destruction)

void engine::drain(bool destroy) {
  // A resource made for one request (pool_resource's young phase) never
  // lists its engine: its destruction takes no global lock here. (Its
  // owner's calls happen before its destruction, activations included.)
  if (!ever_active_.load(std::memory_order_relaxed)) return;
  engine_registry& reg = engine_registry::get();
  batch_list all;
  thread_cache* to_free = nullptr;
  {
    std::unique_lock<std::mutex> lock(reg.mu);
    // Pins this very thread holds (we are destroyed by what our own collect
    // cycle destroys) are taken over, not waited for.
    for (pin_frame* f = t_pins; f != nullptr; f = f->up) {
      if (f->e == this) {
        f->e = nullptr;
        reg.drop_pin(this);
      }
    }
    reg.unpinned.wait(lock, [this] { return pins_ == 0; });
    closed_ = true;
    lock_guard elock(mu_);
    while (thread_cache* c = caches_) {
      detach_slots_locked(c, /*to_victim=*/false, &all);
      unlink_from_owner(c);
      unlink_cache_locked(c);
      c->next = to_free;
      to_free = c;
    }
    for_each_shared([&](uint32_t k, class_shared* sh) {
      // Empty tiers are skipped, as in collect_pass_locked.
      if (sh->idle()) return;
      spin_lock_guard slock(sh->mu);
      batch_list l;
      l.splice(sh->depot);
      l.splice(sh->victim);
      l.splice(sh->spares);
      sh->available.store(0, std::memory_order_relaxed);
      sh->spare_batches.store(0, std::memory_order_relaxed);
      while (batch* b = l.pop()) {
        b->origin = class_tag(k);
        all.push(b);
      }
    });
    // Threads still alive start afresh: their table entries no longer match.
    key_.store(new_key(), std::memory_order_seq_cst);
    reg.deactivate(this);
  }
  const engine_client* client = client_;
  void* ctx = ctx_;
  free_caches(to_free);
  if (destroy) {
    destroy_chain(client, ctx, all.release());
  } else {
    while (batch* b = all.pop()) client->meta_free(ctx, b, batch::bytes_for(b->capacity), kMetaAlignment);
  }
}

// ---------------------------------------------------------------------------
// engine: stats

engine_stats engine::class_stats(uint32_t cls) const {
  engine_stats s;
  std::lock_guard<std::mutex> rlock(registry_mutex());
  lock_guard lock(mu_);
  if (const class_shared* sh = shared(cls)) {
    s.local_hits = sh->retired_hits.load(std::memory_order_relaxed);
    s.stolen = sh->stolen.load(std::memory_order_relaxed);
    s.victim_hits = sh->victim_hits.load(std::memory_order_relaxed);
    s.misses = sh->misses.load(std::memory_order_relaxed);
    s.cached = sh->available.load(std::memory_order_relaxed);
  }
  for (const thread_cache* c = caches_; c != nullptr; c = c->next) {
    const uint32_t i = cls - c->base;
    if (i >= c->nclasses) continue;
    s.local_hits += c->cls[i].hits();
    s.cached += c->cls[i].count();
  }
  s.reaches_idle_threads = asymmetric_fence_available();
  return s;
}

engine_stats engine::stats() const {
  engine_stats s;
  uint32_t classes[kMaxClasses];
  const uint32_t n = client_->classes_in_use(ctx_, classes);
  for (uint32_t i = 0; i < n; ++i) s += class_stats(classes[i]);
  std::lock_guard<std::mutex> rlock(registry_mutex());
  lock_guard lock(mu_);
  s.thread_caches = 0;
  for (const thread_cache* c = caches_; c != nullptr; c = c->next) ++s.thread_caches;
  s.reaches_idle_threads = asymmetric_fence_available();
  return s;
}

// ---------------------------------------------------------------------------
// Whole-process operations

void flush_thread_cache_all() noexcept {
  thread_state& t = t_thread;
  // (t.owned is read under the registry lock only: collectors unlink
  // caches from it.)
  engine_registry& reg = engine_registry::get();
  // One engine at a time, pinned so that it outlives the flush (which may
  // ask upstream for memory, out of every lock). We stay inside a critical
  // section throughout, so that no collector frees one of our caches (a
  // flushed one is empty) while we walk the list through it.
  const uint32_t depth = engine::enter(t);
  std::unique_lock<std::mutex> lock(reg.mu);
  for (thread_cache* c = t.owned; c != nullptr;) {
    engine* e = c->eng;
    pin_frame f;
    reg.pin(e, f);
    lock.unlock();
    e->flush_this_thread();
    lock.lock();
    thread_cache* next = c->tnext;
    reg.unpin_locked(f);
    reg.unpinned.notify_all();
    c = next;
  }
  lock.unlock();
  engine::leave(t, depth);
}

void engine_registry::reset_after_fork(rank r) noexcept {
  if (r != rank::engines) return;
  renew_after_fork(fences().mu);
  renew_after_fork(mu);
  new (&unpinned) std::condition_variable();
  // Ask the kernel again for membarrier in the new process.
  membarrier_state().store(-1, std::memory_order_relaxed);
  thread_state& t = t_thread;
  for (engine* e = active; e != nullptr; e = e->active_next_) {
    e->mu_.reset_after_fork();
    if (e->nclasses_ == 1) e->shared(0)->mu.reset_after_fork();  // others: rank blocks, reset already
    // The caches of threads that do not exist here are handed over as if
    // those threads had exited, if they were consistent at fork() time: an
    // owner inside a critical section may have been half-way through
    // changing its cache, which is then left alone (its items are lost to
    // this process, a few KiB per thread at most). Their thread lists live
    // in the dead threads' TLS: cut them loose without writing to it.
    for (thread_cache* c = e->caches_; c != nullptr;) {
      thread_cache* next = c->next;
      if (c->owner != nullptr && c->owner != &t) {
        if (c->owner->busy()) {
          e->unlink_cache_locked(c);
        } else {
          e->hand_over_locked(c);
        }
        c->owner = nullptr;
        c->tnext = c->tprev = nullptr;
      }
      c = next;
    }
  }
  // The collectors that pinned engines do not exist here, active engines
  // or not (a member collect() pins its engine either way; collect() takes
  // an engine off the active list before it lets go of it): only this
  // thread's pins stand, or release() and the destructor would wait for
  // them forever.
  while (engine* e = pinned) {
    pinned = e->pinned_next_;
    e->pins_ = 0;
    e->pinned_next_ = nullptr;
  }
  for (pin_frame* f = t_pins; f != nullptr; f = f->up) {
    if (f->e != nullptr) add_pin(f->e);
  }
}

// ---------------------------------------------------------------------------
// testing_hooks

uint64_t testing_hooks::next_engine_key() noexcept { return g_next_key.load(std::memory_order_relaxed); }

void testing_hooks::set_next_engine_key(uint64_t key) noexcept {
  g_next_key.store(key, std::memory_order_relaxed);
}

uint64_t testing_hooks::key_of(const engine& e) noexcept { return e.key_.load(std::memory_order_relaxed); }

void testing_hooks::set_cycle(engine& e, uint64_t cycle) noexcept {
  std::lock_guard<std::mutex> rlock(engine_registry::get().mu);
  lock_guard lock(e.mu_);
  const uint64_t delta = cycle - e.cycle_;
  e.cycle_ = cycle;
  for (thread_cache* c = e.caches_; c != nullptr; c = c->next) {
    c->aged_cycle += delta;
    c->active_cycle += delta;
  }
}

uint64_t testing_hooks::thread_budget(const engine& e) noexcept {
  const uint64_t key = e.key_.load(std::memory_order_relaxed);
  tls_entry& entry = entry_for(t_table, key);
  if (entry.key.load(std::memory_order_relaxed) != key) return 0;
  return entry.cache.load(std::memory_order_relaxed)->budget;
}

uint64_t testing_hooks::growth_granted(const engine& e) noexcept {
  return e.growth_granted_.load(std::memory_order_relaxed);
}

void testing_hooks::pretend_no_membarrier(bool on) noexcept {
  g_pretend_no_membarrier.store(on, std::memory_order_relaxed);
}

}  // namespace internal
}  // namespace syncpool
