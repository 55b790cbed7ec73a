// The slow paths of the pool engine: registration of threads and engines,
// spilling and refilling between tiers, stealing, aging, thread exit.
//
// Lock order: registry mutex -> engine::mu_ -> cache_record::mu.
// No user code (engine_client::destroy) ever runs while any of them is held:
// what is destroyed is detached first, so that a destructor may re-enter the
// engine (get, put, collect, flush) and find it consistent.

#include "syncpool/internal/engine.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <new>
#include <vector>

#include "fork.h"

namespace syncpool {
namespace internal {

// ---------------------------------------------------------------------------
// batch and batch_list

namespace {

batch* make_batch(uint32_t capacity) noexcept {
  const size_t bytes = offsetof(batch, items) + sizeof(void*) * std::max<uint32_t>(capacity, 1);
  void* mem = ::operator new(bytes, std::nothrow);
  if (mem == nullptr) return nullptr;
  batch* b = static_cast<batch*>(mem);
  b->next = nullptr;
  b->count = 0;
  b->capacity = capacity;
  return b;
}

void free_batch(batch* b) noexcept { ::operator delete(static_cast<void*>(b)); }

}  // namespace

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

void* batch_list::pop_one() noexcept {
  while (head_ != nullptr && head_->count == 0) free_batch(pop());
  if (head_ == nullptr) return nullptr;
  --size_;
  void* obj = head_->items[--head_->count];
  if (head_->count == 0) free_batch(pop());
  return obj;
}

batch* batch_list::release() noexcept {
  batch* b = head_;
  head_ = tail_ = nullptr;
  size_ = 0;
  return b;
}

// ---------------------------------------------------------------------------
// The registry of live engines and the per-thread tables.

// A collector's pin on an engine, on the collecting thread's stack. An
// engine destroyed by what its own collect cycle destroys (an object that
// owned its pool) finds the pin here, takes it over instead of waiting for
// it, and clears `e` so that the collector does not touch it again.
struct pin_frame {
  engine* e;
  pin_frame* up;
};

namespace {
thread_local constinit pin_frame* t_pins = nullptr;
}  // namespace

struct engine_registry final : fork_participant {
  std::mutex mu;
  std::condition_variable unpinned;
  std::vector<engine*> engines;  // by id; nullptr where free
  std::vector<uint32_t> free_ids;
  uint64_t next_serial = 1;

  engine_registry() : fork_participant(rank::engines) {}

  static engine_registry& get() {
    // Never destroyed: threads and static pools may outlive any destructor
    // order we could pick.
    static engine_registry* r = [] {
      auto* reg = new engine_registry;
      reg->enlist();
      return reg;
    }();
    return *r;
  }

  // Pins `e` for the calling thread (registry lock held).
  void pin(engine* e, pin_frame& f) {
    ++e->pins_;
    f = pin_frame{e, t_pins};
    t_pins = &f;
  }
  // Drops the pin unless the engine died meanwhile and took it over.
  void unpin(pin_frame& f) {
    {
      std::lock_guard<std::mutex> lock(mu);
      t_pins = f.up;
      if (f.e != nullptr) --f.e->pins_;
    }
    unpinned.notify_all();
  }

  // fork(): registry, then each engine, then each of its records.
  void lock_for_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    mu.lock();
    for (engine* e : engines) {
      if (e == nullptr) continue;
      e->mu_.lock();
      for (cache_record* r = e->records_; r != nullptr; r = r->next) r->mu.lock();
    }
  }
  void unlock_after_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    for (engine* e : engines) {
      if (e == nullptr) continue;
      for (cache_record* r = e->records_; r != nullptr; r = r->next) r->mu.unlock();
      e->mu_.unlock();
    }
    mu.unlock();
  }
  void reset_after_fork() noexcept override ABSL_NO_THREAD_SAFETY_ANALYSIS {
    new (&mu) std::mutex();
    new (&unpinned) std::condition_variable();
    for (engine* e : engines) {
      if (e == nullptr) continue;
      e->mu_.reset_after_fork();
      for (cache_record* r = e->records_; r != nullptr; r = r->next) r->mu.reset_after_fork();
      // Pins of collectors that do not exist here are gone; this thread's
      // own (fork() from a collect callback) are counted again below.
      e->pins_ = 0;
      e->adopt_records_of_absent_threads();
    }
    for (pin_frame* f = t_pins; f != nullptr; f = f->up) {
      if (f->e != nullptr) ++f->e->pins_;
    }
  }
};

