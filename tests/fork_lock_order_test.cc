// fork() takes the locks of the pools in use in one order, whatever order
// they came into use in.
//
// The fork handlers lock every active engine at once. They used to do so in
// the order the engines last became active, so that two forks, with the
// pools used in opposite orders in between, took two engines' locks in
// opposite orders. That never deadlocked (only the handlers hold two engine
// locks at once, under the registry lock), but ThreadSanitizer's deadlock
// detector reported a lock-order inversion, and a TSan user had to turn the
// detector off. This binary runs with the detector on (TSan's default;
// fork_test turns it off, as it holds more than the 64 locks it tracks), so
// under --config=tsan it fails on such a report. In the other builds it
// checks that the children exit cleanly.

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <memory>
#include <memory_resource>

#include "gtest/gtest.h"
#include "syncpool/collect.h"
#include "syncpool/pool.h"
#include "syncpool/pool_resource.h"

namespace {

// Forks a child that allocates from `r` and exits; true when it exited 0.
bool fork_and_wait(std::pmr::memory_resource& r) {
  const pid_t pid = fork();
  if (pid == 0) {
    void* p = r.allocate(64);
    r.deallocate(p, 64);
    _exit(0);
  }
  if (pid < 0) return false;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void use(syncpool::pool<int>& p) { p.put(std::make_unique<int>(1)); }

void use(std::pmr::memory_resource& r) {
  // Past the young phase, so that the resource's engine gets a thread cache
  // and becomes active.
  for (int i = 0; i < 300; ++i) r.deallocate(r.allocate(48), 48);
}

TEST(ForkLockOrder, ForksTakeThePoolsLocksInOneOrderWhateverOrderTheyCameIntoUse) {
  syncpool::pool<int> a;
  syncpool::pool<int> b;
  syncpool::pool_resource first;
  syncpool::pool_resource second;
  // Each round makes the pools active in another order, forks, and lets
  // collect() make them idle (inactive) again.
  for (int round = 0; round < 4; ++round) {
    if (round % 2 == 0) {
      use(a);
      use(first);
      use(b);
      use(second);
    } else {
      use(second);
      use(b);
      use(first);
      use(a);
    }
    EXPECT_TRUE(fork_and_wait(first)) << "round " << round;
    for (int i = 0; i < 3; ++i) syncpool::collect();
  }
}

}  // namespace
