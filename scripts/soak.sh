#!/usr/bin/env bash
# Rounds of mixed load against one pod-server process, printing the
# server's resident memory after each round once its clients are gone.
# Memory that keeps growing round after round is a leak; memory that
# levels off is caches and allocator pools filling once.
#
# Each round: sync sessions (1 and 64), uploads (1 and 4 streams of
# 200,000 lines), fan-out to 1,000 watchers, 2,000 idle watchers opened
# and closed, and unary lists.
#
# usage: scripts/soak.sh [rounds=5]      (env: STORE=memory|durable)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds="${1:-5}"
addr=127.0.0.1:50071
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
data=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$data"' EXIT
if [ "${STORE:-memory}" = memory ]; then store=(--in-memory); else store=(--data-dir "$data/pods"); fi
"$root/target/release/pod-server" "${store[@]}" --addr "$addr" --pods 100 2> "$data/server.log" &
server=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/${addr##*:}") 2>/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$server/status"; }
threads() { awk '/Threads/ {print $2}' "/proc/$server/status"; }
# One namespace tag for every round: the rounds reuse the same pods, so the
# store's content stops growing once their logs reach their retention limit.
bench() { "$root/target/release/pod-bench" --addr "http://$addr" --namespace-tag soak --json "$@" > /dev/null; }
echo "round  server_rss_bytes  threads  (after the round's clients are gone)"
echo "0      $(rss)  $(threads)"
for round in $(seq "$rounds"); do
  bench sync --sessions 1,64 --seconds 3
  bench --connections 4 upload --streams 1,4 --lines 200000
  bench --connections 4 fanout --watchers 1000 --changes 100
  bench --connections 10 watchers --count 2000 --server-pid "$server"
  bench unary --concurrency 16 --seconds 2
  sleep 1 # let the server finish closing connections the clients just dropped
  echo "$round      $(rss)  $(threads)"
done
