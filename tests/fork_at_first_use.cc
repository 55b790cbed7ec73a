// tests/fork_at_first_use.cc: a process of its own for ForkTest.AChildForkedDuringTheFirstUseOfSyncpoolCanUseIt
// (fork_test.cc): three threads fork in a loop while the main thread makes
// the process's first pool_resource. Each child makes a resource of its own,
// allocates from it and exits; a child that hangs dies of SIGALRM. Exit
// status: 0 when every child exited normally, 1 otherwise.
//
// It has to be a process of its own: what it checks happens once per
// process, at syncpool's first use. syncpool's process-wide state (the fork
// handlers, the engine registry, the fence counters) was made lazily, inside
// function-local statics: a fork() while another thread ran one of their
// initializers (pthread_atfork waits for a fork in progress) gave the child
// that static's guard marked "in progress" forever, and the child hung at its
// first allocation. About 7% of these processes had a hung child then.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "syncpool/pool_resource.h"

int main() {
  std::atomic<bool> stop{false};
  std::atomic<int> forks{0};
  std::atomic<int> failed{0};
  auto fork_loop = [&] {
    while (!stop.load()) {
      const pid_t pid = fork();
      if (pid < 0) return;
      if (pid == 0) {
        alarm(5);  // a hung child dies of SIGALRM
        syncpool::pool_resource r;
        r.deallocate(r.allocate(64), 64);
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
  {
    syncpool::pool_resource r;
    r.deallocate(r.allocate(64), 64);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  for (std::thread& t : forkers) t.join();
  std::printf("%d forks, %d children failed\n", forks.load(), failed.load());
  return failed.load() == 0 ? 0 : 1;
}
