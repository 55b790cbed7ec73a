// A tour of syncpool::pool<T>: the bytes.Buffer example from Go's docs.
//
//   ./bazelw run //examples:buffer_pool

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "syncpool/pool.h"

namespace {

// Like Go's bytes.Buffer: reused across requests, its capacity is the point.
syncpool::pool<std::string> buffers(
    [] {
      auto s = std::make_unique<std::string>();
      s->reserve(4096);
      return s;
    },
    {.reset = [](std::string& s) { s.clear(); },
     // Do not keep a buffer some huge request blew up (Go issue 23199).
     .retain_if = [](const std::string& s) { return s.capacity() <= (64 << 10); }});

std::size_t handle(int request) {
  auto buf = buffers.borrow();  // back into the pool at the end of scope
  for (int i = 0; i < 100; ++i) buf->append(std::to_string(request * i));
  return buf->size();
}

}  // namespace

int main() {
  std::vector<std::thread> workers;
  std::size_t total[4] = {};
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([t, &total] {
      for (int r = 0; r < 10000; ++r) total[t] += handle(r);
    });
  }
  for (auto& w : workers) w.join();

  syncpool::pool_stats s = buffers.stats();
  std::printf("40000 requests: %llu buffers made, %llu reused from the own thread, "
              "%llu stolen from others, %llu from the victim; %llu cached now\n",
              static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.local_hits),
              static_cast<unsigned long long>(s.stolen),
              static_cast<unsigned long long>(s.victim_hits),
              static_cast<unsigned long long>(s.cached));

  syncpool::collect();
  std::printf("after 1 collect: %llu cached (now victims, still reusable)\n",
              static_cast<unsigned long long>(buffers.stats().cached));
  syncpool::collect();
  std::printf("after 2 collects: %llu cached\n",
              static_cast<unsigned long long>(buffers.stats().cached));
  return total[0] == 0;
}
