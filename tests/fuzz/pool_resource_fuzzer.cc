// A libFuzzer target for pool_resource: decodes a sequence of operations
// from its input and checks every invariant a user relies on after each.
//
//   allocate      0 .. 2 MiB (biased small), alignment 1 .. 2^22; the block
//                 must be aligned and is filled with a pattern
//   deallocate    a random live block, with its exact size and alignment,
//                 after checking its pattern (an overlap with another block
//                 or a use by the resource would have changed it)
//   collect       the resource's own, syncpool::collect(), flush_thread_cache()
//   release       the resource's (and first that of the resource over it)
//   re-create     a resource, with random options
//   is_equal      identity only
//   stats         upstream_bytes equals what a counting upstream says is live
//
// Three resources: one over a counting upstream, one nested over the first,
// and one over a monotonic_buffer_resource on a buffer. Each sits on a
// counting_resource, which also flags any deallocate that matches no
// allocate. Any broken invariant aborts.
//
// Built two ways (tests/fuzz/BUILD): with libFuzzer (clang, ASan, UBSan)
// for fuzzing, and as a GoogleTest that replays the checked-in corpus in the
// ordinary test suite.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <memory_resource>
#include <optional>
#include <vector>

#include "syncpool/collect.h"
#include "syncpool/pool_resource.h"
#include "tests/test_resources.h"

namespace {

using syncpool::pool_resource;
using syncpool_test::counting_resource;

#define FUZZ_CHECK(cond)                                                             \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

// Reads the input front to back; past its end, everything reads as zero.
class byte_reader {
 public:
  byte_reader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  bool done() const { return pos_ >= size_; }
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint32_t bytes(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | byte();
    return v;
  }

 private:
  const uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

// Operations decoded over the whole run, printed at exit (for the README's
// "How it is tested" figures).
struct operation_count {
  uint64_t n = 0;
  ~operation_count() {
    if (n != 0) std::fprintf(stderr, "pool_resource_fuzzer: %llu operations\n", static_cast<unsigned long long>(n));
  }
};
operation_count g_operations;

constexpr std::size_t kMaxLive = 48;
constexpr int kResources = 3;  // 0: base, 1: nested over 0, 2: over monotonic

std::size_t decode_size(byte_reader& in) {
  const uint8_t mode = in.byte() % 16;
  if (mode < 11) return in.byte() + 1;             // 1 .. 256
  if (mode < 14) return in.bytes(2) + 1;           // .. 64 KiB
  if (mode < 15) return in.bytes(3) % (2u << 20);  // .. 2 MiB, 0 included
  return 0;
}

std::size_t decode_alignment(byte_reader& in) {
  const uint8_t b = in.byte();
  const unsigned shift = b < 200 ? b % 5 : b % 23;  // mostly 1..16, up to 4 MiB
  return std::size_t{1} << shift;
}

std::pmr::pool_options decode_options(byte_reader& in) {
  static constexpr std::size_t kLargest[] = {0, 8, 100, 4096, 65536, std::size_t{1} << 20, std::size_t{4} << 20};
  static constexpr std::size_t kPerChunk[] = {0, 1, 3, 64, 1000};
  std::pmr::pool_options o;
  o.largest_required_pool_block = kLargest[in.byte() % std::size(kLargest)];
  o.max_blocks_per_chunk = kPerChunk[in.byte() % std::size(kPerChunk)];
  return o;
}

struct live_block {
  int resource;
  void* p;
  std::size_t bytes;
  std::size_t alignment;
  uint32_t seed;
};

class world {
 public:
  world() : mono_(mono_buffer_, sizeof mono_buffer_, &mono_backing_) {
    counters_[0].emplace(std::pmr::new_delete_resource());
    counters_[2].emplace(&mono_);
    create(0, std::pmr::pool_options{});  // and 1, nested over it
    create(2, std::pmr::pool_options{});
  }

  ~world() {
    for (const live_block& b : live_) check_and_free(b);
    live_.clear();
    for (int i = kResources; i-- > 0;) destroy(i);
  }

