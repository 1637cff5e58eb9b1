#!/usr/bin/env bash
# The embedded store next to the logs on NATS JetStream, with 1 and 3
# replicas of the stream, on this machine, side by side: the setups run at
# the same time (idle but one), and each round measures them in turn.
#
#  * embedded: one `pod-server` on a fresh data directory (the default store);
#  * nats-r1:  one `pod-server --etcd-endpoints --nats-url` replica, its
#              stream with 1 replica (`--nats-replicas 1`);
#  * nats-r3:  two replicas (A and B) of one registry, their stream with 3
#              replicas.
#
# etcd is a real 3-member cluster on loopback (scripts/cluster.sh up
# --etcd-only, on ports of its own), NATS a 3-node JetStream cluster on
# loopback started here; each NATS setup has an etcd prefix and a stream of
# its own. Each round runs, with `pod-bench --json`: log uploads with 1 and
# 4 streams (LINES lines of 100 bytes; on nats-r3 through A alone), with
# the CPU time pod-server, nats-server and etcd spent on them (where the
# bottleneck is); and follow latency, from each upload's response to each
# of FOLLOWERS followers (UPLOADS one-line uploads at 100/s): on nats-r3
# uploading through A and following through B, on embedded through the one
# server. After the rounds: the memory per idle follower (IDLE of them) of
# the embedded server and of one nats-r3 replica.
#
# usage: scripts/compare-nats.sh
#        (env: ROUNDS=3 LINES=200000 FOLLOWERS=10 UPLOADS=500 IDLE=10000;
#        an embedded upload of 200,000 lines takes some 0.2 s, mostly
#        pod-bench starting: LINES=2000000 gives steadier upload figures)
# Prints the medians per setup, with ratios to embedded, and leaves every
# run's JSON in target/compare-nats (and `top` during round 1's uploads).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
results="$root/target/compare-nats"
ROUNDS="${ROUNDS:-3}"
LINES="${LINES:-200000}"
FOLLOWERS="${FOLLOWERS:-10}"
UPLOADS="${UPLOADS:-500}"
IDLE="${IDLE:-10000}"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
runs="$results/$stamp.jsonl"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
server="$root/target/release/pod-server"
bench="$root/target/release/pod-bench"
command -v nats-server > /dev/null || { echo "nats-server is missing (apt-get install nats-server)" >&2; exit 1; }

export CLUSTER_DIR="$results/cluster-$stamp"
export CLUSTER_ETCD_PORTS="43379 43479 43579" CLUSTER_PEER_PORTS="43380 43480 43580"
export CLUSTER_POD_PORTS="43051 43052 43053"
nats_ports=(44222 44322 44422)
route_ports=(44223 44323 44423)
monitor_ports=(44224 44324 44424)
endpoints=http://127.0.0.1:43379,http://127.0.0.1:43479,http://127.0.0.1:43579
nats_url=nats://127.0.0.1:44222,nats://127.0.0.1:44322,nats://127.0.0.1:44422

pids=()      # the pod-servers
nats_pids=() # the NATS nodes
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  kill "${nats_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  "$root/scripts/cluster.sh" down > /dev/null 2>&1 || true
  rm -rf "$results/data-$stamp" "$results/nats-$stamp" "$results/.times-$stamp"
}
trap cleanup EXIT

"$root/scripts/cluster.sh" up --etcd-only > "$results/cluster.log"

# The body of GET PATH on loopback port PORT, in at most 2 s (no curl needed).
http_get() { # PORT PATH
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" "$2" >&3
    sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" "$2" 2>/dev/null
}

# A 3-node JetStream cluster; ready when every node is healthy and the
# JetStream meta group has a leader.
routes=nats://127.0.0.1:${route_ports[0]},nats://127.0.0.1:${route_ports[1]},nats://127.0.0.1:${route_ports[2]}
for i in 0 1 2; do
  mkdir -p "$results/nats-$stamp/n$((i + 1))"
  nats-server -js -sd "$results/nats-$stamp/n$((i + 1))" -a 127.0.0.1 -p "${nats_ports[$i]}" \
    -m "${monitor_ports[$i]}" -n "n$((i + 1))" --cluster_name "bench-$stamp" \
    --cluster "nats://127.0.0.1:${route_ports[$i]}" --routes "$routes" \
    > "$results/nats-$((i + 1)).log" 2>&1 &
  nats_pids+=($!)
