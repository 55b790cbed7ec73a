// bench/process_memory.h
//
// The memory footprint of the calling process as Linux reports it
// (/proc/self/status), for the memory columns of compare_allocators.

#ifndef SYNCPOOL_BENCH_PROCESS_MEMORY_H_
#define SYNCPOOL_BENCH_PROCESS_MEMORY_H_

namespace syncpool_bench {

// Resident set size now (VmRSS), in KiB; -1 if unknown.
long current_rss_kib();

// Peak resident set size (VmHWM, else getrusage's ru_maxrss), in KiB; -1 if
// unknown.
long peak_rss_kib();

// Resets the peak (VmHWM) to the current RSS by writing "5" to
// /proc/self/clear_refs. Returns false where that is not allowed; the peak
// then covers the whole life of the process.
bool reset_peak_rss();

}  // namespace syncpool_bench

#endif  // SYNCPOOL_BENCH_PROCESS_MEMORY_H_
