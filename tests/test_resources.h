// Test upstreams for pool_resource's tests, after foonathan/memory's
// test_allocator: a memory_resource that records every block it hands out
// (pointer, size, alignment), flags every deallocate that does not match an
// allocate, and can be told to fail.

#ifndef SYNCPOOL_TESTS_TEST_RESOURCES_H_
#define SYNCPOOL_TESTS_TEST_RESOURCES_H_

// SYNCPOOL_TEST_ASAN: defined in AddressSanitizer builds (g++ and clang).
#if defined(__SANITIZE_ADDRESS__)
#define SYNCPOOL_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SYNCPOOL_TEST_ASAN 1
#endif
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory_resource>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace syncpool_test {

class counting_resource : public std::pmr::memory_resource {
 public:
  explicit counting_resource(std::pmr::memory_resource* backing = std::pmr::new_delete_resource())
      : backing_(backing) {}
  counting_resource(const counting_resource&) = delete;
  counting_resource& operator=(const counting_resource&) = delete;
  ~counting_resource() override {
    // Whatever the test found, never leak what the backing resource gave.
    for (const auto& [p, b] : live_) backing_->deallocate(p, b.size, b.alignment);
  }

  // Blocks and bytes handed out and not yet given back.
  std::size_t live_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_bytes_;
  }
  std::size_t live_blocks() const {
    std::lock_guard<std::mutex> lock(mu_);
    return live_.size();
  }
  // Calls of allocate (including failed ones) and successful deallocates.
  uint64_t allocate_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return allocate_calls_;
  }
  uint64_t deallocate_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return deallocate_calls_;
  }
  // Deallocates that matched no live allocation, or matched one with another
  // size or alignment; and descriptions of them.
  std::vector<std::string> errors() const {
    std::lock_guard<std::mutex> lock(mu_);
    return errors_;
  }
  // Sizes and alignments of the live blocks (for tests that look at chunks).
  std::vector<std::pair<std::size_t, std::size_t>> live_shapes() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::pair<std::size_t, std::size_t>> v;
    for (const auto& [p, b] : live_) v.emplace_back(b.size, b.alignment);
    return v;
  }

  // The n-th allocate call from now (1-based) throws std::bad_alloc; 0: none.
  void fail_on_call(uint64_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_at_ = n == 0 ? 0 : allocate_calls_ + n;
  }
  // While set, every allocate throws std::bad_alloc.
  void fail_always(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_always_ = on;
  }
  // Runs (outside the lock) at the start of every deallocate.
  void set_deallocate_hook(std::function<void(void*, std::size_t, std::size_t)> hook) {
    std::lock_guard<std::mutex> lock(mu_);
    hook_ = std::move(hook);
  }
  // Fill freed memory with 0xDD before giving it back (as debug allocators
  // do): the memory belongs to the upstream again once deallocated.
  void set_scribble_on_free(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    scribble_ = on;
  }

  // Requests above this are refused with std::bad_alloc without asking the
  // backing resource (ASan aborts on absurd sizes instead of throwing).
  static constexpr std::size_t kMaxRequest = std::size_t{1} << 32;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++allocate_calls_;
      if (fail_always_ || allocate_calls_ == fail_at_ || bytes > kMaxRequest) throw std::bad_alloc();
    }
    void* p = backing_->allocate(bytes, alignment);
    std::lock_guard<std::mutex> lock(mu_);
    if (reinterpret_cast<uintptr_t>(p) % alignment != 0) {
      errors_.push_back("backing resource returned a misaligned block");
    }
    live_[p] = block{bytes, alignment};
    live_bytes_ += bytes;
    return p;
  }

  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    std::function<void(void*, std::size_t, std::size_t)> hook;
    bool scribble;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hook = hook_;
      scribble = scribble_;
    }
    if (hook) hook(p, bytes, alignment);
    block b;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = live_.find(p);
      if (it == live_.end()) {
        errors_.push_back("deallocate(" + describe(p, bytes, alignment) + "): not a live block");
        return;  // do not hand the backing resource a pointer it does not own
      }
      b = it->second;
      if (b.size != bytes || b.alignment != alignment) {
        errors_.push_back("deallocate(" + describe(p, bytes, alignment) + "): allocated as (" +
                          std::to_string(b.size) + ", " + std::to_string(b.alignment) + ")");
      }
      live_.erase(it);
      live_bytes_ -= b.size;
      ++deallocate_calls_;
    }
    if (scribble && b.size != 0) std::memset(p, 0xDD, b.size);
    backing_->deallocate(p, b.size, b.alignment);
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

 private:
  struct block {
    std::size_t size = 0;
    std::size_t alignment = 0;
  };
  static std::string describe(void* p, std::size_t bytes, std::size_t alignment) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%p, %zu, %zu", p, bytes, alignment);
    return buf;
  }

  std::pmr::memory_resource* const backing_;
  mutable std::mutex mu_;
  std::unordered_map<void*, block> live_;
  std::size_t live_bytes_ = 0;
  uint64_t allocate_calls_ = 0;
  uint64_t deallocate_calls_ = 0;
  uint64_t fail_at_ = 0;
  bool fail_always_ = false;
  bool scribble_ = false;
  std::function<void(void*, std::size_t, std::size_t)> hook_;
  std::vector<std::string> errors_;
};

// Fills / checks a block with a pattern derived from `seed`. Small blocks are
// filled entirely; large ones get their head, tail and a stamp every 512
// bytes (enough to see an overlap, cheap under the sanitizers).
inline void fill_block(void* p, std::size_t n, uint32_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  const auto byte = static_cast<unsigned char>(seed * 131u + 7u);
  if (n <= 4096) {
    std::memset(b, byte, n);
    return;
  }
  std::memset(b, byte, 64);
  std::memset(b + n - 64, byte, 64);
  for (std::size_t i = 512; i + sizeof seed <= n - 64; i += 512) std::memcpy(b + i, &seed, sizeof seed);
}

inline bool check_block(const void* p, std::size_t n, uint32_t seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  const auto byte = static_cast<unsigned char>(seed * 131u + 7u);
  if (n == 0) return true;
  if (n <= 4096) return b[0] == byte && (n == 1 || std::memcmp(b, b + 1, n - 1) == 0);
  if (b[0] != byte || std::memcmp(b, b + 1, 63) != 0) return false;
  if (b[n - 64] != byte || std::memcmp(b + n - 64, b + n - 63, 63) != 0) return false;
  for (std::size_t i = 512; i + sizeof seed <= n - 64; i += 512) {
    uint32_t v;
    std::memcpy(&v, b + i, sizeof v);
    if (v != seed) return false;
  }
  return true;
}

}  // namespace syncpool_test

#endif  // SYNCPOOL_TESTS_TEST_RESOURCES_H_
