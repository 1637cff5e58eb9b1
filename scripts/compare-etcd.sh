#!/usr/bin/env bash
# The embedded store next to the etcd store, with 1 and 3 replicas, on this
# machine, side by side: the three setups run at the same time (idle but
# one), and each round measures them in turn.
#
#  * embedded: one `pod-server` on a fresh data directory (the default store);
#  * etcd x1:  one `pod-server --etcd-endpoints` replica;
#  * etcd x3:  three replicas of one registry, the load spread over them.
#
# etcd is a real 3-member cluster on loopback (scripts/cluster.sh up
# --etcd-only, on ports of its own). Every setup starts with PODS numbered
# pods. Each round runs, with `pod-bench --json`: unary ListPods (64
# callers), a WatchPods snapshot, SyncPods with 1 and 64 sessions, fan-out
# to 1,000 watchers (200 changes at 100/s). After the rounds: etcd's own
# count of its watchers with the fan-out's watchers open, and the memory
# per idle watcher of one replica.
#
# usage: scripts/compare-etcd.sh     (env: ROUNDS=3 PODS=1000 SECONDS_EACH=3)
# Prints the medians per setup and leaves every run's JSON in target/compare-etcd.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
results="$root/target/compare-etcd"
ROUNDS="${ROUNDS:-3}"
PODS="${PODS:-1000}"
SECONDS_EACH="${SECONDS_EACH:-3}"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
runs="$results/$stamp.jsonl"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
server="$root/target/release/pod-server"
bench="$root/target/release/pod-bench"

export CLUSTER_DIR="$results/cluster-$stamp"
export CLUSTER_ETCD_PORTS="42379 42479 42579" CLUSTER_PEER_PORTS="42380 42480 42580"
export CLUSTER_POD_PORTS="42051 42052 42053"
"$root/scripts/cluster.sh" up --etcd-only > "$results/cluster.log"
endpoints=http://127.0.0.1:42379,http://127.0.0.1:42479,http://127.0.0.1:42579

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  "$root/scripts/cluster.sh" down > /dev/null 2>&1 || true
  rm -rf "$results/data-$stamp"
}
trap cleanup EXIT

# Starts a pod-server with ARGS on PORT and waits until it listens.
start() { # PORT ARGS...
  local port=$1
  shift
  "$server" --addr "127.0.0.1:$port" --pods "$PODS" "$@" > "$results/server-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    grep -q "pod-server listening" "$results/server-$port.log" && return
    sleep 0.1
  done
  echo "pod-server on $port did not start:" >&2
  tail "$results/server-$port.log" >&2
  exit 1
}

start 42061 --data-dir "$results/data-$stamp"
start 42071 --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-x1/"
for port in 42081 42082 42083; do
  start "$port" --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-x3/"
done
declare -A addrs=(
  [embedded]=http://127.0.0.1:42061
  [etcd-x1]=http://127.0.0.1:42071
  [etcd-x3]=http://127.0.0.1:42081,http://127.0.0.1:42082,http://127.0.0.1:42083
)
setups=(embedded etcd-x1 etcd-x3)

measure() { # SETUP ROUND
  local setup=$1 round=$2 addr=${addrs[$1]}
  local tag="r$round"
  local common=(--addr "$addr" --connections 3 --json --namespace-tag "$setup-$tag")
  {
    "$bench" "${common[@]}" unary --concurrency 64 --seconds "$SECONDS_EACH"
    "$bench" "${common[@]}" watch --runs 1
    "$bench" "${common[@]}" sync --sessions 1,64 --seconds "$SECONDS_EACH"
    "$bench" "${common[@]}" fanout --watchers 1000 --changes 200 --rate 100
  } | sed "s/^{/{\"setup\":\"$setup\",\"round\":$round,/" >> "$runs"
}

for round in $(seq "$ROUNDS"); do
  for setup in "${setups[@]}"; do
    echo "round $round: $setup" >&2
    measure "$setup" "$round"
  done
done

# etcd's watchers while 1,000 clients watch the 3 replicas.
metric() {
  local body
  body=$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/42379; printf "GET /metrics HTTP/1.0\r\n\r\n" >&3; cat <&3')
  echo "$body" | awk '/^etcd_debugging_mvcc_watcher_total /{print $2}'
}
before=$(metric)
"$bench" --addr "${addrs[etcd-x3]}" --connections 3 --json watchers --count 1000 \
  --server-pid "${pids[2]}" --hold 2 > /dev/null &
held=$!
sleep 1.5
during=$(metric)
wait "$held"
echo "etcd watchers: $before with 4 replicas idle, $during with 1,000 clients watching 3 of them"

# Memory per idle watcher: embedded, and one etcd replica.
for setup in embedded etcd-x1; do
  pid=${pids[0]}
  [[ $setup == etcd-x1 ]] && pid=${pids[1]}
  "$bench" --addr "${addrs[$setup]}" --connections 10 --json watchers --count 10000 \
    --server-pid "$pid" | sed "s/^{/{\"setup\":\"$setup\",\"round\":0,/" >> "$runs"
done

python3 - "$runs" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
def med(setup, load, key, **match):
    values = [r[key] for r in rows if r["setup"] == setup and r["load"] == load
              and all(r.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else float("nan")
figures = [
    ("ListPods calls/s (64 callers)", "unary", "calls_per_second", {}),
    ("ListPods p99 ms", "unary", "p99_ms", {}),
    ("WatchPods snapshot pods/s", "watch", "pods_per_second", {}),
    ("SyncPods ops/s, 1 session", "sync", "ops_per_second", {"sessions": 1}),
    ("SyncPods ops/s, 64 sessions", "sync", "ops_per_second", {"sessions": 64}),
    ("fan-out p50 ms from send, 1,000 watchers", "fanout", "send_p50_ms", {"watchers": 1000}),
    ("fan-out p99 ms from send, 1,000 watchers", "fanout", "send_p99_ms", {"watchers": 1000}),
    ("bytes per idle watcher (10,000)", "watchers", "bytes_per_watcher", {}),
]
setups = ["embedded", "etcd-x1", "etcd-x3"]
print(f"{'figure (median)':<42}" + "".join(f"{s:>12}" for s in setups) + f"{'x1/emb':>9}{'x3/x1':>8}")
for name, load, key, match in figures:
    values = [med(s, load, key, **match) for s in setups]
    ratio = lambda a, b: f"{a / b:.2f}" if b and b == b and a == a else "-"
    print(f"{name:<42}" + "".join(f"{v:>12.1f}" for v in values)
          + f"{ratio(values[1], values[0]):>9}{ratio(values[2], values[1]):>8}")
EOF
echo "runs: $runs"
