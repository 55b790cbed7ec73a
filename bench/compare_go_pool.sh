#!/usr/bin/env bash
# compare_go_pool.sh: syncpool::pool<T> get()+put() against Go's sync.Pool
# Get()+Put(), on this machine, on the same workload (an object owning a
# 4 KiB array, one byte written per round trip, one thread / goroutine):
# bench/pool_benchmark.cc's BM_pool_get_put<heap_buffer> against
# bench/go_sync_pool's BenchmarkGetPut.
#
#   bench/compare_go_pool.sh [ROUNDS]     # default 5
#
# The two run alternately, ROUNDS times each (this machine is noisy); the
# medians and their ratio are printed. Go comes from Debian's golang-go
# (1.19 on bookworm), installed here when missing, as ./bazelw installs the
# rest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
if ! [[ $rounds =~ ^[1-9][0-9]*$ ]]; then
  echo "compare_go_pool: ROUNDS must be a positive integer, not '$rounds'" >&2
  exit 2
fi

# shellcheck source=bench/install_if_missing.sh
source "$(dirname "${BASH_SOURCE[0]}")/install_if_missing.sh"
install_if_missing go golang-go compare_go_pool

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$root/bazelw" build -c opt //bench:pool_benchmark >&2
cp "$root/bazel-bin/bench/pool_benchmark" "$work/pool_benchmark"
(
  cd "$root/bench/go_sync_pool"
  GOCACHE="$work/gocache" GOPATH="$work/gopath" GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    go test -c -o "$work/go_pool.test" .
)

cpp=()
golang=()
for ((i = 0; i < rounds; ++i)); do
  cpp+=("$("$work/pool_benchmark" --benchmark_filter='^BM_pool_get_put<heap_buffer>$' \
    --benchmark_min_time=0.3 --benchmark_time_unit=ns 2>/dev/null |
    awk '$1 == "BM_pool_get_put<heap_buffer>" && $3 == "ns" { print $2 }')")
  golang+=("$("$work/go_pool.test" -test.run '^$' -test.bench '^BenchmarkGetPut$' -test.benchtime 0.3s |
    awk '$1 ~ /^BenchmarkGetPut/ { for (f = 2; f <= NF; ++f) if ($(f + 1) == "ns/op") print $f }')")
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
c=$(median "${cpp[@]}")
g=$(median "${golang[@]}")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(go version)"
echo "rounds: $rounds, alternated; ns per get+put pair, one thread"
echo "  syncpool::pool<T> get+put (C++): ${cpp[*]}  median $c"
echo "  Go sync.Pool Get+Put:            ${golang[*]}  median $g"
awk -v c="$c" -v g="$g" 'BEGIN { printf "ratio pool<T> / sync.Pool: %.2fx\n", c / g }'
