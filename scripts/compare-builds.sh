#!/usr/bin/env bash
# Two builds of pod-server side by side on this machine, in one run: the
# same neutral load tools as compare-go.sh (../shared/peers/bench.sh: h2load
# for unary ListPods, streambench for WatchPods snapshots, contractbench for
# uploads, sync sessions and fan-out), in memory and durable, each store's
# passes one after the other (before, after). Prints the medians and the
# ratios after/before: what a change did to the figures.
#
# usage: scripts/compare-builds.sh BEFORE_BINARY [AFTER_BINARY]
#        (AFTER defaults to this checkout's release build, built first;
#         env RUNS=3 D=10 PARTS=..., as compare-go.sh)
# e.g.   git worktree add /tmp/before HEAD~3 && cargo build --release \
#          --manifest-path /tmp/before/Cargo.toml --bin pod-server
#        scripts/compare-builds.sh /tmp/before/target/release/pod-server
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/peers"
results="$root/target/compare-builds"
mkdir -p "$results"
before=$(realpath "$1")
if [ -n "${2:-}" ]; then
  after=$(realpath "$2")
else
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server
  after="$root/target/release/pod-server"
fi

"$peers/build-go.sh" > "$results/build-go.log" 2>&1
export RUNS="${RUNS:-3}" D="${D:-10}"
parts="${PARTS:-h2 watch upload sync fanout}"
stamp=$(date +%Y%m%d-%H%M%S)
bench() { # NAME TEMPLATE
  echo "== $1 ($(date -Is))"
  PARTS="$parts" "$peers/bench.sh" "$2" | tee "$results/$stamp-$1.txt" | grep '^MEDIAN' || true
}
# contractbench reads every uploaded line back: keep them all (see compare-go.sh).
keep_logs="--log-bytes-per-pod 4294967296"
for store in memory durable; do
  for build in before after; do
    export POD_SERVER=${!build}
    if [ "$store" = memory ]; then
      bench "$store-$build" "$POD_SERVER --in-memory $keep_logs --addr {addr} --pods {pods}"
    else
      bench "$store-$build" "$root/scripts/durable-server.sh {addr} {pods} $keep_logs"
    fi
  done
done
for store in memory durable; do
  "$root/scripts/ratios.py" "$store-before" "$results/$stamp-$store-before.txt" \
    "$store-after" "$results/$stamp-$store-after.txt"
done
echo "logs: $results/$stamp-*.txt"
