#!/usr/bin/env bash
# The cost of TLS towards etcd (issue 26): the same replica measured over
# plaintext and over TLS with client certificates, side by side in one run,
# on one real 3-member etcd cluster on loopback that serves both: each
# member listens on an http:// client URL and on an https:// one with
# --client-cert-auth (certificates of `pod-server --make-certs`). Two
# pod-server replicas (release build), one per side, each on its own
# registry (prefix) of PODS pods, run for the whole run; each round
# measures, one after the other (the sides' order alternates per round):
#
#  * etcd's own write ceiling, 64 callers (`pod-bench etcd-ceiling`, with
#    --etcd-cafile/--etcd-certfile/--etcd-keyfile on the TLS side);
#  * SyncPods ops/s and ack p50/p99, 64 sessions (`pod-bench sync`, one op
#    in flight per session, over 4 connections);
#  * ListPods calls/s and p50/p99, 64 callers (`pod-bench unary`, namespace
#    production, over 4 connections).
#
# What scripts/compare-etcd-writes.sh measures with the Go peer's
# contractbench and h2load, here with pod-bench alone (neither Go nor h2load
# is needed), so the figures are comparable within this run only.
#
# usage: scripts/compare-etcd-tls.sh
# env: ROUNDS=3 PODS=1000 SECONDS_EACH=5 PORT_BASE=45000
# Prints a Markdown table of the medians and the median of each round's
# TLS / plaintext ratio; leaves the runs in target/compare-etcd-tls/STAMP.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS="${ROUNDS:-3}"
PODS="${PODS:-1000}"
SECONDS_EACH="${SECONDS_EACH:-5}"
PORT_BASE="${PORT_BASE:-45000}"
results="$root/target/compare-etcd-tls"
stamp=$(date +%Y%m%d-%H%M%S)
work="$results/$stamp"
runs="$results/$stamp.jsonl"
mkdir -p "$work"

command -v etcd >/dev/null || { echo "etcd is missing: apt-get install etcd-server" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
target=${CARGO_TARGET_DIR:-$root/target}
server="$target/release/pod-server"
bench="$target/release/pod-bench"
"$server" --make-certs "$work/certs" > /dev/null
certs="$work/certs"

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"/etcd?
}
trap cleanup EXIT

# Member i: peer PORT_BASE+i*10, plaintext client +1, TLS client +2,
# metrics (its /health, plain HTTP) +3.
port() { echo $((PORT_BASE + $1 * 10 + $2)); }
initial=$(for i in 1 2 3; do printf 'm%s=http://127.0.0.1:%s,' "$i" "$(port "$i" 0)"; done)
initial=${initial%,}
for i in 1 2 3; do
  plain="http://127.0.0.1:$(port "$i" 1)" secure="https://127.0.0.1:$(port "$i" 2)"
  etcd --name "m$i" --data-dir "$work/etcd$i" \
    --listen-peer-urls "http://127.0.0.1:$(port "$i" 0)" \
    --initial-advertise-peer-urls "http://127.0.0.1:$(port "$i" 0)" \
    --listen-client-urls "$plain,$secure" --advertise-client-urls "$plain,$secure" \
    --listen-metrics-urls "http://127.0.0.1:$(port "$i" 3)" \
    --client-cert-auth --trusted-ca-file "$certs/ca.pem" \
    --cert-file "$certs/server.pem" --key-file "$certs/server-key.pem" \
    --initial-cluster "$initial" --initial-cluster-state new \
    --initial-cluster-token "tls-bench-$stamp" \
    --heartbeat-interval 50 --election-timeout 500 \
    --experimental-watch-progress-notify-interval 1s > "$work/etcd$i.log" 2>&1 &
  pids+=($!)
done
# One HTTP/1.0 GET's body (no curl needed).
get() { # PORT PATH
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\n\r\n" "$2" >&3; sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" "$2" 2>/dev/null || true
}
for i in 1 2 3; do
  for _ in $(seq 300); do
    [[ $(get "$(port "$i" 3)" /health) == *'"health":"true"'* ]] && continue 2
    sleep 0.1
  done
  echo "etcd m$i is not healthy:" >&2
  tail "$work/etcd$i.log" >&2
  exit 1
done

