#!/usr/bin/env bash
# time_share.sh: where a benchmark's time goes, from perf's samples: the
# benchmark's own code, everything else in user space (the allocator and
# what it calls: libstdc++'s new_delete_resource, libc), and the kernel.
#
#   bench/time_share.sh REGEX [SECONDS]
#
# REGEX picks Google Benchmark names of the allocator_benchmarks_* binaries
# (e.g. 'server/(pool_resource|new_delete_tcmalloc)/real_time/threads:1$');
# each runs for SECONDS (default 1.5) under `perf record`, one-thread
# benchmarks on CPU 0.
#
# Why: an allocator's speed bounds a workload only through its share of the
# time. The benchmark's own share also moves with the allocator: its first
# touch of a block it is handed misses the cache unless the allocator's own
# code touched that block already (an intrusive free list reads it to pop
# it), so compare the sums, not the allocator columns alone.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
regex=${1:?usage: bench/time_share.sh REGEX [SECONDS]}
seconds=${2:-1.5}

# shellcheck source=bench/install_if_missing.sh
source "$(dirname "${BASH_SOURCE[0]}")/install_if_missing.sh"
install_if_missing perf linux-perf time_share

cd "$root"
./bazelw build -c opt //bench:allocator_benchmarks_glibc //bench:allocator_benchmarks_mimalloc \
  //bench:allocator_benchmarks_jemalloc //bench:allocator_benchmarks_tcmalloc >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '| benchmark | ns per iteration | benchmark code | allocator and libraries | kernel |\n'
printf '| :-- | --: | --: | --: | --: |\n'
for flavour in glibc mimalloc jemalloc tcmalloc; do
  bin=bazel-bin/bench/allocator_benchmarks_$flavour
  while read -r name; do
    [[ -n $name ]] || continue
    pin=()
    [[ $name == *threads:* && $name != *threads:1 ]] || pin=(taskset -c 0)
    ns=$("${pin[@]}" perf record -q -o "$tmp/perf.data" "$bin" --benchmark_filter="^${name}\$" \
           --benchmark_min_time="$seconds" 2>/dev/null | awk -v n="$name" '$1 == n {print $2}')
    # Per symbol: the share, then [.] (user) or [k] (kernel), then the name.
    perf report -i "$tmp/perf.data" --no-children --sort sym --stdio 2>/dev/null |
      awk -v n="$name" -v ns="$ns" '
        /^ *[0-9.]+%/ {
          p = $1; sub("%", "", p)
          if ($2 == "[k]") k += p
          else if ($0 ~ /syncpool_bench|benchmark::/) b += p
          else a += p
        }
        END { printf "| `%s` | %s | %.1f%% | %.1f%% | %.1f%% |\n", n, ns, b, a, k }'
  done < <("$bin" --benchmark_list_tests 2>/dev/null | grep -E -- "$regex" || true)
done
