// tests/replaced_new.h: every form of the global operator new and delete,
// replaced, for test binaries that count or fail the global heap's calls.
//
// Include it in exactly one .cc of a binary (it defines the operators), and
// define there:
//   void* syncpool_test::replaced_new(std::size_t n, std::size_t alignment,
//                                     bool nothrow);
//   void syncpool_test::replaced_delete(void* p) noexcept;
// replaced_new throws std::bad_alloc, or returns nullptr when `nothrow`;
// heap_new() is the plain allocation it may end with. Replacing every form,
// not just the common ones, keeps a sanitizer's own operator new (array,
// aligned, nothrow) from meeting this file's delete, which ASan reports as a
// mismatch, and lets no allocation bypass the count.

#ifndef SYNCPOOL_TESTS_REPLACED_NEW_H_
#define SYNCPOOL_TESTS_REPLACED_NEW_H_

#include <cstddef>
#include <cstdlib>
#include <new>

namespace syncpool_test {

void* replaced_new(std::size_t n, std::size_t alignment, bool nothrow);
void replaced_delete(void* p) noexcept;

// malloc or aligned_alloc; nullptr when there is no memory.
inline void* heap_new(std::size_t n, std::size_t alignment) noexcept {
  if (n == 0) n = 1;
  if (alignment > alignof(std::max_align_t)) return std::aligned_alloc(alignment, (n + alignment - 1) & ~(alignment - 1));
  return std::malloc(n);
}

}  // namespace syncpool_test

void* operator new(std::size_t n) { return syncpool_test::replaced_new(n, alignof(std::max_align_t), false); }
void* operator new[](std::size_t n) { return syncpool_test::replaced_new(n, alignof(std::max_align_t), false); }
void* operator new(std::size_t n, std::align_val_t a) {
  return syncpool_test::replaced_new(n, static_cast<std::size_t>(a), false);
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return syncpool_test::replaced_new(n, static_cast<std::size_t>(a), false);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return syncpool_test::replaced_new(n, alignof(std::max_align_t), true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return syncpool_test::replaced_new(n, static_cast<std::size_t>(a), true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p) noexcept { syncpool_test::replaced_delete(p); }
void operator delete(void* p, std::size_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p, std::size_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete(void* p, std::align_val_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p, std::align_val_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { syncpool_test::replaced_delete(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { syncpool_test::replaced_delete(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { syncpool_test::replaced_delete(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  syncpool_test::replaced_delete(p);
}

#endif  // SYNCPOOL_TESTS_REPLACED_NEW_H_