endpoints() { # SCHEME SLOT
  local urls=() i
  for i in 1 2 3; do urls+=("$1://127.0.0.1:$(port "$i" "$2")"); done
  (IFS=,; echo "${urls[*]}")
}
declare -A endpoints_of=([plain]=$(endpoints http 1) [tls]=$(endpoints https 2))
tls_flags=(--etcd-cafile "$certs/ca.pem" --etcd-certfile "$certs/client.pem"
  --etcd-keyfile "$certs/client-key.pem")
flags() { # SIDE
  [[ $1 == tls ]] && echo "${tls_flags[@]}"
  return 0
}

declare -A addr_of
start() { # SIDE PORT
  local side=$1 port=$2 log="$work/server-$1.log"
  # shellcheck disable=SC2046 # the flags are words without spaces
  "$server" --addr "127.0.0.1:$port" --pods "$PODS" --etcd-endpoints "${endpoints_of[$side]}" \
    --etcd-prefix "/tls-bench-$stamp-$side/" $(flags "$side") > "$log" 2>&1 &
  pids+=($!)
  addr_of[$side]="http://127.0.0.1:$port"
  for _ in $(seq 600); do
    grep -q "pod-server listening" "$log" && return
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  echo "pod-server $side did not start:" >&2
  tail "$log" >&2
  exit 1
}
start plain $((PORT_BASE + 101))
start tls $((PORT_BASE + 102))

record() { # SIDE ROUND OUTPUT-FILE
  local line
  while read -r line; do
    [[ $line == "{"* ]] && printf '{"side":"%s","round":%s,%s\n' "$1" "$2" "${line:1}" >> "$runs"
  done < "$3"
  grep -v '^{' "$3" >&2 || true
}
measure() { # SIDE ROUND
  local side=$1 round=$2 out="$work/bench.txt"
  # shellcheck disable=SC2046
  "$bench" --json etcd-ceiling --etcd-endpoints "${endpoints_of[$side]}" $(flags "$side") \
    --callers 64 --seconds "$SECONDS_EACH" > "$out" 2>&1 || true
  record "$side" "$round" "$out"
  "$bench" --addr "${addr_of[$side]}" --connections 4 --json --namespace-tag "$side-r$round" \
    sync --sessions 64 --seconds "$SECONDS_EACH" > "$out" 2>&1 || true
  record "$side" "$round" "$out"
  "$bench" --addr "${addr_of[$side]}" --connections 4 --json \
    unary --concurrency 64 --seconds "$SECONDS_EACH" > "$out" 2>&1 || true
  record "$side" "$round" "$out"
}

for round in $(seq "$ROUNDS"); do
  order=(plain tls)
  ((round % 2)) || order=(tls plain)
  echo "$(date -u +%H:%M:%S) round $round: ${order[*]} ($(uptime | sed 's/.*load/load/'))" >&2
  for side in "${order[@]}"; do measure "$side" "$round"; done
done

python3 - "$runs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
loads = [("etcd-ceiling", "txns_per_second", "etcd's own ceiling, 64 callers, txns/s"),
         ("sync", "ops_per_second", "SyncPods ops/s, 64 sessions, one replica"),
         ("unary", "calls_per_second", "ListPods calls/s, 64 callers, one replica")]
def cell(side, load, field):
    return {r["round"]: r[field] for r in rows if r["side"] == side and r["load"] == load and field in r}
print("| figure (median of %d rounds) | plaintext | TLS | TLS / plaintext |" % len({r["round"] for r in rows}))
print("|---|---|---|---|")
for load, rate, name in loads:
    figs = {}
    for side in ("plain", "tls"):
        r, p50, p99 = (cell(side, load, f) for f in (rate, "p50_ms", "p99_ms"))
        figs[side] = r
        med = lambda d: statistics.median(d.values()) if d else float("nan")
        figs[side + "_text"] = f"{med(r):,.0f} (p50 {med(p50):.2f}, p99 {med(p99):.2f} ms)"
    ratios = [figs["tls"][k] / figs["plain"][k] for k in figs["tls"] if k in figs["plain"] and figs["plain"][k]]
    ratio = f"{statistics.median(ratios):.2f}x" if ratios else ""
    print(f"| {name} | {figs['plain_text']} | {figs['tls_text']} | {ratio} |")
PY
echo "runs: $runs"
