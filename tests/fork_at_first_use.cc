// tests/fork_at_first_use.cc: processes of their own for fork_test.cc's
// first-use tests. Three threads fork in a loop while the main thread uses
// syncpool for the first time; each child makes a resource of its own,
// allocates from it and exits (a child that hangs dies of SIGALRM). Exit
// status: 0 when every child exited normally, 1 otherwise; a hang of the
// parent is the caller's to catch (a timeout).
//
//   fork_at_first_use          the process's first pool_resource
//   fork_at_first_use nested   200 times: a pool_resource over a fresh one,
//                              and its first allocation
//
// It has to be a process of its own: the first mode's fault happened once
// per process, at syncpool's first use. syncpool's process-wide state (the
// fork handlers, the engine registry, the fence counters) was made lazily,
// inside function-local statics: a fork() while another thread ran one of
// their initializers (pthread_atfork waits for a fork in progress) gave the
// child that static's guard marked "in progress" forever, and the child hung
// at its first allocation: about 7% of these processes then. In the second
// mode the inner resource was known to the fork handlers only from its first
// use, inside the outer one's first upstream call, under the outer one's
// upstream lock, which a fork's prepare handler waited for while holding the
// handlers' lock: the parent deadlocked in about 5% of these processes.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "syncpool/collect.h"
#include "syncpool/pool_resource.h"

// A resource in its young phase (the fork handlers), one without (a thread
// cache: the engine registry), and a collect cycle (the fence counters).
void first_use() {
  syncpool::pool_resource young;
  young.deallocate(young.allocate(64), 64);
  syncpool::pool_resource_options no_young_phase;
  no_young_phase.max_blocks_per_chunk = 4;
  syncpool::pool_resource engine(no_young_phase);
  engine.deallocate(engine.allocate(64), 64);
  syncpool::collect();
}

int main(int argc, char** argv) {
  const bool nested = argc > 1 && std::strcmp(argv[1], "nested") == 0;
  std::atomic<bool> stop{false};
  std::atomic<int> forks{0};
  std::atomic<int> failed{0};
  auto fork_loop = [&] {
    while (!stop.load()) {
      const pid_t pid = fork();
      if (pid < 0) return;
      if (pid == 0) {
        alarm(5);  // a hung child dies of SIGALRM
        first_use();
        _exit(0);
      }
      int status = 0;
      waitpid(pid, &status, 0);
      ++forks;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    }
  };
  std::thread forkers[] = {std::thread(fork_loop), std::thread(fork_loop), std::thread(fork_loop)};
  std::this_thread::sleep_for(std::chrono::microseconds(300));
  if (nested) {
    // No young phase for the outer one: its first allocation asks its
    // upstream for a thread cache.
    syncpool::pool_resource_options outer_options;
    outer_options.max_blocks_per_chunk = 4;
    for (int round = 0; round < 200; ++round) {
      syncpool::pool_resource inner;
      syncpool::pool_resource outer(outer_options, &inner);
      outer.deallocate(outer.allocate(64), 64);
    }
  } else {
    first_use();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (std::thread& t : forkers) t.join();
  std::printf("%d forks, %d children failed\n", forks.load(), failed.load());
  return failed.load() == 0 ? 0 : 1;
}