namespace {

// Set once a thread has handed its records over at exit: from then on its
// calls go to the engines' shared tiers.
thread_local constinit bool t_exited = false;

struct thread_exit_hook {
  ~thread_exit_hook() { release_this_thread(); }
};

// Makes sure t_records has a slot for engine `id`. False when the thread is
// exiting or out of memory.
bool reserve_record_slot(uint32_t id) noexcept {
  if (ABSL_PREDICT_FALSE(t_exited)) return false;
  if (t_records == nullptr) {
    // Constructing the hook registers its destructor for this thread's exit.
    static thread_local thread_exit_hook hook;
    (void)hook;
  }
  if (id < t_record_count) return true;
  const uint32_t size = std::max<uint32_t>(id + 1, t_record_count * 2);
  auto** grown = new (std::nothrow) cache_record*[size]();
  if (grown == nullptr) return false;
  if (t_record_count != 0) std::memcpy(grown, t_records, sizeof(cache_record*) * t_record_count);
  delete[] t_records;
  t_records = grown;
  t_record_count = size;
  return true;
}

void free_record(cache_record* r) noexcept {
  if (r->slot_batch != nullptr) free_batch(r->slot_batch);
  while (batch* b = r->spares) {
    r->spares = b->next;
    free_batch(b);
  }
  delete r;
}

}  // namespace

void release_this_thread() noexcept {
  if (t_exited) return;
  engine_registry& reg = engine_registry::get();
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    for (uint32_t i = 0; i < t_record_count; ++i) {
      cache_record* r = t_records[i];
      if (r == nullptr) continue;
      if (r->owner_engine != nullptr) r->owner_engine->adopt(r);
      free_record(r);
      t_records[i] = nullptr;
    }
  }
  delete[] t_records;
  t_records = nullptr;
  t_record_count = 0;
  t_exited = true;
}

// ---------------------------------------------------------------------------
// engine: construction, destruction

engine::engine(engine_client client, engine_config config)
    : client_(client),
      capacity_(std::max<uint32_t>(config.local_capacity, 1)),
      // A spill moves three quarters of the slots: fewer trips to the shared
      // tier than halves, and still room on both sides against ping-pong.
      batch_size_(std::max<uint32_t>(capacity_ - capacity_ / 4, 1)) {
  engine_registry& reg = engine_registry::get();
  std::lock_guard<std::mutex> lock(reg.mu);
  if (!reg.free_ids.empty()) {
    id_ = reg.free_ids.back();
    reg.free_ids.pop_back();
    reg.engines[id_] = this;
  } else {
    id_ = static_cast<uint32_t>(reg.engines.size());
    reg.engines.push_back(this);
  }
  serial_ = reg.next_serial++;
}

engine::~engine() { destroy_chain(client_, quiesce_and_take_all(/*unregister=*/true)); }

batch* engine::quiesce_and_take_all(bool unregister) noexcept {
  engine_registry& reg = engine_registry::get();
  // Under the registry lock throughout: a collector that aged this engine
  // has finished destroying what it took (pins_ == 0), none can start before
  // we have taken everything, and a thread exiting now either hands its
  // record over first or finds it orphaned.
  std::unique_lock<std::mutex> lock(reg.mu);
  // Pins this very thread holds (we are being destroyed by what one of our
  // own collect cycles destroys) are taken over, not waited for.
  for (pin_frame* f = t_pins; f != nullptr; f = f->up) {
    if (f->e == this) {
      f->e = nullptr;
      --pins_;
    }
  }
  reg.unpinned.wait(lock, [this] { return pins_ == 0; });
  lock_guard elock(mu_);
  batch* all = take_all_locked();
  if (unregister) {
    reg.engines[id_] = nullptr;
    reg.free_ids.push_back(id_);
    // The records stay in their owners' tables until an owner comes back
    // for the id or exits, but they are husks: no slots, no spares, and an
    // epoch that never matches, so no engine that takes the id next can be
    // served by them, however its counters compare with ours.
    for (cache_record* r = records_; r != nullptr; r = r->next) {
      r->owner_engine = nullptr;
      r->epoch_seen = cache_record::kDeadEpoch;
      r->capacity.store(0, std::memory_order_relaxed);
      r->slots = nullptr;
      if (r->slot_batch != nullptr) free_batch(r->slot_batch);
      r->slot_batch = nullptr;
      while (batch* b = r->spares) {
        r->spares = b->next;
        free_batch(b);
      }
      r->spare_count = 0;
    }
    records_ = nullptr;
  }
  return all;
}

