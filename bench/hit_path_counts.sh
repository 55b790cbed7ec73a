#!/usr/bin/env bash
# hit_path_counts.sh: instructions per operation of every bench/hit_path.cc
# workload, under valgrind --tool=callgrind, with this checkout's
# hit_path.cc built against the library of each commit given (HEAD when
# none), so that the columns differ only in the library.
#
#   bench/hit_path_counts.sh [COMMIT...]
#
# Per operation = (instructions with N operations - with 0) / N. Prints a
# Markdown table, one column per commit. Each commit is built in a
# temporary git worktree (a few minutes each); valgrind comes from Debian,
# installed here when missing, as ./bazelw installs the rest.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
commits=("$@")
[[ ${#commits[@]} -gt 0 ]] || commits=(HEAD)

# shellcheck source=bench/install_if_missing.sh
source "$(dirname "${BASH_SOURCE[0]}")/install_if_missing.sh"
install_if_missing valgrind valgrind hit_path_counts

# workload:N (operations counted). batch counts rounds of 10,000 blocks and
# lifetime16 and lifetime1000 whole requests: fewer of them give the same precision.
workloads=(pair64:100000 pair32k:100000 getput:100000 lifetime16:1000 lifetime16_std:1000 lifetime1000:20
           lifetime1000_std:20 batch:10 window:100000)

work=$(mktemp -d)
cleanup() {
  for c in "${commits[@]}"; do
    git -C "$root" worktree remove --force "$work/$c" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>&1
  # awk reads to the end: exiting at the first match could kill
  # callgrind_annotate with SIGPIPE, which pipefail and set -e turned into a
  # silent exit of this script.
  callgrind_annotate "$work/cg.out" | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

declare -A count
for c in "${commits[@]}"; do
  short=$(git -C "$root" rev-parse --short "$c")
  git -C "$root" worktree add --detach "$work/$c" "$c" >/dev/null 2>&1
  cp "$root/bench/hit_path.cc" "$work/$c/bench/hit_path.cc"
  echo "hit_path_counts: building $short" >&2
  (cd "$work/$c" && ./bazelw build -c opt //bench:hit_path >&2)
  bin="$work/$c/bazel-bin/bench/hit_path"
  for w in "${workloads[@]}"; do
    name=${w%%:*}
    n=${w##*:}
    base=$(instructions "$bin" "$name" 0)
    total=$(instructions "$bin" "$name" "$n")
    per=$(((total - base) / n))
    # batch: per block allocated and freed, not per round.
    [[ $name == batch ]] && per=$((per / 10000))
    count[$short/$name]=$per
  done
  (cd "$work/$c" && ./bazelw shutdown >/dev/null 2>&1) || true
done

header="| workload |"
rule="| --- |"
for c in "${commits[@]}"; do
  header+=" $(git -C "$root" rev-parse --short "$c") |"
  rule+=" --: |"
done
echo "$header"
echo "$rule"
for w in "${workloads[@]}"; do
  name=${w%%:*}
  line="| \`$name\` |"
  for c in "${commits[@]}"; do line+=" ${count[$(git -C "$root" rev-parse --short "$c")/$name]} |"; done
  echo "$line"
done
