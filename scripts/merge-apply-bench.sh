#!/usr/bin/env bash
# What a merging apply of sync-pods costs (`apply NS/NAME replicas=N`: it
# reads the pod, then applies at the version it read) in a namespace of
# SMALL pods and in one of BIG pods, on one in-memory pod-server holding
# both: APPLIES merging applies through the real sync-pods binary, timed as
# a whole, RUNS times each; prints every run and the median per apply, and
# the ratio big/small (issue 24's target: within 2x).
#
# Given a revision, it measures that revision's binaries too, in the same
# run, before this checkout's: it is built from `git archive` under
# target/merge-apply-bench/ with target/ as its target directory, so the
# dependencies built for this checkout are shared and only the crate is
# compiled again.
#
# usage: scripts/merge-apply-bench.sh [BEFORE_REVISION]
#        (env RUNS=3 APPLIES=200 SMALL=10 BIG=100000; BUILT=1 measures the
#         binaries of the last run again, without building)
# e.g.   scripts/merge-apply-bench.sh c89805d
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/merge-apply-bench"
runs=${RUNS:-3} applies=${APPLIES:-200} small=${SMALL:-10} big=${BIG:-100000}
mkdir -p "$work"

# build NAME MANIFEST: release pod-server and sync-pods, kept as $work/NAME/.
# The two checkouts' crates get the same artifact names in one target
# directory (cargo hashes a path package relative to its workspace), so
# cargo could take one for the other's, fresh: the crate is cleaned first
# (only it; the dependencies stay built).
build() {
  if [ -n "${BUILT:-}" ] && [ -x "$work/$1/sync-pods" ]; then
    return
  fi
  cargo clean --release --quiet --manifest-path "$2" --target-dir "$root/target" -p pod-service
  cargo build --release --quiet --manifest-path "$2" --target-dir "$root/target" \
    --bin pod-server --bin sync-pods
  mkdir -p "$work/$1"
  cp "$root/target/release/pod-server" "$root/target/release/sync-pods" "$work/$1/"
}
# Whether a build has the field: its server refuses a name without a namespace.
has_names() {
  grep -q "must be empty without a namespace" "$1/pod-server" && echo yes || echo no
}
builds=()
if [ -n "${1:-}" ]; then
  revision=$(git -C "$root" rev-parse "$1^{commit}")
  # Extracted again only for another revision: new files would rebuild it.
  if [ "$(cat "$work/before-src/.revision" 2>/dev/null)" != "$revision" ]; then
    rm -rf "$work/before-src"
    mkdir -p "$work/before-src"
    git -C "$root" archive "$revision" | tar -x -C "$work/before-src"
    echo "$revision" >"$work/before-src/.revision"
  fi
  build before "$work/before-src/Cargo.toml"
  builds+=(before)
fi
build after "$root/Cargo.toml"
builds+=(after)

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pods NAMESPACE N: a script of N whole applies (every field named: no read).
pods() {
  awk -v ns="$1" -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "apply %s/pod-%d status=Running replicas=1\n", ns, i }'
}

# merges NAMESPACE N: APPLIES merging applies (replicas only) over its N pods.
merges() {
  awk -v ns="$1" -v n="$2" -v k="$applies" 'BEGIN { for (i = 0; i < k; i++) printf "apply %s/pod-%d replicas=%d\n", ns, i % n, i + 2 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for name in "${builds[@]}"; do
  echo "$name: reads one pod by name: $(has_names "$work/$name")"
done
printf '%-7s %-10s %8s  %s  %s\n' build namespace pods "ms per merging apply, each run" median
summary=()
for name in "${builds[@]}"; do
  bin="$work/$name"
  port=$(free_port)
  "$bin/pod-server" --in-memory --no-sample --addr "127.0.0.1:$port" 2>"$work/$name-server.log" &
  server=$!
  trap 'kill $server 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  url="http://127.0.0.1:$port"
  # Loaded in sessions of 10,000 ops: the figure is about the merging
  # applies, not about one session pipelining a hundred thousand.
  rm -f "$work"/load-*
  { pods small "$small"; pods big "$big"; } | split -l 10000 - "$work/load-"
  for load in "$work"/load-*; do
    "$bin/sync-pods" --addr "$url" <"$load" >/dev/null
  done
  for namespace in small big; do
    n=${!namespace}
    merges "$namespace" "$n" >"$work/merges-$namespace"
    times=()
    for _ in $(seq "$runs"); do
      start=$(date +%s.%N)
      "$bin/sync-pods" --addr "$url" <"$work/merges-$namespace" >"$work/$name-$namespace.out"
      end=$(date +%s.%N)
      times+=("$(echo "($end - $start) * 1000 / $applies" | bc -l | xargs printf '%.2f')")
    done
    med=$(printf '%s\n' "${times[@]}" | median)
    printf '%-7s %-10s %8d  %s  %s\n' "$name" "$namespace" "$n" "${times[*]}" "$med"
    summary+=("$name $namespace $med")
  done
  kill "$server"
  wait "$server" 2>/dev/null || true
  trap - EXIT
done
echo
printf '%s\n' "${summary[@]}" | awk '
  { ms[$1 "," $2] = $3; if (!seen[$1]++) order[++n] = $1 }
  END { for (i = 1; i <= n; i++) { b = order[i]
    printf "%s: big/small = %.1fx\n", b, ms[b ",big"] / ms[b ",small"] } }'