void engine::destroy_chain(engine_client client, batch* b) noexcept {
  while (b != nullptr) {
    batch* next = b->next;
    if (b->count != 0) client.destroy(client.ctx, b->items, b->count);
    free_batch(b);
    b = next;
  }
}

// ---------------------------------------------------------------------------
// engine: per-thread records

cache_record* engine::existing_record() const noexcept {
  if (id_ >= t_record_count) return nullptr;
  cache_record* r = t_records[id_];
  if (r == nullptr || r->owner_engine != this || r->engine_serial != serial_) return nullptr;
  return r;
}

cache_record* engine::this_thread_record() {
  if (!reserve_record_slot(id_)) return nullptr;
  cache_record* r = t_records[id_];
  if (r != nullptr && r->owner_engine == this && r->engine_serial == serial_) {
    return ensure_slots(r) ? r : nullptr;
  }
  if (r != nullptr) {
    // Left behind by a destroyed engine that had our id; it holds nothing.
    free_record(r);
    t_records[id_] = nullptr;
  }
  r = new (std::nothrow) cache_record;
  if (r == nullptr) return nullptr;
  r->slot_batch = make_batch(capacity_);
  if (r->slot_batch == nullptr) {
    delete r;
    return nullptr;
  }
  r->slots = r->slot_batch->items;
  r->capacity.store(capacity_, std::memory_order_relaxed);
  r->owner_engine = this;
  r->engine_serial = serial_;
  {
    lock_guard lock(mu_);
    r->epoch_seen = epoch_.load(std::memory_order_relaxed);
    r->next = records_;
    if (records_ != nullptr) records_->prev = r;
    records_ = r;
  }
  t_records[id_] = r;
  return r;
}

namespace {
constexpr uint32_t kMaxSpares = 2;
}  // namespace

batch* engine::take_spare(cache_record* r) noexcept {
  batch* b = r->spares;
  if (b == nullptr) return make_batch(capacity_);
  r->spares = b->next;
  --r->spare_count;
  b->next = nullptr;
  return b;
}

void engine::give_spare(cache_record* r, batch* b) noexcept {
  // Only a full-size batch may serve: spill() and take_slots() fill it with
  // up to capacity_ objects. (Batches of exiting threads hold one object.)
  if (b->capacity != capacity_ || r->spare_count == kMaxSpares) {
    free_batch(b);
    return;
  }
  b->count = 0;
  b->next = r->spares;
  r->spares = b;
  ++r->spare_count;
}

batch* engine::take_slots(cache_record* r) noexcept {
  const uint32_t n = r->count.load(std::memory_order_relaxed);
  if (n == 0) return nullptr;
  batch* old = r->slot_batch;
  old->count = n;
  batch* fresh = take_spare(r);
  r->slot_batch = fresh;
  r->slots = fresh != nullptr ? fresh->items : nullptr;
  r->capacity.store(fresh != nullptr ? capacity_ : 0, std::memory_order_relaxed);
  r->count.store(0, std::memory_order_relaxed);
  return old;
}

bool engine::ensure_slots(cache_record* r) noexcept {
  if (ABSL_PREDICT_TRUE(r->slot_batch != nullptr)) return true;
  batch* b = take_spare(r);
  if (b == nullptr) return false;
  r->slot_batch = b;
  r->slots = b->items;
  r->capacity.store(capacity_, std::memory_order_relaxed);
  return true;
}

