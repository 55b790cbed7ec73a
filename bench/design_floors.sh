#!/usr/bin/env bash
# design_floors.sh: pool_resource, the two design floors of
# bench/design_floors.cc and gperftools' tcmalloc on the same workloads,
# alternated ROUNDS times (default 5) on CPU 0; prints each row's median
# time per operation, the range of the rounds, and the median's ratio to the
# faster tcmalloc row's.
#
#   bench/design_floors.sh [ROUNDS]
#
# One-thread columns only (pinned, so that every row runs on the same vCPU:
# see the README's "Noise").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-5}
cd "$root"
./bazelw build -c opt //bench:design_floors //bench:allocator_benchmarks_tcmalloc >&2

# Workload names without the row, as Google Benchmark prints them.
columns=(pair/64 pair/1024 batch/lifo batch/random containers/map threads/real_time/threads:1
         server/real_time/threads:1)
filter() {  # rows regex
  local alternatives=()
  for c in "${columns[@]}"; do alternatives+=("${c%%/*}/($1)/${c#*/}"); done
  local IFS='|'
  echo "^(${alternatives[*]})\$"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for ((i = 1; i <= rounds; ++i)); do
  echo "design_floors.sh: round $i of $rounds" >&2
  for run in "design_floors pool_resource|floor_array|floor_intrusive" \
             "allocator_benchmarks_tcmalloc new_delete_tcmalloc|malloc_free_tcmalloc"; do
    # (Google Benchmark writes its context to stderr: shown only on failure.)
    taskset -c 0 "bazel-bin/bench/${run%% *}" --benchmark_min_time=0.3 --benchmark_format=csv \
      --benchmark_filter="$(filter "${run#* }")" 2>"$tmp/stderr" >>"$tmp/runs.csv" ||
      { cat "$tmp/stderr" >&2; exit 1; }
  done
done

# CSV: "name",iterations,real_time,cpu_time,time_unit,bytes_per_second,items_per_second,...
# ns per operation = 1e9 / items_per_second (the 7th field).
awk -F, -v cols="${columns[*]}" '
  $1 ~ /^"[a-z]/ && $7 != "" {
    name = $1; gsub(/"/, "", name)
    n = split(name, part, "/")
    row = part[2]; col = part[1]
    for (k = 3; k <= n; ++k) col = col "/" part[k]
    v[row, col, ++count[row, col]] = 1e9 / $7
    rows[row] = 1
  }
  # The median of the rounds of a cell (-1: none), and their range in lo, hi.
  function median(row, col,   m, i, j, t, a) {
    m = count[row, col]
    if (m == 0) return -1
    for (i = 1; i <= m; ++i) a[i] = v[row, col, i]
    for (i = 2; i <= m; ++i) for (j = i; j > 1 && a[j - 1] > a[j]; --j) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    lo = a[1]; hi = a[m]
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
  }
  END {
    nc = split(cols, c, " ")
    order[1] = "pool_resource"; order[2] = "floor_array"; order[3] = "floor_intrusive"
    order[4] = "new_delete_tcmalloc"; order[5] = "malloc_free_tcmalloc"
    printf "| row |"; for (j = 1; j <= nc; ++j) printf " %s |", c[j]; printf "\n"
    printf "| :-- |"; for (j = 1; j <= nc; ++j) printf " --: |"; printf "\n"
    for (j = 1; j <= nc; ++j) {
      best[j] = -1
      for (r = 4; r <= 5; ++r) { m = median(order[r], c[j]); if (m > 0 && (best[j] < 0 || m < best[j])) best[j] = m }
    }
    for (r = 1; r <= 5; ++r) {
      if (!(order[r] in rows)) continue
      printf "| `%s` |", order[r]
      for (j = 1; j <= nc; ++j) {
        m = median(order[r], c[j])
        if (m < 0) printf " - |"
        else if (best[j] < 0) printf " %.3g [%.3g-%.3g] |", m, lo, hi
        else printf " %.3g [%.3g-%.3g] (%.2fx) |", m, lo, hi, m / best[j]
      }
      printf "\n"
    }
    printf "\nns per operation: median [min-max] of the rounds, and the ratio of the median to the faster tcmalloc row.\n"
  }' "$tmp/runs.csv"
