// Size classes of pool_resource, as data plus O(1) arithmetic.
//
//   8 10 12 16 20 24 28 32          (step 2..4: <= 25% waste from 8 bytes up)
//   40 48 56 64 80 96 112 128       (4 per power of two: <= 25%)
//   144 160 ... 256 288 ... 1 MiB   (8 per power of two: <= 12.5%)
//
// Every class is a multiple of each power of two that divides a request
// rounded up to that power, so a block at `chunk_base + i * size` is aligned
// for every request the class serves (checked in size_classes_test).

#ifndef SYNCPOOL_SRC_SIZE_CLASSES_H_
#define SYNCPOOL_SRC_SIZE_CLASSES_H_

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace syncpool {
namespace internal {

inline constexpr std::size_t kSmallestClass = 8;
inline constexpr std::size_t kLargestClassLimit = std::size_t{1} << 20;  // 1 MiB

// Classes up to 32 bytes, by hand: the only place the step is not a power of
// two fraction of the band.
inline constexpr std::array<uint32_t, 8> kTinyClasses = {8, 10, 12, 16, 20, 24, 28, 32};

// Index of the class for tiny sizes, indexed by size (0..32).
inline constexpr std::array<uint8_t, 33> kTinyIndex = [] {
  std::array<uint8_t, 33> t{};
  uint8_t c = 0;
  for (std::size_t s = 0; s <= 32; ++s) {
    while (kTinyClasses[c] < s) ++c;
    t[s] = c;
  }
  return t;
}();

// The index of the smallest class >= `size`, for 0 <= size <= 1 MiB.
constexpr std::size_t class_index(std::size_t size) noexcept {
  if (size <= 32) return kTinyIndex[size];
  // size is in (2^p, 2^(p+1)]: 4 classes per band below 128, 8 above.
  const unsigned p = static_cast<unsigned>(std::bit_width(size - 1)) - 1;
  if (size <= 128) return 8 + (p - 5) * 4 + ((size - 1 - (std::size_t{1} << p)) >> (p - 2));
  return 16 + (p - 7) * 8 + ((size - 1 - (std::size_t{1} << p)) >> (p - 3));
}

// The block size of class `index`.
constexpr std::size_t class_size(std::size_t index) noexcept {
  if (index < 8) return kTinyClasses[index];
  if (index < 16) {
    const unsigned p = 5 + static_cast<unsigned>(index - 8) / 4;
    return (std::size_t{1} << p) + ((index - 8) % 4 + 1) * (std::size_t{1} << (p - 2));
  }
  const unsigned p = 7 + static_cast<unsigned>(index - 16) / 8;
  return (std::size_t{1} << p) + ((index - 16) % 8 + 1) * (std::size_t{1} << (p - 3));
}

// The fast path's table: class index by (size - 1) / 2, for sizes 1 up to
// kTableLimit (a caller has size - 1 at hand from its bounds test). Every
// class up to there is even, so halving loses nothing; 2 KiB, of which a
// workload touches the lines of the sizes it asks for.
inline constexpr std::size_t kTableLimit = 4096;
inline constexpr std::array<uint8_t, kTableLimit / 2> kIndexByHalf = [] {
  std::array<uint8_t, kTableLimit / 2> t{};
  for (std::size_t h = 0; h < kTableLimit / 2; ++h) t[h] = static_cast<uint8_t>(class_index(2 * h + 2));
  return t;
}();

// O(1) with one table load for 1 <= size <= kTableLimit.
constexpr std::size_t class_index_small(std::size_t size) noexcept { return kIndexByHalf[(size - 1) >> 1]; }

// The table above it, for 4 KiB < size <= 1 MiB: class index by
// (size - 1) / 512. Classes there are multiples of 512 bytes, so the sizes
// of one 512-byte step share a class. 2 KiB; its first entries (sizes up to
// 4 KiB) are never read.
inline constexpr std::size_t kLargeStep = 512;
inline constexpr std::array<uint8_t, kLargestClassLimit / kLargeStep> kIndexBy512 = [] {
  std::array<uint8_t, kLargestClassLimit / kLargeStep> t{};
  for (std::size_t j = kTableLimit / kLargeStep; j < t.size(); ++j) {
    t[j] = static_cast<uint8_t>(class_index((j + 1) * kLargeStep));
  }
  return t;
}();

// O(1) with one table load for kTableLimit < size <= kLargestClassLimit.
constexpr std::size_t class_index_large(std::size_t size) noexcept { return kIndexBy512[(size - 1) / kLargeStep]; }

// Both ends of every step map to the entry (class_index is monotonic, so
// every size between does too).
static_assert([] {
  for (std::size_t j = kTableLimit / kLargeStep; j < kIndexBy512.size(); ++j) {
    if (class_size(class_index((j + 1) * kLargeStep)) % kLargeStep != 0) return false;
    if (class_index_large(j * kLargeStep + 1) != class_index(j * kLargeStep + 1)) return false;
    if (class_index_large((j + 1) * kLargeStep) != class_index((j + 1) * kLargeStep)) return false;
  }
  return true;
}());

static_assert(class_size(class_index(1)) == 8);
static_assert(class_index_small(9) == class_index(9));
static_assert(class_index_small(1023) == class_index(1023));
static_assert(class_index_small(kTableLimit) == class_index(kTableLimit));
static_assert(class_size(class_index(kTableLimit - 1)) % 2 == 0);
static_assert(class_size(class_index(33)) == 40);
static_assert(class_size(class_index(129)) == 144);
static_assert(class_size(class_index(kLargestClassLimit)) == kLargestClassLimit);

}  // namespace internal
}  // namespace syncpool

#endif  // SYNCPOOL_SRC_SIZE_CLASSES_H_