void engine::sync_epoch(cache_record* r, bool may_destroy) noexcept {
  if (ABSL_PREDICT_TRUE(r->epoch_seen == epoch_.load(std::memory_order_acquire))) return;
  batch* dead = nullptr;
  {
    lock_guard lock(mu_);
    const uint64_t now = epoch_.load(std::memory_order_relaxed);
    const uint64_t missed = now - r->epoch_seen;
    r->epoch_seen = now;
    batch* old = take_slots(r);
    if (old == nullptr) return;
    if (missed == 1 || !may_destroy) {
      // One cycle passed since these were primary: they are victims now.
      victim_.push(old);
      return;
    }
    dead = old;
  }
  // Detached and the record consistent: a destructor may re-enter.
  destroy_chain(client_, dead);
}

bool engine::spill(cache_record* r) noexcept {
  batch* b = take_spare(r);
  if (b == nullptr) return false;
  // The oldest objects leave; the newest (warmest in cache) stay private.
  const uint32_t n = r->count.load(std::memory_order_relaxed);
  const uint32_t moved = std::min(batch_size_, n);
  std::memcpy(b->items, r->slots, sizeof(void*) * moved);
  std::memmove(r->slots, r->slots + moved, sizeof(void*) * (n - moved));
  b->count = moved;
  r->count.store(n - moved, std::memory_order_relaxed);
  spin_lock_guard lock(r->mu);
  r->shared.push(b);
  r->shared_hint.store(r->shared.size(), std::memory_order_relaxed);
  return true;
}

void engine::refill(cache_record* r, batch* b) noexcept {
  // The caller found r's slots empty.
  std::memcpy(r->slots, b->items, sizeof(void*) * b->count);
  r->count.store(b->count, std::memory_order_relaxed);
  give_spare(r, b);
}

// ---------------------------------------------------------------------------
// engine: slow paths of get and put

void* engine::get_slow() {
  cache_record* r = this_thread_record();
  if (r != nullptr) {
    sync_epoch(r, /*may_destroy=*/true);
    // What sync_epoch destroyed may have re-entered and used the slots
    // (taken the spares, say): the record must still have an array.
    if (!ensure_slots(r)) r = nullptr;
  }
  if (ABSL_PREDICT_FALSE(r == nullptr)) {
    // An exiting thread (or no memory for a record): shared tiers only.
    lock_guard lock(mu_);
    void* obj = orphans_.pop_one();
    if (obj != nullptr) {
      ++retired_.stolen;
      return obj;
    }
    obj = victim_.pop_one();
    if (obj != nullptr) {
      ++retired_.victim_hits;
    } else {
      ++retired_.misses;
    }
    return obj;
  }

  auto pop = [r] {
    const uint32_t n = r->count.load(std::memory_order_relaxed) - 1;
    r->count.store(n, std::memory_order_relaxed);
    return r->slots[n];
  };
  if (r->count.load(std::memory_order_relaxed) != 0) {
    r->local_hits.bump();
    return pop();
  }

  // 2. Our own shared queue.
  if (r->shared_hint.load(std::memory_order_relaxed) != 0) {
    batch* b;
    {
      spin_lock_guard lock(r->mu);
      b = r->shared.pop();
      r->shared_hint.store(r->shared.size(), std::memory_order_relaxed);
    }
    if (b != nullptr && b->count != 0) {
      refill(r, b);
      r->local_hits.bump();
      return pop();
    }
    if (b != nullptr) free_batch(b);
  }

  // 3. Other threads' shared queues, then orphans of exited threads;
  // 4. only then the victim, so that victims age out (as Go does).
  batch* b = nullptr;
  void* obj = nullptr;
  {
    lock_guard lock(mu_);
    for (cache_record* q = records_; q != nullptr && b == nullptr; q = q->next) {
      if (q == r || q->shared_hint.load(std::memory_order_relaxed) == 0) continue;
      spin_lock_guard qlock(q->mu);
      b = q->shared.pop();
      q->shared_hint.store(q->shared.size(), std::memory_order_relaxed);
      if (b != nullptr && b->count == 0) {
        free_batch(b);
        b = nullptr;
      }
    }
    if (b == nullptr) {
      while ((b = orphans_.pop()) != nullptr && b->count == 0) free_batch(b);
    }
    if (b == nullptr) obj = victim_.pop_one();
  }
  if (b != nullptr) {
    refill(r, b);
    r->stolen.bump();
    return pop();
  }
  if (obj != nullptr) {
    r->victim_hits.bump();
  } else {
    r->misses.bump();
  }
  return obj;
}

