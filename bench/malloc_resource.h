// bench/malloc_resource.h
//
// syncpool_bench::malloc_free_resource<Malloc>: a memory_resource that is a
// malloc without a detour, for the `malloc/free` rows of compare_allocators.
//
// std::pmr::new_delete_resource() always calls the aligned operator new and
// delete, a slower path on most mallocs (issue 8 measured glibc at 1 KiB: 37
// ns against 19 ns for malloc/free; jemalloc at 32 KiB: 591 ns against 57
// ns). A row built only on it measures the harness as much as the malloc,
// so compare_allocators shows both, and ranks against the faster. This
// resource calls plain malloc, the aligned allocation only when the
// alignment exceeds what malloc always gives, and the malloc's sized free
// where it has one (jemalloc's sdallocx, tcmalloc's tc_free_sized,
// mimalloc's mi_free_size), which can skip the size lookup a plain free does.
//
// `Malloc` supplies three static functions:
//   void* allocate(std::size_t bytes);
//   void* allocate_aligned(std::size_t bytes, std::size_t alignment);
//       // bytes is a multiple of alignment, as aligned_alloc wants
//   void deallocate(void* p, std::size_t bytes, std::size_t alignment);
//       // bytes and alignment as allocated (bytes rounded as above)

#ifndef SYNCPOOL_BENCH_MALLOC_RESOURCE_H_
#define SYNCPOOL_BENCH_MALLOC_RESOURCE_H_

#include <cstddef>
#include <cstdlib>
#include <memory_resource>
#include <new>

namespace syncpool_bench {

template <class Malloc>
class malloc_free_resource final : public std::pmr::memory_resource {
 public:
  static malloc_free_resource* get() noexcept {
    static malloc_free_resource instance;
    return &instance;
  }

 private:
  static constexpr bool plain(std::size_t alignment) {
    return alignment <= alignof(std::max_align_t);
  }
  static constexpr std::size_t round_up(std::size_t bytes, std::size_t alignment) {
    return (bytes + alignment - 1) & ~(alignment - 1);
  }

  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = plain(alignment) ? Malloc::allocate(bytes)
                               : Malloc::allocate_aligned(round_up(bytes, alignment), alignment);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    Malloc::deallocate(p, plain(alignment) ? bytes : round_up(bytes, alignment), alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }
};

// Whatever malloc the process runs on, through the C library's names: glibc
// has no sized free (free_sized came in glibc 2.39; bookworm has 2.36).
struct libc_malloc {
  static void* allocate(std::size_t bytes) { return std::malloc(bytes); }
  static void* allocate_aligned(std::size_t bytes, std::size_t alignment) {
    return std::aligned_alloc(alignment, bytes);
  }
  static void deallocate(void* p, std::size_t /*bytes*/, std::size_t /*alignment*/) {
    std::free(p);
  }
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_MALLOC_RESOURCE_H_
