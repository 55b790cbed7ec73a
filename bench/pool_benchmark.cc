// pool_benchmark: what a syncpool::pool<T> get()+put() pair costs next to
// making and deleting the same object, for a 4 KiB buffer.
//
//   ./bazelw run -c opt //bench:pool_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Two buffer shapes, both 4 KiB of payload:
//   heap_buffer    a small object owning a 4096-byte heap array, like Go's
//                  bytes.Buffer (make_unique + delete = two allocations, and
//                  the array is value-initialized, i.e. zeroed)
//   inline_buffer  a struct holding std::array<std::byte, 4096> (one
//                  allocation, also zeroed by make_unique)
// Every variant touches one byte of the buffer, and the pointer escapes
// through benchmark::DoNotOptimize so that no allocation is elided.
//
// Threaded runs (ThreadRange(1, 2 x hardware threads), real time) share one
// pool; each thread mostly hits its own private cache.
//
// The count/... benchmarks run a fixed number of iterations in a single run,
// for instruction counts per pair under callgrind:
//
//   valgrind --tool=callgrind --toggle-collect='*BM_*'
//       bazel-bin/bench/pool_benchmark --benchmark_filter='^count/'
//
// then divide each function's inclusive Ir (callgrind_annotate --inclusive=yes)
// by kCountIterations.

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <thread>
#include <utility>

#include "benchmark/benchmark.h"
#include "syncpool/pool.h"

namespace {

struct heap_buffer {
  std::unique_ptr<std::byte[]> data = std::make_unique<std::byte[]>(4096);
  std::byte& first() { return data[0]; }
};

struct inline_buffer {
  std::array<std::byte, 4096> data{};
  std::byte& first() { return data[0]; }
};

template <class Buf>
syncpool::pool<Buf>& pool_of() {
  // Never destroyed: benchmark threads may still hold records at exit.
  static auto* p = new syncpool::pool<Buf>([] { return std::make_unique<Buf>(); });
  return *p;
}

template <class Buf>
void BM_pool_get_put(benchmark::State& state) {
  syncpool::pool<Buf>& p = pool_of<Buf>();
  unsigned char n = 0;
  for (auto _ : state) {
    std::unique_ptr<Buf> b = p.get();
    b->first() = std::byte{n++};
    benchmark::DoNotOptimize(b.get());
    p.put(std::move(b));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Buf>
void BM_make_unique_delete(benchmark::State& state) {
  unsigned char n = 0;
  for (auto _ : state) {
    std::unique_ptr<Buf> b = std::make_unique<Buf>();
    b->first() = std::byte{n++};
    benchmark::DoNotOptimize(b.get());
    b.reset();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}

int max_threads() {
  return 2 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

BENCHMARK_TEMPLATE(BM_pool_get_put, heap_buffer);
BENCHMARK_TEMPLATE(BM_make_unique_delete, heap_buffer);
BENCHMARK_TEMPLATE(BM_pool_get_put, inline_buffer);
BENCHMARK_TEMPLATE(BM_make_unique_delete, inline_buffer);

constexpr int kCountIterations = 1 << 16;
BENCHMARK_TEMPLATE(BM_pool_get_put, heap_buffer)
    ->Name("count/pool_get_put/heap_buffer")
    ->Iterations(kCountIterations);
BENCHMARK_TEMPLATE(BM_make_unique_delete, heap_buffer)
    ->Name("count/make_unique_delete/heap_buffer")
    ->Iterations(kCountIterations);
BENCHMARK_TEMPLATE(BM_pool_get_put, inline_buffer)
    ->Name("count/pool_get_put/inline_buffer")
    ->Iterations(kCountIterations);
BENCHMARK_TEMPLATE(BM_make_unique_delete, inline_buffer)
    ->Name("count/make_unique_delete/inline_buffer")
    ->Iterations(kCountIterations);

BENCHMARK_TEMPLATE(BM_pool_get_put, heap_buffer)->ThreadRange(1, max_threads())->UseRealTime();
BENCHMARK_TEMPLATE(BM_make_unique_delete, heap_buffer)
    ->ThreadRange(1, max_threads())
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_pool_get_put, inline_buffer)->ThreadRange(1, max_threads())->UseRealTime();
BENCHMARK_TEMPLATE(BM_make_unique_delete, inline_buffer)
    ->ThreadRange(1, max_threads())
    ->UseRealTime();

}  // namespace
