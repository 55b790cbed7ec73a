#include "resource_parts.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace syncpool {
namespace internal {

// ---------------------------------------------------------------------------
// meta_arena

// Buckets in steps of 16 bytes up to 256, of 64 up to 1024 and of 256 up
// to kLargest: above 64 bytes and at alignments up to 16, at most a fifth
// of a bucket is waste.
// Power-of-two buckets wasted about 40% of the arena. Its commonest objects
// are a batch header plus a power-of-two item count (64 items: 536 bytes,
// which took a 1 KiB bucket), and those slot arrays are most of what a
// parked thread costs. A size is first rounded up to its alignment, so that
// every block of a bucket has the alignment its size implies (the lowest
// set bit, capped at 64): blocks are reused across requests.
std::size_t meta_arena::bucket_bytes(std::size_t bytes, std::size_t alignment) noexcept {
  const std::size_t align = std::max<std::size_t>(alignment, 16);
  const std::size_t size = (std::max<std::size_t>(bytes, 16) + align - 1) & ~(align - 1);
  const std::size_t step = size <= 256 ? 16 : size <= 1024 ? 64 : size <= kLargest ? 256 : 64;
  return (size + step - 1) & ~(step - 1);
}

bool inside_locked_upstream_call() noexcept { return serialized_upstream::inside_a_call(); }

int meta_arena::bucket_index(std::size_t size) noexcept {
  if (size <= 256) return static_cast<int>(size / 16) - 1;
  if (size <= 1024) return 15 + static_cast<int>((size - 256) / 64);
  return 27 + static_cast<int>((size - 1024) / 256);
}

void* meta_arena::allocate(serialized_upstream& up, std::size_t bytes, std::size_t alignment) noexcept {
  try {
    return allocate_or_throw(up, bytes, alignment);
  } catch (...) {
    return nullptr;
  }
}

void* meta_arena::allocate_or_throw(serialized_upstream& up, std::size_t bytes, std::size_t alignment) {
  const std::size_t size = bucket_bytes(bytes, alignment);
  if (size > kLargest) {
    // One upstream block each, listed so that detach() finds them.
    void* mem = up.allocate(size + kLargeHeader, 64);  // may throw: nothing changed yet
    bytes_.fetch_add(size + kLargeHeader, std::memory_order_relaxed);
    auto* s = static_cast<slab*>(mem);
    s->bytes = size + kLargeHeader;
    poison(static_cast<char*>(mem) + kLargeHeader + bytes, size - bytes);  // overruns show under ASan
    spin_lock_guard lock(mu_);
    s->prev = nullptr;
    s->next = large_;
    if (large_ != nullptr) large_->prev = s;
    large_ = s;
    ++allocations_;
    return static_cast<char*>(mem) + kLargeHeader;
  }
  const int b = bucket_index(size);
  const std::size_t align = std::min<std::size_t>(size & (~size + 1), 64);
  for (;;) {
    uint32_t want;
    {
      spin_lock_guard lock(mu_);
      if (void* p = free_ != nullptr ? free_[b] : nullptr) {
        unpoison(p, sizeof(void*));
        std::memcpy(&free_[b], p, sizeof(void*));
        unpoison(p, bytes);
        ++allocations_;
        return p;
      }
      const auto at = (reinterpret_cast<uintptr_t>(bump_) + align - 1) & ~(uintptr_t{align} - 1);
      if (bump_ != nullptr && at + size <= reinterpret_cast<uintptr_t>(end_)) {
        bump_ = reinterpret_cast<char*>(at + size);
        // Under ASan, what the arena holds is poisoned but for what it
        // handed out: an object that runs past its size is reported.
        unpoison(reinterpret_cast<void*>(at), bytes);
        ++allocations_;
        return reinterpret_cast<void*>(at);
      }
      want = next_slab_;
    }
    // A new slab, out of our lock (upstream may call back into syncpool).
    // Objects align within it. May throw: nothing changed yet.
    void* mem = up.allocate(want, alignof(std::max_align_t));
    bytes_.fetch_add(want, std::memory_order_relaxed);
    spin_lock_guard lock(mu_);
    auto* s = static_cast<slab*>(mem);
    s->next = slabs_;
    s->prev = nullptr;
    s->bytes = want;
    slabs_ = s;
    poison(static_cast<char*>(mem) + sizeof(slab), want - sizeof(slab));
    bump_ = static_cast<char*>(mem) + sizeof(slab);
    end_ = static_cast<char*>(mem) + want;
    if (free_ == nullptr) {
      // The first slab (or the first since detach()); a slab is at least
      // 1 KiB, so the heads fit.
      static_assert(sizeof(slab) + kHeadsBytes < 1024);
      unpoison(bump_, kHeadsBytes);
      free_ = reinterpret_cast<void**>(bump_);
      std::fill_n(free_, kBuckets, nullptr);
      bump_ += kHeadsBytes;
    }
    next_slab_ = std::min<uint32_t>(next_slab_ * 2, 16384);
  }
}

void meta_arena::deallocate(serialized_upstream& up, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  const std::size_t size = bucket_bytes(bytes, alignment);
  if (size > kLargest) {
    auto* s = reinterpret_cast<slab*>(static_cast<char*>(p) - kLargeHeader);
    {
      spin_lock_guard lock(mu_);
      if (s->prev != nullptr) {
        s->prev->next = s->next;
      } else {
        large_ = s->next;
      }
      if (s->next != nullptr) s->next->prev = s->prev;
    }
    unpoison(s, s->bytes);
    up.deallocate(s, s->bytes, 64);
    bytes_.fetch_sub(size + kLargeHeader, std::memory_order_relaxed);
    return;
  }
  const int b = bucket_index(size);
  spin_lock_guard lock(mu_);
#ifdef SYNCPOOL_ASAN
  if (__asan_address_is_poisoned(p)) {
    std::fprintf(stderr, "syncpool: bookkeeping at %p (%zu bytes) freed twice\n", p, size);
    __asan_report_error(__builtin_return_address(0), nullptr, nullptr, p, true, 1);
  }
#endif
  unpoison(p, sizeof(void*));
  std::memcpy(p, &free_[b], sizeof(void*));
  poison(p, size);  // the link too: a second free is caught above
  free_[b] = p;
}

meta_arena::detached meta_arena::detach() noexcept {
  spin_lock_guard lock(mu_);
  detached d{slabs_, large_};
  slabs_ = large_ = nullptr;
  bump_ = end_ = nullptr;
  free_ = nullptr;  // they were in a slab
  next_slab_ = 1024;
  bytes_.store(0, std::memory_order_relaxed);
  return d;
}

void meta_arena::free_detached(serialized_upstream& up, detached d) noexcept {
  // Slabs were taken with the default alignment, large blocks with 64.
  for (auto [list, alignment] : {std::pair{d.slabs, alignof(std::max_align_t)}, std::pair{d.large, std::size_t{64}}}) {
    while (list != nullptr) {
      slab* next = list->next;
      unpoison(list, list->bytes);  // upstream owns it again
      up.deallocate(list, list->bytes, alignment);
      list = next;
    }
  }
}

// ---------------------------------------------------------------------------
// direct_set

direct_set::entry* direct_set::find_locked(void* p) {
  if (table_ == nullptr) return nullptr;
  const uint32_t mask = capacity_ - 1;
  uint32_t i = static_cast<uint32_t>((reinterpret_cast<uintptr_t>(p) >> 4) * 0x9E3779B1u) & mask;
  for (uint32_t probes = 0; probes < capacity_; ++probes, i = (i + 1) & mask) {
    if (table_[i].p == p) return &table_[i];
    if (table_[i].p == nullptr) return nullptr;
  }
  return nullptr;
}

void direct_set::insert_locked(const entry& e) {
  const uint32_t mask = capacity_ - 1;
  uint32_t i = static_cast<uint32_t>((reinterpret_cast<uintptr_t>(e.p) >> 4) * 0x9E3779B1u) & mask;
  while (table_[i].p != nullptr && table_[i].p != kTombstone) i = (i + 1) & mask;
  if (table_[i].p == nullptr) ++used_;
  table_[i] = e;
}

void* direct_set::allocate(serialized_upstream& up, meta_arena& arena, std::size_t bytes, std::size_t alignment,
                           bool request) {
  // Upstream sees the request first, unchanged; only then its record.
  void* p = up.allocate(bytes, alignment);  // may throw: nothing changed yet
  for (;;) {
    uint32_t want = 0;
    entry* seen = nullptr;
    {
      spin_lock_guard lock(mu_);
      if (table_ != nullptr && (used_ + 1) * 2 <= capacity_) {
        insert_locked(entry{p, bytes, alignment});
        ++entries_;
        break;
      }
      // Full of live entries: double; full of tombstones: rehash in place.
      want = capacity_ == 0 ? 8 : (entries_ + 1) * 4 > capacity_ ? capacity_ * 2 : capacity_;
      seen = table_;
    }
    // What upstream throws for the record's memory is what the request
    // throws (a request no class serves throws only what upstream throws).
    entry* fresh;
    try {
      fresh = static_cast<entry*>(arena.allocate_or_throw(up, sizeof(entry) * want, alignof(entry)));
    } catch (...) {
      up.deallocate(p, bytes, alignment);
      throw;
    }
    std::memset(static_cast<void*>(fresh), 0, sizeof(entry) * want);
    entry* old = nullptr;
    uint32_t old_capacity = 0;
    {
      spin_lock_guard lock(mu_);
      if (table_ == seen) {
        // Nobody replaced the table meanwhile: ours takes over.
        old = table_;
        old_capacity = capacity_;
        table_ = fresh;
        capacity_ = want;
        used_ = 0;
        for (uint32_t i = 0; i < old_capacity; ++i) {
          if (old[i].p != nullptr && old[i].p != kTombstone) insert_locked(old[i]);
        }
      } else {
        old = fresh;  // someone else's is in place: ours goes
        old_capacity = want;
      }
    }
    if (old != nullptr) arena.deallocate(up, old, sizeof(entry) * old_capacity, alignof(entry));
  }
  live_.fetch_add(1, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  if (request) requests_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void direct_set::deallocate(serialized_upstream& up, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  entry e;
  {
    spin_lock_guard lock(mu_);
    entry* found = find_locked(p);
    if (found == nullptr) {
      std::fprintf(stderr,
                   "syncpool::pool_resource: deallocate(%p, %zu, %zu): not a live block of this "
                   "resource (double deallocate, or a pointer from elsewhere)\n",
                   p, bytes, alignment);
      std::abort();
    }
    e = *found;
    found->p = kTombstone;
    --entries_;
  }
  live_.fetch_sub(1, std::memory_order_relaxed);
  unpoison(p, e.bytes);  // it may sit poisoned in a cache; upstream owns it now
  up.deallocate(p, e.bytes, e.alignment);
  bytes_.fetch_sub(e.bytes, std::memory_order_relaxed);
}

void direct_set::forget() noexcept {
  spin_lock_guard lock(mu_);
  table_ = nullptr;
  capacity_ = used_ = entries_ = 0;
  live_.store(0, std::memory_order_relaxed);
}

direct_set::detached direct_set::detach() noexcept {
  spin_lock_guard lock(mu_);
  detached d{table_, capacity_};
  table_ = nullptr;
  capacity_ = used_ = entries_ = 0;
  live_.store(0, std::memory_order_relaxed);
  bytes_.store(0, std::memory_order_relaxed);
  return d;
}

void direct_set::free_detached(serialized_upstream& up, detached d) noexcept {
  const auto* table = static_cast<const entry*>(d.table);
  for (uint32_t i = 0; i < d.capacity; ++i) {
    const entry& e = table[i];
    if (e.p == nullptr || e.p == kTombstone) continue;
    unpoison(e.p, e.bytes);
    up.deallocate(e.p, e.bytes, e.alignment);
  }
}

}  // namespace internal
}  // namespace syncpool
