#include "bench/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/mman.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

namespace syncpool_bench {

long current_rss_kib() {
  // Not stdio: this runs thousands of times a second on the sampler thread,
  // and a FILE would be a malloc per read in the allocator being measured.
  const int fd = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char text[128];
  const ssize_t n = ::read(fd, text, sizeof text - 1);
  ::close(fd);
  if (n <= 0) return -1;
  text[n] = '\0';
  long size_pages = 0;
  long resident_pages = 0;
  if (std::sscanf(text, "%ld %ld", &size_pages, &resident_pages) != 2) return -1;
  static const long page_kib = ::sysconf(_SC_PAGESIZE) / 1024;
  return resident_pages * page_kib;
}

void prefault_file_mappings() {
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr) return;
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    std::uintptr_t start = 0, end = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %*s %*s %*s %n", &start, &end, perms,
                    &path_at) != 3 ||
        perms[0] != 'r' || path_at == 0 || line[path_at] != '/') {
      continue;  // unreadable, anonymous, or [vdso] and the like
    }
    // The kernel reads the pages in, and answers an error (not SIGBUS)
    // past the end of a file that shrank. Best effort: a page left out
    // shows as growth, as before.
    ::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_READ);
  }
  std::fclose(maps);
}

struct rss_peak_sampler::state {
  std::mutex mu;
  std::condition_variable wake;
  bool ready = false;
  bool active = false;
  uint64_t generation = 0;  // one per start(): a sample of an older one is dropped
  long peak = -1;           // guarded by mu
};

rss_peak_sampler& rss_peak_sampler::instance() {
  static rss_peak_sampler* const sampler = new rss_peak_sampler;
  return *sampler;
}

void rss_peak_sampler::prepare() {
  if (state_ != nullptr) return;
  state_ = new state;
  std::thread([s = state_] {
    current_rss_kib();  // its stack pages, before any baseline
    std::unique_lock lock(s->mu);
    s->ready = true;
    s->wake.notify_all();
    for (;;) {
      s->wake.wait(lock, [s] { return s->active; });
      const uint64_t generation = s->generation;
      lock.unlock();
      const long rss = current_rss_kib();
      lock.lock();
      if (s->generation == generation) s->peak = std::max(s->peak, rss);
      s->wake.wait_for(lock, kPeriod);
    }
  }).detach();
  std::unique_lock lock(state_->mu);
  state_->wake.wait(lock, [this] { return state_->ready; });
}

long rss_peak_sampler::start() {
  prepare();
  const long baseline = current_rss_kib();
  std::lock_guard lock(state_->mu);
  ++state_->generation;
  state_->peak = baseline;
  state_->active = true;
  state_->wake.notify_all();
  return baseline;
}

long rss_peak_sampler::peak() {
  if (state_ == nullptr) return -1;
  const long now = current_rss_kib();
  std::lock_guard lock(state_->mu);
  if (!state_->active) return -1;
  return std::max(state_->peak, now);
}

}  // namespace syncpool_bench