void engine::put_slow(void* obj) noexcept {
  cache_record* r = this_thread_record();
  if (r != nullptr) {
    sync_epoch(r, /*may_destroy=*/true);
    if (!ensure_slots(r)) r = nullptr;
  }
  if (ABSL_PREDICT_FALSE(r == nullptr)) {
    batch* b = make_batch(1);
    if (b == nullptr) {
      client_.destroy(client_.ctx, &obj, 1);
      return;
    }
    b->items[0] = obj;
    b->count = 1;
    lock_guard lock(mu_);
    orphans_.push(b);
    return;
  }
  if (r->count.load(std::memory_order_relaxed) == capacity_ && !spill(r)) {
    client_.destroy(client_.ctx, &obj, 1);
    return;
  }
  const uint32_t n = r->count.load(std::memory_order_relaxed);
  r->slots[n] = obj;
  r->count.store(n + 1, std::memory_order_relaxed);
}

void engine::put_many(void* const* objs, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i) put(objs[i]);
}

// ---------------------------------------------------------------------------
// engine: aging, draining, thread hand-over, flushing

void engine::age(bool flush_caller) {
  engine_registry& reg = engine_registry::get();
  pin_frame f;
  {
    std::lock_guard<std::mutex> lock(reg.mu);
    reg.pin(this, f);
  }
  age_pinned(flush_caller);
  reg.unpin(f);
}

