#!/usr/bin/env bash
# time_share.sh: where a benchmark's time goes, from perf's samples: the
# allocator (syncpool's code, the mallocs' functions, operator new and
# delete, libstdc++'s pmr resources and the harness's glue to them), the
# rest of user space (the benchmark's own code, the containers' code, memcpy,
# symbols perf cannot name: Debian's libstdc++ is stripped, so the internals
# of new_delete_resource land here, and a `via new_delete_resource` row's
# allocator share is a lower bound) and the kernel.
#
#   bench/time_share.sh REGEX [SECONDS]
#
# REGEX picks Google Benchmark names of the allocator_benchmarks_* binaries
# (e.g. 'server/(pool_resource|new_delete_tcmalloc)/real_time/threads:1$');
# each runs for SECONDS (default 1.5) under `perf record`, one-thread
# benchmarks on CPU 0.
#
# Why: an allocator's speed bounds a workload only through its share of the
# time. The rest also moves with the allocator: the benchmark's first touch
# of a block it is handed misses the cache unless the allocator's own code
# touched that block already (an intrusive free list reads it to pop it), so
# compare rows' totals, not their allocator columns alone.
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

printf '| benchmark | ns per iteration | allocator | rest of user space | kernel |\n'
printf '| :-- | --: | --: | --: | --: |\n'
for flavour in glibc mimalloc jemalloc tcmalloc; do
  bin=bazel-bin/bench/allocator_benchmarks_$flavour
  while read -r name; do
    [[ -n $name ]] || continue
    pin=()
    [[ $name == *threads:* && $name != *threads:1 ]] || pin=(taskset -c 0)
    ns=$("${pin[@]}" perf record -q -o "$tmp/perf.data" "$bin" --benchmark_filter="^${name}\$" \
           --benchmark_min_time="$seconds" 2>/dev/null | awk -v n="$name" '$1 == n {print $2}')
    # Per symbol: the share, the DSO, [.] (user) or [k] (kernel), the name.
    # The allocator: syncpool's code, the mallocs' libraries and functions,
    # operator new and delete, libstdc++'s pmr resources and the harness's
    # glue to them (bench/malloc_resource.h, bench/counting_resource.h).
    perf report -i "$tmp/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null |
      awk -v n="$name" -v ns="$ns" '
        /^ *[0-9.]+%/ {
          p = $1; sub("%", "", p)
          dso = $2; sym = $0; sub(/^.*\[[.k]\] /, "", sym)
          if ($3 == "[k]") k += p
          else if (dso ~ /libtcmalloc|libjemalloc|libmimalloc/ ||
                   (sym ~ /syncpool::/ && sym !~ /syncpool_bench::internal/) ||
                   sym ~ /malloc_free_resource|counting_resource|std::pmr::|operator new|operator delete/ ||
                   sym ~ /^(malloc|free|calloc|realloc|cfree|aligned_alloc|posix_memalign|_int_malloc|_int_free|_int_memalign|__libc_malloc|__libc_free|malloc_consolidate|sysmalloc|tcache_[a-z_]*|unlink_chunk|mi_[a-z_]*|_mi_[a-z_]*|je_[a-z_]*|tc_[a-z_]*)( |$)/) a += p
          else r += p
        }
        END { printf "| `%s` | %s | %.1f%% | %.1f%% | %.1f%% |\n", n, ns, a, r, k }'
  done < <("$bin" --benchmark_list_tests 2>/dev/null | grep -E -- "$regex" || true)
done