  void run(byte_reader& in) {
    while (!in.done()) {
      const uint8_t op = in.byte();
      const int r = in.byte() % kResources;
      ++g_operations.n;
      switch (op % 12) {
        case 0: case 1: case 2: case 3:
          allocate(r, decode_size(in), decode_alignment(in));
          break;
        case 4: case 5: case 6:
          if (!live_.empty()) free_one(in.bytes(2) % live_.size());
          break;
        case 7:
          (op & 0x80) ? syncpool::collect() : resources_[r]->collect();
          break;
        case 8:
          syncpool::flush_thread_cache();
          break;
        case 9:
          release(r);
          break;
        case 10:
          destroy(r);
          create(r, decode_options(in));
          break;
        case 11:
          check_identity();
          break;
      }
      check_stats();
    }
  }

 private:
  pool_resource& resource(int i) { return *resources_[i]; }

  void create(int i, const std::pmr::pool_options& options) {
    if (i == 1) {
      // Nested: over the base resource (through a counter), so re-created
      // whenever the base is.
      counters_[1].emplace(resources_[0].get());
    }
    resources_[i] = std::make_unique<pool_resource>(options, &*counters_[i]);
    const std::pmr::pool_options in_effect = resources_[i]->options();
    FUZZ_CHECK(in_effect.largest_required_pool_block >= std::min<std::size_t>(
                                                             options.largest_required_pool_block, 8));
    if (i == 0 && resources_[1] == nullptr) create(1, std::pmr::pool_options{});
  }

  // Destroys resource i (and the one nested over it): everything it took
  // from upstream must be back.
  void destroy(int i) {
    if (resources_[i] == nullptr) return;
    if (i == 0) destroy(1);
    drop_blocks_of(i);
    resources_[i].reset();
    FUZZ_CHECK(counters_[i]->live_bytes() == 0);
    FUZZ_CHECK(counters_[i]->errors().empty());
    if (i == 1) counters_[1].reset();
    if (i == 2) mono_.release();
  }

  void release(int i) {
    if (i == 0) release(1);
    drop_blocks_of(i);
    resource(i).release();
    FUZZ_CHECK(counters_[i]->live_bytes() == 0);
    FUZZ_CHECK(resource(i).stats().total.upstream_bytes == 0);
  }

  void drop_blocks_of(int i) {
    // Their memory is going back upstream: check them first, then forget.
    std::erase_if(live_, [i](const live_block& b) {
      if (b.resource != i) return false;
      FUZZ_CHECK(syncpool_test::check_block(b.p, b.bytes, b.seed));
      return true;
    });
  }

  void allocate(int r, std::size_t bytes, std::size_t alignment) {
    if (live_.size() == kMaxLive) free_one(0);
    void* p = resource(r).allocate(bytes, alignment);
    FUZZ_CHECK(p != nullptr);
    FUZZ_CHECK(reinterpret_cast<uintptr_t>(p) % alignment == 0);
    const uint32_t seed = next_seed_++;
    syncpool_test::fill_block(p, bytes, seed);
    live_.push_back(live_block{r, p, bytes, alignment, seed});
  }

  void check_and_free(const live_block& b) {
    FUZZ_CHECK(syncpool_test::check_block(b.p, b.bytes, b.seed));
    resource(b.resource).deallocate(b.p, b.bytes, b.alignment);
  }

  void free_one(std::size_t index) {
    const live_block b = live_[index];
    live_[index] = live_.back();
    live_.pop_back();
    check_and_free(b);
  }

  void check_identity() {
    for (int i = 0; i < kResources; ++i) {
      FUZZ_CHECK(resource(i).is_equal(resource(i)));
      FUZZ_CHECK(!resource(i).is_equal(resource((i + 1) % kResources)));
      FUZZ_CHECK(!resource(i).is_equal(*std::pmr::new_delete_resource()));
    }
  }

  void check_stats() {
    for (int i = 0; i < kResources; ++i) {
      const syncpool::pool_resource_stats s = resource(i).stats();
      FUZZ_CHECK(s.total.upstream_bytes == counters_[i]->live_bytes());
      FUZZ_CHECK(counters_[i]->errors().empty());
    }
  }

  counting_resource mono_backing_;
  alignas(std::max_align_t) std::byte mono_buffer_[1 << 14];
  std::pmr::monotonic_buffer_resource mono_;
  std::optional<counting_resource> counters_[kResources];
  std::unique_ptr<pool_resource> resources_[kResources];
  std::vector<live_block> live_;
  uint32_t next_seed_ = 1;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  {
    world w;
    w.run(in);
  }
  return 0;
}