void engine::age_pinned(bool flush_caller) noexcept {
  // Pinned: drain() and the destructor wait for us, so the caller's slots
  // may be moved even while release() runs on another thread.
  if (flush_caller) {
    if (cache_record* r = existing_record()) flush_record(r, /*may_destroy=*/false);
  }
  const engine_client client = client_;
  batch* dead;
  {
    lock_guard lock(mu_);
    dead = victim_.release();
    victim_.splice(orphans_);
    for (cache_record* r = records_; r != nullptr; r = r->next) {
      spin_lock_guard rlock(r->mu);
      victim_.splice(r->shared);
      r->shared_hint.store(0, std::memory_order_relaxed);
    }
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // From here on `this` may be destroyed by what we destroy.
  destroy_chain(client, dead);
}

batch* engine::take_all_locked() noexcept {
  batch_list all;
  all.splice(victim_);
  all.splice(orphans_);
  for (cache_record* r = records_; r != nullptr; r = r->next) {
    {
      spin_lock_guard rlock(r->mu);
      all.splice(r->shared);
      r->shared_hint.store(0, std::memory_order_relaxed);
    }
    // Other threads' slots: the caller guarantees they are not in use.
    if (batch* old = take_slots(r)) all.push(old);
  }
  return all.release();
}

void engine::drain(bool destroy) {
  batch* b = quiesce_and_take_all(/*unregister=*/false);
  if (destroy) {
    destroy_chain(client_, b);
    return;
  }
  while (b != nullptr) {
    batch* next = b->next;
    free_batch(b);
    b = next;
  }
}

void engine::adopt(cache_record* r) noexcept {
  lock_guard lock(mu_);
  const uint64_t now = epoch_.load(std::memory_order_relaxed);
  const uint32_t n = r->count.load(std::memory_order_relaxed);
  if (n != 0) {
    r->slot_batch->count = n;
    // Slots that missed a cycle are victims already; fresh ones stay primary.
    (now == r->epoch_seen ? orphans_ : victim_).push(r->slot_batch);
    r->slot_batch = nullptr;
    r->slots = nullptr;
    r->capacity.store(0, std::memory_order_relaxed);
    r->count.store(0, std::memory_order_relaxed);
  }
  {
    spin_lock_guard rlock(r->mu);
    orphans_.splice(r->shared);
    r->shared_hint.store(0, std::memory_order_relaxed);
  }
  retired_.local_hits += r->local_hits.get();
  retired_.stolen += r->stolen.get();
  retired_.victim_hits += r->victim_hits.get();
  retired_.misses += r->misses.get();
  if (r->prev != nullptr) r->prev->next = r->next;
  if (r->next != nullptr) r->next->prev = r->prev;
  if (records_ == r) records_ = r->next;
  r->prev = r->next = nullptr;
  r->owner_engine = nullptr;
}

void engine::flush_record(cache_record* r, bool may_destroy) noexcept {
  sync_epoch(r, may_destroy);
  batch* old = take_slots(r);
  if (old == nullptr) return;
  spin_lock_guard lock(r->mu);
  r->shared.push(old);
  r->shared_hint.store(r->shared.size(), std::memory_order_relaxed);
}

void engine::flush_this_thread() noexcept {
  if (cache_record* r = existing_record()) flush_record(r, /*may_destroy=*/true);
}

void engine::adopt_records_of_absent_threads() noexcept {
  for (cache_record* r = records_; r != nullptr;) {
    cache_record* next = r->next;
    // This thread's records are in its table; every other thread is gone.
    if (existing_record() != r) {
      adopt(r);
      free_record(r);
    }
    r = next;
  }
}

engine_stats engine::stats() const {
  lock_guard lock(mu_);
  engine_stats s = retired_;
  s.cached = victim_.size() + orphans_.size();
  for (const cache_record* r = records_; r != nullptr; r = r->next) {
    s.local_hits += r->local_hits.get();
    s.stolen += r->stolen.get();
    s.victim_hits += r->victim_hits.get();
    s.misses += r->misses.get();
    s.cached += r->count.load(std::memory_order_relaxed) +
                r->shared_hint.load(std::memory_order_relaxed);
  }
  return s;
}

// ---------------------------------------------------------------------------
// testing_hooks

uint64_t testing_hooks::next_engine_serial() noexcept {
  engine_registry& reg = engine_registry::get();
  std::lock_guard<std::mutex> lock(reg.mu);
  return reg.next_serial;
}

void testing_hooks::set_next_engine_serial(uint64_t serial) noexcept {
  engine_registry& reg = engine_registry::get();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.next_serial = serial;
}

void testing_hooks::set_epoch(engine& e, uint64_t epoch) noexcept {
  lock_guard lock(e.mu_);
  // The records see a jump of several cycles, as after a long idle spell.
  e.epoch_.store(epoch, std::memory_order_release);
}

// ---------------------------------------------------------------------------
// Whole-process operations

void flush_thread_cache_all() noexcept {
  if (t_record_count == 0) return;
  engine_registry& reg = engine_registry::get();
  // The registry lock keeps every engine we look at alive.
  std::lock_guard<std::mutex> lock(reg.mu);
  for (uint32_t i = 0; i < t_record_count; ++i) {
    cache_record* r = t_records[i];
    if (r == nullptr || r->owner_engine == nullptr) continue;
    r->owner_engine->flush_record(r, /*may_destroy=*/false);
  }
}

void collect_all() noexcept {
  // The collecting thread counts as idle: its own slots join the shared
  // tier first, so this cycle turns them into victims like everyone's.
  flush_thread_cache_all();
  engine_registry& reg = engine_registry::get();
  // One engine pinned at a time: destroying an object may destroy another
  // pool (an object that owns one), whose destructor waits for its pins.
  for (std::size_t id = 0;; ++id) {
    engine* e = nullptr;
    pin_frame f;
    {
      std::lock_guard<std::mutex> lock(reg.mu);
      if (id >= reg.engines.size()) break;
      e = reg.engines[id];
      if (e == nullptr) continue;
      reg.pin(e, f);
    }
    e->age_pinned(/*flush_caller=*/false);
    reg.unpin(f);
  }
}

}  // namespace internal
}  // namespace syncpool
