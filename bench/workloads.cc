// The workloads run by one thread on one resource: pair, batch,
// containers. Also the registration of every resource workload.

#include "bench/workloads.h"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "bench/workload_support.h"

namespace syncpool_bench {
namespace internal {
namespace {

// ---- pair: allocate + deallocate of one size. One op = one pair.

constexpr std::size_t kPairSizes[] = {16, 64, 256, 1024, 4096, 32768};

void pair(benchmark::State& state, const allocator_row& row, std::size_t size) {
  begin_memory();
  const std::unique_ptr<bench_resource> res = row.make();
  std::pmr::memory_resource* const r = res->get();
  for (auto _ : state) {
    void* p = r->allocate(size);
    benchmark::DoNotOptimize(p);
    r->deallocate(p, size);
  }
  state.SetItemsProcessed(state.iterations());
  report_memory(state, *res);
}

// ---- batch: allocate 10,000 mixed sizes, then free them all in some
// order. One op = one block allocated and freed.

constexpr std::size_t kBatchBlocks = 10000;

enum class free_order { lifo, fifo, random };

struct batch_plan {
  std::vector<std::size_t> sizes;    // 16 .. 8191 bytes, log-uniform
  std::vector<std::uint32_t> order;  // indices, in freeing order
};

batch_plan make_batch_plan(free_order order) {
  batch_plan plan;
  rng random(2024);
  plan.sizes.resize(kBatchBlocks);
  for (std::size_t& size : plan.sizes) {
    const std::size_t power = std::size_t{1} << random.between(4, 12);
    size = power + random.below(power);
  }
  plan.order.resize(kBatchBlocks);
  for (std::uint32_t i = 0; i < kBatchBlocks; ++i) plan.order[i] = i;
  if (order == free_order::lifo) std::reverse(plan.order.begin(), plan.order.end());
  if (order == free_order::random) {
    for (std::size_t i = kBatchBlocks - 1; i > 0; --i) {
      std::swap(plan.order[i], plan.order[random.below(i + 1)]);
    }
  }
  return plan;
}

void batch(benchmark::State& state, const allocator_row& row, free_order order) {
  begin_memory();
  const batch_plan plan = make_batch_plan(order);
  std::vector<void*> blocks(kBatchBlocks);
  const std::unique_ptr<bench_resource> res = row.make();
  std::pmr::memory_resource* const r = res->get();
  for (auto _ : state) {
    for (std::size_t i = 0; i < kBatchBlocks; ++i) {
      void* p = r->allocate(plan.sizes[i]);
      *static_cast<std::size_t*>(p) = i;  // the program writes its data
      blocks[i] = p;
    }
    for (const std::uint32_t i : plan.order) r->deallocate(blocks[i], plan.sizes[i]);
    res->drop_all();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kBatchBlocks));
  report_memory(state, *res);
}

// ---- containers.

// pmr::list of 1,000 elements: push 64 to the back, pop 64 from the front.
// One op = one push + one pop.
void list_churn(benchmark::State& state, const allocator_row& row) {
  begin_memory();
  const std::unique_ptr<bench_resource> res = row.make();
  {
    std::pmr::list<std::uint64_t> list(res->get());
    for (std::uint64_t i = 0; i < 1000; ++i) list.push_back(i);
    for (auto _ : state) {
      for (std::uint64_t i = 0; i < 64; ++i) list.push_back(i);
      for (int i = 0; i < 64; ++i) list.pop_front();
      benchmark::DoNotOptimize(list.front());
    }
  }
  state.SetItemsProcessed(state.iterations() * 64);
  report_memory(state, *res);
}

// A map of 10,000 random keys: erase a random one, insert a new one.
// One op = one erase + one insert.
template <class Map>
void map_churn(benchmark::State& state, const allocator_row& row) {
  constexpr std::size_t kKeys = 10000;
  begin_memory();
  const std::unique_ptr<bench_resource> res = row.make();
  {
    Map map(res->get());
    std::vector<std::uint64_t> keys(kKeys);
    std::uint64_t next = 0;
    for (std::uint64_t& key : keys) {
      key = mix64(next++);
      map.try_emplace(key, next);
    }
    rng pick(7);
    for (auto _ : state) {
      for (int i = 0; i < 16; ++i) {
        std::uint64_t& key = keys[pick.below(kKeys)];
        map.erase(key);
        key = mix64(next++);
        map.try_emplace(key, next);
      }
    }
    benchmark::DoNotOptimize(map.size());
  }
  state.SetItemsProcessed(state.iterations() * 16);
  report_memory(state, *res);
}

// Build a pmr::vector of 1,000 pmr::strings (16..128 chars, past the small
// string buffer) without reserve, then drop it. One op = one string.
void vector_string(benchmark::State& state, const allocator_row& row) {
  constexpr std::size_t kStrings = 1000;
  begin_memory();
  std::vector<std::size_t> lengths(kStrings);
  rng random(11);
  for (std::size_t& length : lengths) length = random.between(16, 128);
  const std::unique_ptr<bench_resource> res = row.make();
  for (auto _ : state) {
    {
      std::pmr::vector<std::pmr::string> strings(res->get());
      for (const std::size_t length : lengths) strings.emplace_back(length, 'x');
      benchmark::DoNotOptimize(strings.data());
    }
    res->drop_all();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(kStrings));
  report_memory(state, *res);
}

}  // namespace

void register_single_thread_workloads(const allocator_row& row) {
  const std::string& id = row.id;
  if (row.frees) {
    for (const std::size_t size : kPairSizes) {
      add("pair/" + id + "/" + std::to_string(size),
          [row, size](benchmark::State& s) { pair(s, row, size); });
    }
  }
  // A never-free resource fits a batch: everything is dropped at once.
  const std::pair<const char*, free_order> orders[] = {
      {"lifo", free_order::lifo}, {"fifo", free_order::fifo}, {"random", free_order::random}};
  for (const auto& [name, order] : orders) {
    add("batch/" + id + "/" + name,
        [row, order = order](benchmark::State& s) { batch(s, row, order); });
  }
  if (row.frees) {
    add("containers/" + id + "/list", [row](benchmark::State& s) { list_churn(s, row); });
    add("containers/" + id + "/map", [row](benchmark::State& s) {
      map_churn<std::pmr::map<std::uint64_t, std::uint64_t>>(s, row);
    });
    add("containers/" + id + "/unordered_map", [row](benchmark::State& s) {
      map_churn<std::pmr::unordered_map<std::uint64_t, std::uint64_t>>(s, row);
    });
  }
  add("containers/" + id + "/vector_string", [row](benchmark::State& s) { vector_string(s, row); });
}

}  // namespace internal

std::vector<int> thread_counts(int cores, int max_threads) {
  cores = std::max(1, cores);
  const int top = max_threads > 0 ? max_threads : cores;
  std::vector<int> counts;
  for (int n = 1; n < top; n *= 2) counts.push_back(n);
  counts.push_back(top);
  if (max_threads <= 0) {
    for (const int n : {8, 16, 64}) {
      if (n > cores) counts.push_back(n);
    }
  }
  return counts;
}

std::vector<int> default_thread_counts(int max_threads) {
  return thread_counts(static_cast<int>(std::thread::hardware_concurrency()), max_threads);
}

void register_resource_workloads(const allocator_row& row, const bench_config& config) {
  internal::set_fixed_iterations(config.fixed_iterations);
  internal::set_registering_row(&row);
  if (row.make) internal::register_single_thread_workloads(row);
  internal::register_lifetime_workloads(row, config);
  if (row.make && row.frees && row.thread_safe) internal::register_threaded_workloads(row, config);
  internal::set_registering_row(nullptr);
}

}  // namespace syncpool_bench
