#include "bench/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <string>
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
  static const std::uintptr_t page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    std::uintptr_t start = 0, end = 0;
    unsigned long long offset = 0;
    char perms[8] = {};
    int path_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %*s %*s %n", &start, &end, perms,
                    &offset, &path_at) != 4 ||
        perms[0] != 'r' || path_at == 0 || line[path_at] != '/') {
      continue;  // unreadable, anonymous, or [vdso] and the like
    }
    std::string path(line + path_at);
    while (!path.empty() && path.back() == '\n') path.pop_back();
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // Past the end of its file a mapping's pages raise SIGBUS.
    const unsigned long long file_end = static_cast<unsigned long long>(st.st_size);
    for (std::uintptr_t p = start; p < end && offset + (p - start) < file_end; p += page) {
      (void)*reinterpret_cast<const volatile char*>(p);
    }
  }
  std::fclose(maps);
}

struct rss_peak_sampler::state {
  std::mutex mu;
  std::condition_variable wake;
  bool ready = false;
  bool active = false;
  long peak = -1;  // guarded by mu
};

rss_peak_sampler& rss_peak_sampler::instance() {
  static rss_peak_sampler* const sampler = new rss_peak_sampler;
  return *sampler;
}

long rss_peak_sampler::start() {
  if (state_ == nullptr) {
    state_ = new state;
    std::thread([s = state_] {
      current_rss_kib();  // its stack pages, before the baseline
      std::unique_lock lock(s->mu);
      s->ready = true;
      s->wake.notify_all();
      for (;;) {
        s->wake.wait(lock, [s] { return s->active; });
        lock.unlock();
        const long rss = current_rss_kib();
        lock.lock();
        if (s->active) s->peak = std::max(s->peak, rss);
        s->wake.wait_for(lock, kPeriod, [s] { return !s->active; });
      }
    }).detach();
    std::unique_lock lock(state_->mu);
    state_->wake.wait(lock, [this] { return state_->ready; });
  }
  const long baseline = current_rss_kib();
  std::lock_guard lock(state_->mu);
  state_->peak = baseline;
  state_->active = true;
  state_->wake.notify_all();
  return baseline;
}

long rss_peak_sampler::finish() {
  const long last = current_rss_kib();
  std::lock_guard lock(state_->mu);
  state_->active = false;
  state_->wake.notify_all();
  return std::max(state_->peak, last);
}

}  // namespace syncpool_bench
