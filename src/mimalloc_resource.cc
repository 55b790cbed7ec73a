#include "syncpool/mimalloc_resource.h"

#include <mimalloc.h>

#include <new>
#include <stdexcept>

namespace syncpool {

mimalloc_resource* mimalloc_resource::get() noexcept {
  static mimalloc_resource* instance = new mimalloc_resource;
  return instance;
}

namespace {
// Made while the library loads: a fork() during the function-local
// static's first initialization would leave the child waiting on its
// guard forever (see src/fork.cc).
[[maybe_unused]] const bool g_made_at_load = (mimalloc_resource::get(), true);
}  // namespace

void* mimalloc_resource::do_allocate(std::size_t bytes, std::size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    throw std::invalid_argument("syncpool::mimalloc_resource: alignment is not a power of two");
  }
  void* p = mi_malloc_aligned(bytes, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void mimalloc_resource::do_deallocate(void* p, std::size_t bytes, std::size_t alignment) {
  mi_free_size_aligned(p, bytes, alignment);
}

bool mimalloc_resource::do_is_equal(const std::pmr::memory_resource& other) const noexcept {
  return dynamic_cast<const mimalloc_resource*>(&other) != nullptr;
}

}  // namespace syncpool
