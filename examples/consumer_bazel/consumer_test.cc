// A program outside syncpool's workspace using it through @syncpool: a pmr
// container on a pool_resource, aged by collect(). Exits 0 when it works.

#include <cstdio>
#include <memory_resource>
#include <string>
#include <vector>

#include "syncpool/syncpool.h"

int main() {
  syncpool::pool_resource pool;
  {
    std::pmr::vector<std::pmr::string> words(&pool);
    for (int i = 0; i < 1000; ++i) words.emplace_back(64, 'x');
  }
  syncpool::collect();
  syncpool::collect();
  const std::size_t held = pool.stats().total.upstream_bytes;
  std::printf("syncpool %s: %zu bytes held from upstream after two collects\n",
              SYNCPOOL_VERSION_STRING, held);
  return held == 0 ? 0 : 1;
}
