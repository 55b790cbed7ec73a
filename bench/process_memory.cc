#include "bench/process_memory.h"

#include <sys/resource.h>

#include <cstdio>
#include <cstring>

namespace syncpool_bench {
namespace {

// The value of `key` ("VmRSS:") in /proc/self/status, in KiB, or -1.
long status_kib(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return -1;
  const std::size_t key_len = std::strlen(key);
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, key, key_len) == 0) {
      if (std::sscanf(line + key_len, "%ld", &kib) != 1) kib = -1;
      break;
    }
  }
  std::fclose(f);
  return kib;
}

}  // namespace

long current_rss_kib() { return status_kib("VmRSS:"); }

long peak_rss_kib() {
  const long hwm = status_kib("VmHWM:");
  if (hwm >= 0) return hwm;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
  return usage.ru_maxrss;  // KiB on Linux
}

bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool wrote = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && wrote;
}

}  // namespace syncpool_bench
