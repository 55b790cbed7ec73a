// syncpool/mimalloc_resource.h
//
// syncpool::mimalloc_resource: a std::pmr::memory_resource that allocates
// with mimalloc (mi_malloc_aligned / mi_free_size_aligned). Use it as a
// fast general-purpose upstream for pool_resource, or on its own:
//
//   syncpool::pool_resource pool(syncpool::mimalloc_resource::get());
//
// Lives in its own Bazel target, //:mimalloc_resource, because Debian's
// libmimalloc.so also exports malloc/free/operator new: linking it replaces
// the allocator of the whole binary. //:syncpool never links it.
//
// Guarantees: thread-safe; every power-of-two alignment honoured; a
// non-power-of-two alignment throws std::invalid_argument; failure throws
// std::bad_alloc. is_equal: true for any other mimalloc_resource (they share
// one heap), so memory from one may be freed through another.
//
// NOT guaranteed: that the rest of the program keeps its malloc. With
// Debian's libmimalloc, every malloc and operator new of the binary becomes
// mimalloc's.

#ifndef SYNCPOOL_MIMALLOC_RESOURCE_H_
#define SYNCPOOL_MIMALLOC_RESOURCE_H_

#include "syncpool/internal/config.h"

#include <cstddef>
#include <memory_resource>

namespace syncpool {

class mimalloc_resource final : public std::pmr::memory_resource {
 public:
  // A process-wide instance (never destroyed).
  static mimalloc_resource* get() noexcept;

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override;
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override;
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override;
};

}  // namespace syncpool

#endif  // SYNCPOOL_MIMALLOC_RESOURCE_H_