done
for i in 0 1 2; do
  for attempt in $(seq 300); do
    [[ $(http_get "${monitor_ports[$i]}" /healthz) == *'"status":"ok"'* ]] &&
      [[ $(http_get "${monitor_ports[$i]}" /jsz) =~ \"leader\":\ *\"n ]] && break
    if ((attempt == 300)) || ! kill -0 "${nats_pids[$i]}" 2>/dev/null; then
      echo "NATS node n$((i + 1)) is not ready:" >&2
      tail "$results/nats-$((i + 1)).log" >&2
      exit 1
    fi
    sleep 0.1
  done
done

# Starts a pod-server with ARGS on PORT and waits until it listens.
start() { # PORT ARGS...
  local port=$1
  shift
  "$server" --addr "127.0.0.1:$port" --no-sample "$@" > "$results/server-$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do
    grep -q "pod-server listening" "$results/server-$port.log" && return
    sleep 0.1
  done
  echo "pod-server on $port did not start:" >&2
  tail "$results/server-$port.log" >&2
  exit 1
}

start 43061 --data-dir "$results/data-$stamp"
start 43071 --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-r1/" \
  --nats-url "$nats_url" --nats-stream "bench-$stamp-r1" --nats-replicas 1
for port in 43081 43082; do
  start "$port" --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-r3/" \
    --nats-url "$nats_url" --nats-stream "bench-$stamp-r3" --nats-replicas 3
done
declare -A addrs=(
  [embedded]=http://127.0.0.1:43061
  [nats-r1]=http://127.0.0.1:43071
  [nats-r3]=http://127.0.0.1:43081 # replica A
)
declare -A servers=([embedded]="${pids[0]}" [nats-r1]="${pids[1]}" [nats-r3]="${pids[2]} ${pids[3]}")
replica_b=http://127.0.0.1:43082
setups=(embedded nats-r1 nats-r3)
etcd_pids=$(cat "$CLUSTER_DIR"/etcd{1,2,3}.pid)

# CPU seconds (user + system) the processes PID... have used in all.
cpu() {
  local pid total=0 stat fields
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra fields <<< "${stat##*) }"
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}

# Sets variable VAR to the CPU milliseconds the finished children of this
# shell have used (pod-bench, mostly): the second line of `times`, user and
# system. Not in a $(...): a forked shell starts with none.
children_cpu() { # VAR
  local line
  times > "$results/.times-$stamp"
  { read -r _ && read -r line; } < "$results/.times-$stamp"
  [[ $line =~ ^([0-9]+)m([0-9]+)\.([0-9]{3})s\ ([0-9]+)m([0-9]+)\.([0-9]{3})s ]] || return 1
  local -a t=("${BASH_REMATCH[@]}")
  printf -v "$1" %d $(((10#${t[1]} * 60 + 10#${t[2]}) * 1000 + 10#${t[3]} +
    (10#${t[4]} * 60 + 10#${t[5]}) * 1000 + 10#${t[6]}))
}

tag() { # SETUP ROUND: the JSON fields that say where a run belongs
  echo "\"setup\":\"$1\",\"round\":$2,"
}

measure() { # SETUP ROUND
  local setup=$1 round=$2 addr=${addrs[$1]}
  local common=(--connections 4 --json --namespace-tag "$setup-r$round")
  local before_pod before_nats before_etcd before_bench after_bench started top_pid= follow
  # shellcheck disable=SC2086 # lists of pids
  {
    before_pod=$(cpu ${servers[$setup]})
    before_nats=$(cpu "${nats_pids[@]}")
    before_etcd=$(cpu $etcd_pids)
    started=$EPOCHREALTIME
    children_cpu before_bench
    if ((round == 1)) && command -v top > /dev/null; then
      # Who is busy: top every half second through round 1's uploads.
      top -b -d 0.5 -w 150 > "$results/$stamp-top-$setup.txt" &
      top_pid=$!
    fi
    "$bench" --addr "$addr" "${common[@]}" upload --streams 1,4 --lines "$LINES" --line-bytes 100
    children_cpu after_bench
    if [[ -n $top_pid ]]; then
      kill "$top_pid"
      wait "$top_pid" || true
    fi
    # Clock ticks of 1/100 s (USER_HZ).
    awk -v s="$started" -v e="$EPOCHREALTIME" -v p=$(($(cpu ${servers[$setup]}) - before_pod)) \
      -v n=$(($(cpu "${nats_pids[@]}") - before_nats)) -v c=$(($(cpu $etcd_pids) - before_etcd)) \
      -v bench=$((after_bench - before_bench)) \
      'BEGIN { printf "{\"load\":\"upload-cpu\",\"seconds\":%.3f,\"pod_server_cpu_s\":%.2f,\"nats_cpu_s\":%.2f,\"etcd_cpu_s\":%.2f,\"bench_cpu_s\":%.2f}\n", e - s, p / 100, n / 100, c / 100, bench / 1000 }'
    case $setup in
      # Followers on the last address: B for nats-r3. A run whose
      # followers lost lines prints its row and fails: go on, it is counted.
      embedded) follow="$addr" ;;
      nats-r3) follow="$addr,$replica_b" ;;
      *) follow= ;;
    esac
    if [[ -n $follow ]]; then
      "$bench" --addr "$follow" "${common[@]}" follow-latency \
        --followers "$FOLLOWERS" --uploads "$UPLOADS" --rate 100 ||
        echo "round $round: follow-latency on $setup failed" >&2
    fi
  } | sed "s/^{/{$(tag "$setup" "$round")/" >> "$runs"
}

for round in $(seq "$ROUNDS"); do
  for setup in "${setups[@]}"; do
    echo "round $round: $setup" >&2
    measure "$setup" "$round"
  done
done

# Memory per idle follower: embedded, and nats-r3's replica B.
echo "idle followers" >&2
"$bench" --addr "${addrs[embedded]}" --connections 10 --json followers --count "$IDLE" \
  --server-pid "${pids[0]}" | sed "s/^{/{$(tag embedded 0)/" >> "$runs"
"$bench" --addr "$replica_b" --connections 10 --json followers --count "$IDLE" \
  --server-pid "${pids[3]}" | sed "s/^{/{$(tag nats-r3 0)/" >> "$runs"

python3 - "$runs" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
def med(setup, load, key, **match):
    values = [r[key] for r in rows if r["setup"] == setup and r["load"] == load
              and all(r.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else float("nan")
def share(setup, key):
    # CPU seconds per wall second during the uploads (1.00 = one core busy).
    return statistics.median([r[key] / r["seconds"] for r in rows
                              if r["setup"] == setup and r["load"] == "upload-cpu"] or [float("nan")])
setups = ["embedded", "nats-r1", "nats-r3"]
figures = [
    ("upload MB/s, 1 stream", lambda s: med(s, "upload", "megabytes_per_second", streams=1)),
    ("upload MB/s, 4 streams", lambda s: med(s, "upload", "megabytes_per_second", streams=4)),
    ("upload lines/s, 1 stream", lambda s: med(s, "upload", "lines_per_second", streams=1)),
    ("upload lines/s, 4 streams", lambda s: med(s, "upload", "lines_per_second", streams=4)),
    ("  cores busy in pod-server(s), uploads", lambda s: share(s, "pod_server_cpu_s")),
    ("  cores busy in nats-server x3, uploads", lambda s: share(s, "nats_cpu_s")),
    ("  cores busy in etcd x3, uploads", lambda s: share(s, "etcd_cpu_s")),
    ("  cores busy in pod-bench, uploads", lambda s: share(s, "bench_cpu_s")),
    ("follow p50 ms from the upload's ack", lambda s: med(s, "follow-latency", "p50_ms")),
    ("follow p99 ms from the upload's ack", lambda s: med(s, "follow-latency", "p99_ms")),
    ("follow max ms from the upload's ack", lambda s: med(s, "follow-latency", "max_ms")),
    ("follow p50 ms from the upload's send", lambda s: med(s, "follow-latency", "send_p50_ms")),
    ("follow p99 ms from the upload's send", lambda s: med(s, "follow-latency", "send_p99_ms")),
    ("upload p50 ms (1 line, its ack)", lambda s: med(s, "follow-latency", "upload_p50_ms")),
    ("bytes per idle follower", lambda s: med(s, "followers", "bytes_per_follower")),
]
def cell(v):
    return f"{v:>12.2f}" if v == v and abs(v) < 100 else (f"{v:>12.0f}" if v == v else f"{'-':>12}")
def ratio(a, b):
    return f"{a / b:.2f}" if b and b == b and a == a else "-"
print(f"{'figure (median)':<40}" + "".join(f"{s:>12}" for s in setups) + f"{'r1/emb':>9}{'r3/emb':>9}")
for name, value in figures:
    values = [value(s) for s in setups]
    print(f"{name:<40}" + "".join(cell(v) for v in values)
          + f"{ratio(values[1], values[0]):>9}{ratio(values[2], values[0]):>9}")
lost = [r for r in rows if r["load"] == "follow-latency" and r["received"] != r["expected"]]
if lost:
    print(f"{len(lost)} follow runs lost lines")
EOF
echo "runs: $runs"
