// bench/counting_resource.h
//
// syncpool_bench::counting_resource: a memory_resource that forwards to its
// upstream and counts the bytes outstanding, to see what a pool resource
// holds from its upstream. One relaxed atomic add per call: pool resources
// call upstream rarely.

#ifndef SYNCPOOL_BENCH_COUNTING_RESOURCE_H_
#define SYNCPOOL_BENCH_COUNTING_RESOURCE_H_

#include <atomic>
#include <cstddef>
#include <memory_resource>

namespace syncpool_bench {

class counting_resource final : public std::pmr::memory_resource {
 public:
  explicit counting_resource(std::pmr::memory_resource* upstream = std::pmr::new_delete_resource())
      : upstream_(upstream) {}

  std::size_t bytes_outstanding() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = upstream_->allocate(bytes, alignment);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    upstream_->deallocate(p, bytes, alignment);
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return this == &other;
  }

  std::pmr::memory_resource* const upstream_;
  std::atomic<std::size_t> bytes_{0};
};

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_COUNTING_RESOURCE_H_
