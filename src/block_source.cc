#include "block_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace syncpool {
namespace internal {

// ---------------------------------------------------------------------------
// chunk_heap

chunk_heap::chunk_heap(std::size_t block_size, std::size_t chunk_bytes, std::size_t max_blocks) noexcept
    : block_size_(block_size),
      chunk_bytes_(chunk_bytes),
      blocks_per_chunk_(std::min((chunk_bytes - sizeof(chunk_header)) / block_size, max_blocks)) {}

void* chunk_heap::read_link(void* block) const noexcept {
  void* next;
  if (poisonable(block_size_)) unpoison(block, sizeof(void*));
  std::memcpy(&next, block, sizeof(void*));
  if (poisonable(block_size_)) poison(block, sizeof(void*));
  return next;
}

void chunk_heap::write_link(void* block, void* next) const noexcept {
  if (poisonable(block_size_)) unpoison(block, sizeof(void*));
  std::memcpy(block, &next, sizeof(void*));
  if (poisonable(block_size_)) poison(block, sizeof(void*));
}

chunk_header* chunk_heap::header_of(void* block) const noexcept {
  const auto base = reinterpret_cast<uintptr_t>(block) & ~(uintptr_t{chunk_bytes_} - 1);
  return reinterpret_cast<chunk_header*>(base + chunk_bytes_ - sizeof(chunk_header));
}

char* chunk_heap::base_of(chunk_header* h) const noexcept {
  return reinterpret_cast<char*>(h) + sizeof(chunk_header) - chunk_bytes_;
}

void chunk_heap::make_available(chunk_header* h) {
  if (h->available) return;
  h->available = true;
  h->prev = nullptr;
  h->next = available_;
  if (available_ != nullptr) available_->prev = h;
  available_ = h;
}

void chunk_heap::make_unavailable(chunk_header* h) {
  if (!h->available) return;
  h->available = false;
  if (h->prev != nullptr) h->prev->next = h->next;
  if (h->next != nullptr) h->next->prev = h->prev;
  if (available_ == h) available_ = h->next;
  h->prev = h->next = nullptr;
}

void chunk_heap::unlink_chunk(chunk_header* h, chunk_header** to_free) {
  make_unavailable(h);
  if (h->all_prev != nullptr) h->all_prev->all_next = h->all_next;
  if (h->all_next != nullptr) h->all_next->all_prev = h->all_prev;
  if (all_ == h) all_ = h->all_next;
  h->next = *to_free;
  *to_free = h;
}

void chunk_heap::free_chunks(serialized_upstream& upstream, chunk_header* list) noexcept {
  while (list != nullptr) {
    chunk_header* next = list->next;
    char* base = base_of(list);
    unpoison(base, chunk_bytes_);
    upstream.deallocate(base, chunk_bytes_, chunk_bytes_);
    upstream_bytes_.fetch_sub(chunk_bytes_, std::memory_order_relaxed);
    list = next;
  }
}

std::size_t chunk_heap::carve(chunk_header* h, void** out, std::size_t n, std::size_t want) {
  while (n < want && h->free_list != nullptr) {
    void* block = h->free_list;
    h->free_list = read_link(block);
    --h->free_count;
    out[n++] = block;
  }
  while (n < want && h->carved < blocks_per_chunk_) {
    out[n++] = base_of(h) + std::size_t{h->carved++} * block_size_;
  }
  if (h->free_list == nullptr && h->carved == blocks_per_chunk_) make_unavailable(h);
  return n;
}

std::size_t chunk_heap::take(serialized_upstream& upstream, void** out, std::size_t want) {
  {
    lock_guard lock(mu_);
    std::size_t n = 0;
    while (n < want && available_ != nullptr) n = carve(available_, out, n, want);
    if (n != 0) return n;  // enough to go on with; grow next time
  }
  // Grow, without our lock: the upstream call may take long, and may call
  // back into syncpool (collect() when it is short) and give blocks back
  // to this very heap. Throws what upstream throws; nothing changed yet.
  char* base = static_cast<char*>(upstream.allocate(chunk_bytes_, chunk_bytes_));
  upstream_bytes_.fetch_add(chunk_bytes_, std::memory_order_relaxed);
  auto* h = reinterpret_cast<chunk_header*>(base + chunk_bytes_ - sizeof(chunk_header));
  if (poisonable(block_size_)) poison(base, blocks_per_chunk_ * block_size_);
  lock_guard lock(mu_);
  *h = chunk_header{nullptr, 0, 0, nullptr, nullptr, nullptr, all_, false};
  if (all_ != nullptr) all_->all_prev = h;
  all_ = h;
  make_available(h);
  return carve(h, out, 0, want);
}

void chunk_heap::give_back(serialized_upstream& upstream, void* const* blocks, std::size_t n) noexcept {
  chunk_header* to_free = nullptr;
  {
    lock_guard lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      void* block = blocks[i];
      chunk_header* h = header_of(block);
      write_link(block, h->free_list);
      h->free_list = block;
      if (++h->free_count == h->carved) {
        unlink_chunk(h, &to_free);  // every block carved so far is back
      } else {
        make_available(h);
      }
    }
  }
  free_chunks(upstream, to_free);
}

void chunk_heap::release(serialized_upstream& upstream) noexcept {
  chunk_header* to_free = nullptr;
  {
    lock_guard lock(mu_);
    while (all_ != nullptr) unlink_chunk(all_, &to_free);
  }
  free_chunks(upstream, to_free);
}

// ---------------------------------------------------------------------------
// direct_blocks

void* direct_blocks::allocate(serialized_upstream& upstream, std::size_t bytes, std::size_t alignment) {
  void* p = upstream.allocate(bytes, alignment);
  try {
    lock_guard lock(mu_);
    live_.emplace(p, shape{bytes, alignment});
  } catch (...) {
    upstream.deallocate(p, bytes, alignment);
    throw;
  }
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  allocations_.fetch_add(1, std::memory_order_relaxed);
  return p;
}

void direct_blocks::deallocate(serialized_upstream& upstream, void* p, std::size_t bytes,
                               std::size_t alignment) noexcept {
  shape s;
  {
    lock_guard lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr,
                   "syncpool::pool_resource: deallocate(%p, %zu, %zu): not a live block of this "
                   "resource (double deallocate, or a pointer from elsewhere)\n",
                   p, bytes, alignment);
      std::abort();
    }
    s = it->second;
    live_.erase(it);
  }
  unpoison(p, s.bytes);  // it may sit poisoned in a cache; upstream owns it now
  upstream.deallocate(p, s.bytes, s.alignment);
  bytes_.fetch_sub(s.bytes, std::memory_order_relaxed);
}

void direct_blocks::release(serialized_upstream& upstream) noexcept {
  std::unordered_map<void*, shape> live;
  {
    lock_guard lock(mu_);
    live.swap(live_);
  }
  for (const auto& [p, s] : live) {
    unpoison(p, s.bytes);
    upstream.deallocate(p, s.bytes, s.alignment);
    bytes_.fetch_sub(s.bytes, std::memory_order_relaxed);
  }
}

}  // namespace internal
}  // namespace syncpool
