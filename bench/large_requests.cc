// large_requests: a resource per request when requests are large, on
// glibc's malloc (the default upstream, through new_delete_resource).
//
//   ./bazelw run -c opt //bench:large_requests
//   GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967295 ./bazelw run -c opt //bench:large_requests
//
// Each request constructs a resource, makes `allocations` blocks of 16..255
// bytes (a fixed sequence per thread), frees them and destroys the resource;
// on 1 and 2 threads, each thread on resources of its own. Real time, per
// request, all threads together (as compare_allocators' `requests`).
//
// Why it exists: a resource gives all its memory back at destruction. When
// that is more than glibc's trim threshold (128 KiB unless a freed mmap'ed
// block raised it), glibc returns the top of its heap to the kernel, and the
// next request faults the pages in again: a brk() on the main thread's
// arena, a madvise() on another thread's, and with several threads running
// each trim also flushes the other CPUs' TLBs (perf of a 2-thread run: most
// of the time in flush_tlb_mm_range). Set the threshold higher
// to see the resource without it. Not in compare_allocators: the effect is
// glibc's, and depends on its thresholds' history in the process.

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <vector>

#include "benchmark/benchmark.h"
#include "syncpool/pool_resource.h"

namespace {

template <class Resource>
void serve(benchmark::State& state) {
  const auto allocations = static_cast<std::size_t>(state.range(0));
  std::vector<void*> blocks(allocations);
  std::vector<std::size_t> sizes(allocations);
  uint64_t x = 12345 + static_cast<uint64_t>(state.thread_index());
  for (std::size_t& size : sizes) {
    x = x * 6364136223846793005u + 1442695040888963407u;
    size = 16 + (x >> 33) % 240;
  }
  for (auto _ : state) {
    Resource resource;
    for (std::size_t i = 0; i < allocations; ++i) blocks[i] = resource.allocate(sizes[i]);
    benchmark::DoNotOptimize(blocks.data());
    for (std::size_t i = 0; i < allocations; ++i) resource.deallocate(blocks[i], sizes[i]);
  }
  state.SetItemsProcessed(state.iterations());
}

void configure(benchmark::internal::Benchmark* b) {
  b->Arg(100)->Arg(1000)->Threads(1)->Threads(2)->UseRealTime();
}

BENCHMARK_TEMPLATE(serve, syncpool::pool_resource)->Apply(configure);
BENCHMARK_TEMPLATE(serve, std::pmr::unsynchronized_pool_resource)->Apply(configure);

}  // namespace
