#!/usr/bin/env bash
# Side by side on this machine: the Go full-contract peer, then this
# project's server in memory, then durable, one after the other, each driven
# by the same neutral load tools with the same settings (../shared/peers:
# h2load for unary ListPods, streambench for WatchPods snapshots,
# contractbench for uploads, sync sessions and fan-out). Prints each
# server's medians and the ratios ours/Go.
#
# Then runs scripts/compare-scaling.sh (cost growth, fan-out sizes, memory
# per watcher), so that this one command reproduces every figure of
# BENCHMARKS.md.
#
# usage: scripts/compare-go.sh          (env: RUNS=3 D=10 PARTS=..., see bench.sh;
#                                        SCALING=0 skips compare-scaling.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/peers"
out="${PEERS_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/pod-peers}"
results="$root/target/compare-go"
mkdir -p "$results"

"$peers/build-go.sh" > "$results/build-go.log" 2>&1
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server

export RUNS="${RUNS:-3}" D="${D:-10}"
parts="${PARTS:-h2 watch upload sync fanout}"
stamp=$(date +%Y%m%d-%H%M%S)
bench() { # NAME PARTS TEMPLATE
  echo "== $1 ($(date -Is))"
  # bench.sh's own summary stops at a metric it cannot parse (a negative
  # fan-out latency: watchers that beat the writer's ack); the ratios below
  # use what it did print.
  PARTS="$2" "$peers/bench.sh" "$3" | tee "$results/$stamp-$1.txt" | grep '^MEDIAN' || true
}
bench go "$parts ceiling" "$out/bin/pod-fullserver-go -addr {addr} -pods {pods}"
# contractbench reads every uploaded line back, and the Go peer keeps all of
# them: lift the per-pod log limit (16 MiB by default) to match.
keep_logs="--log-bytes-per-pod 4294967296"
bench memory "$parts" "$root/target/release/pod-server --in-memory $keep_logs --addr {addr} --pods {pods}"
bench durable "$parts" "$root/scripts/durable-server.sh {addr} {pods} $keep_logs"

"$root/scripts/ratios.py" go "$results/$stamp-go.txt" \
  memory "$results/$stamp-memory.txt" durable "$results/$stamp-durable.txt"
echo "logs: $results/$stamp-*.txt and $out/results/"

# Cost growth, fan-out at 100 / 1,000 / 10,000 watchers and memory per
# watcher, side by side too (SCALING=0 to skip).
if [ "${SCALING:-1}" != 0 ]; then
  "$root/scripts/compare-scaling.sh"
fi
