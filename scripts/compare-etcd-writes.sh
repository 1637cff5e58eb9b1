#!/usr/bin/env bash
# Concurrent writes and shared reads over etcd (issue 24): two builds side
# by side in one run, on one real 3-member etcd cluster on loopback
# (scripts/cluster.sh up --etcd-only, on ports of its own). Every server of
# every build runs for the whole run (idle but the one measured); each round
# measures, one after the other (the builds' order alternates per round):
#
#  * etcd's own write ceiling: `pod-bench etcd-ceiling`, 1 and 64 callers
#    sending a pod apply's transaction straight to etcd, no server;
#  * SyncPods ops/s and ack p50/p99 from the Go peer's `contractbench sync`
#    (one op in flight per session, every ack checked): 1 and 64 sessions on
#    one etcd replica ("etcd-x1"); 64 sessions over three replicas of one
#    registry ("etcd-x3": three contractbench processes at once, one per
#    replica, 22 + 21 + 21 sessions; ops/s summed, p50 the median of the
#    three, p99 the highest); 1 and 64 sessions on the embedded store (a
#    pod-server on a fresh data directory);
#  * ListPods calls/s with 64 callers (../shared/peers/h2load-unary.sh:
#    h2load, 4 connections x 16 streams, namespace production) on one etcd
#    replica and on the embedded store;
#  * what must not regress: WatchPods snapshots (10 a round, of every
#    pod) and fan-out to 1,000
#    watchers (pod-bench), on the embedded store and one etcd replica;
#
# for BEFORE (a pod-server of the code before) and AFTER (this checkout's
# release build), and, if VARIANT is set, for a third build on the etcd
# writes only (SyncPods on etcd-x1 and etcd-x3, and its own pod-bench's
# ceiling: for trying a change to the etcd client). After the rounds: the
# memory per idle watcher (WATCHERS over 10 connections) of each build's
# embedded store and etcd replica. Every store starts with PODS numbered pods.
#
# Where the time goes: during each ceiling, SyncPods and ListPods run the
# script samples, over the load's measured window (after its warm-up), the
# CPU seconds (/proc/PID/stat) of the three etcd members, of the server(s)
# measured and of the load tool, the whole machine's busy and idle time
# (/proc/stat: "others" is what none of those used, e.g. other builds),
# etcd's revision (revisions/s), each member's WAL fsyncs (count and time:
# how many writes share one fsync, and what an fsync takes) and the Range
# calls the members answered (how many lists share one quorum read).
#
# usage: scripts/compare-etcd-writes.sh BEFORE_SERVER
#   e.g. git worktree add --detach /tmp/before c89805d &&
#        cargo build --release --manifest-path /tmp/before/Cargo.toml --bin pod-server &&
#        scripts/compare-etcd-writes.sh /tmp/before/target/release/pod-server
# env: ROUNDS=3 PODS=1000 SECONDS_EACH=5 (each load's measured seconds)
#      WATCHERS=10000 (idle watchers held for the memory per watcher)
#      PEERS=../shared/peers (the Go peer; built with its build-go.sh if
#      $PEERS_OUT/bin/contractbench is missing)
#      VARIANT=DIR: a third build's target/release (its pod-server and pod-bench)
#      PORT_BASE=43000: etcd on PORT_BASE+379/479/579, servers on PORT_BASE+101..
# Prints Markdown tables of the medians (scripts/compare-etcd-writes.py) and
# leaves every run's record in target/compare-etcd-writes/STAMP.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[[ -n ${1:-} && -x $1 ]] || {
  echo "usage: $0 BEFORE_SERVER (a pod-server binary of the code before)" >&2
  exit 2
}
before_server=$(realpath "$1")
ROUNDS="${ROUNDS:-3}"
PODS="${PODS:-1000}"
SECONDS_EACH="${SECONDS_EACH:-5}"
WATCHERS="${WATCHERS:-10000}"
PORT_BASE="${PORT_BASE:-43000}"
peers=$(realpath "${PEERS:-$root/../shared/peers}")
peers_out="${PEERS_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/pod-peers}"
results="$root/target/compare-etcd-writes"
mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
runs="$results/$stamp.jsonl"
work="$results/$stamp"
mkdir -p "$work"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
bench="$root/target/release/pod-bench"
contractbench="$peers_out/bin/contractbench"
# build-go.sh rebuilds every Go binary (a minute of both cores): only if missing.
[[ -x $contractbench ]] || "$peers/build-go.sh" > "$results/build-go.log" 2>&1
declare -A server_of=([before]=$before_server [after]="$root/target/release/pod-server")
declare -A bench_of=([before]=$bench [after]=$bench)
builds=(before after)
if [[ -n ${VARIANT:-} ]]; then
  server_of[variant]=$(realpath "$VARIANT/pod-server")
  bench_of[variant]=$(realpath "$VARIANT/pod-bench")
  builds+=(variant)
fi

export CLUSTER_DIR="$work/cluster"
etcd_ports=($((PORT_BASE + 379)) $((PORT_BASE + 479)) $((PORT_BASE + 579)))
export CLUSTER_ETCD_PORTS="${etcd_ports[*]}"
export CLUSTER_PEER_PORTS="$((PORT_BASE + 380)) $((PORT_BASE + 480)) $((PORT_BASE + 580))"
export CLUSTER_POD_PORTS="$((PORT_BASE + 51)) $((PORT_BASE + 52)) $((PORT_BASE + 53))"
"$root/scripts/cluster.sh" up --etcd-only > "$work/cluster.log"
endpoints=$(printf 'http://127.0.0.1:%s,' "${etcd_ports[@]}")
endpoints=${endpoints%,}
mapfile -t etcd_pids < <(cat "$CLUSTER_DIR"/etcd{1,2,3}.pid)

pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  "$root/scripts/cluster.sh" down > /dev/null 2>&1 || true
  rm -rf "$work"/data-*
}
trap cleanup EXIT

# etcd's maintenance status from the member on PORT (JSON; empty if none).
etcd_status() { # PORT
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "POST /v3/maintenance/status HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}" >&3
    sed "1,/^\r\{0,1\}$/d" <&3' _ "$1" 2>/dev/null || true
}
revision() {
  local rev
  rev=$(etcd_status "${etcd_ports[0]}" | sed -n 's/.*"revision":"\([0-9]*\)".*/\1/p')
  echo "${rev:-null}"
}
# From the metrics of the member on PORT: its WAL fsyncs so far, count
# and seconds, and the Range calls it answered: [count, seconds, ranges].
fsyncs() { # PORT
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /metrics HTTP/1.0\r\n\r\n" >&3
    cat <&3' _ "$1" 2>/dev/null |
    awk '/^etcd_disk_wal_fsync_duration_seconds_count /{c=$2} /^etcd_disk_wal_fsync_duration_seconds_sum /{s=$2}
         /^grpc_server_handled_total\{.*grpc_method="Range"/{r+=$2}
         END{if (c == "") print "null"; else printf "[%s,%s,%d]", c, s, r}'
}
# Which member (1-3) leads, for the record: the servers and the ceiling
# send to member 1 first.
leader() {
  local i answer
  for i in 1 2 3; do
    answer=$(etcd_status "${etcd_ports[$i - 1]}")
    [[ $answer =~ \"member_id\":\"([0-9]+)\".*\"leader\":\"([0-9]+)\" ]] &&
      [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" ]] && { echo "$i"; return; }
  done
  echo 0
}

# CPU ticks (user + system) each process given has used so far.
ticks() { # PID...
  local pid stat fields used=()
  for pid in "$@"; do
    if stat=$(cat "/proc/$pid/stat" 2>/dev/null); then
      read -ra fields <<<"${stat##*) }"
      used+=($((fields[11] + fields[12])))
    else
      used+=(null)
    fi
  done
  (IFS=,; echo "[${used[*]}]")
}
# The machine's busy and idle ticks, all cores.
machine() {
  local _cpu user nice system idle iowait irq softirq steal
  read -r _cpu user nice system idle iowait irq softirq steal _ < /proc/stat
  echo "[$((user + nice + system + irq + softirq + steal)),$((idle + iowait))]"
}
snapshot() { # "SERVER PIDS" "LOAD PIDS"
  local servers load
  read -ra servers <<<"$1"
  read -ra load <<<"$2"
  # The CPU counters first, together with the time; etcd's answers after.
  printf '{"t":%s,"etcd":%s,"servers":%s,"load":%s,"machine":%s,"revision":%s,"fsyncs":[%s,%s,%s]}' \
    "$EPOCHREALTIME" "$(ticks "${etcd_pids[@]}")" "$(ticks "${servers[@]}")" \
    "$(ticks "${load[@]}")" "$(machine)" "$(revision)" \
    "$(fsyncs "${etcd_ports[0]}")" "$(fsyncs "${etcd_ports[1]}")" "$(fsyncs "${etcd_ports[2]}")"
}
# The resources used over LENGTH seconds, from DELAY seconds from now: one
# JSON object (compare-etcd-writes.py turns it into CPU cores and rates).
window() { # DELAY LENGTH "SERVER PIDS" "LOAD PIDS"
  sleep "$1"
  local start began=$EPOCHREALTIME
  start=$(snapshot "$3" "$4")
  # LENGTH from the first snapshot's start: it takes a while itself.
  sleep "$(awk -v l="$2" -v a="$began" -v b="$EPOCHREALTIME" 'BEGIN { d = l - (b - a); print (d > 0 ? d : 0) }')"
  printf '{"hz":%s,"start":%s,"end":%s}\n' "$(getconf CLK_TCK)" "$start" "$(snapshot "$3" "$4")"
}
# The measured window of a load whose steady state lasts SECONDS_EACH
# seconds from its warm-up's end: a little inside it at both ends (a
# snapshot takes about 0.1 s).
length=$(awk -v s="$SECONDS_EACH" 'BEGIN { print s - 0.4 }')

json_str() { # TEXT: as a JSON string (one line)
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/ }
  s=${s//$'\r'/}
  printf '"%s"' "$s"
}
# One record: the run's fields, then the rest (which names its "load").
record() { # BUILD SETUP ROUND JSON-FIELDS...
  local fields
  fields=$(IFS=,; echo "${*:4}")
  printf '{"build":"%s","setup":"%s","round":%s,%s}\n' "$1" "$2" "$3" "$fields" >> "$runs"
}
# pod-bench's --addr: every address of the setup, with its scheme.
urls() { # BUILD-SETUP
  local addrs=${addr_of[$1]}
  echo "http://${addrs//,/,http://}"
}

# Starts a pod-server of BUILD with ARGS as NAME on PORT and waits until it
# listens.
declare -A addr_of pids_of
start() { # BUILD SETUP PORT ARGS...
  local build=$1 setup=$2 port=$3 log
  shift 3
  log="$work/server-$build-$setup-$port.log"
  "${server_of[$build]}" --addr "127.0.0.1:$port" --pods "$PODS" "$@" > "$log" 2>&1 &
  pids+=($!)
  pids_of[$build-$setup]+="${pids_of[$build-$setup]:+ }$!"
  addr_of[$build-$setup]+="${addr_of[$build-$setup]:+,}127.0.0.1:$port"
  for _ in $(seq 600); do
    grep -q "pod-server listening" "$log" && return
    kill -0 "$!" 2>/dev/null || break
    sleep 0.1
  done
  echo "pod-server $build $setup on $port did not start:" >&2
  tail "$log" >&2
  exit 1
}

for index in "${!builds[@]}"; do
  build=${builds[$index]}
  base=$((PORT_BASE + 101 + 100 * index))
  if [[ $build != variant ]]; then
    start "$build" embedded "$base" --data-dir "$work/data-$build"
  fi
  start "$build" etcd-x1 $((base + 1)) --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-$build-x1/"
  for port in $((base + 2)) $((base + 3)) $((base + 4)); do
    start "$build" etcd-x3 "$port" --etcd-endpoints "$endpoints" --etcd-prefix "/bench-$stamp-$build-x3/"
  done
done

# etcd's ceiling: pod-bench of BUILD, CALLERS callers.
ceiling() { # BUILD ROUND CALLERS
  local out="$work/ceiling.json" load
  "${bench_of[$1]}" --json etcd-ceiling --etcd-endpoints "$endpoints" --callers "$3" \
    --seconds "$SECONDS_EACH" > "$out" 2>&1 &
  load=$!
  window 0.1 "$length" "" "$load" > "$work/window.json" &
  local sampler=$! ok=true
  wait "$load" || ok=false
  wait "$sampler"
  if $ok; then
    record "$1" etcd "$2" "\"window\":$(<"$work/window.json")" "$(tail -1 "$out" | sed 's/^{//; s/}$//')"
  else
    record "$1" etcd "$2" '"load":"etcd-ceiling"' "\"callers\":$3" "\"error\":$(json_str "$(tail -1 "$out")")"
  fi
}

# SyncPods through contractbench, SESSIONS split over the setup's servers:
# one contractbench process per server, all at once.
sync_sessions() { # BUILD SETUP ROUND SESSIONS
  local build=$1 setup=$2 round=$3 sessions=$4 addrs i share loads=() parts=() ok=true
  IFS=, read -ra addrs <<<"${addr_of[$build-$setup]}"
  local n=${#addrs[@]}
  for i in "${!addrs[@]}"; do
    share=$((sessions / n + (i < sessions % n ? 1 : 0)))
    "$contractbench" sync -addr "${addrs[$i]}" -s "$share" -w 1 -d "${SECONDS_EACH}s" \
      -warmup 1s -ns "cb-$build-$setup-r$round-s$sessions-$i" > "$work/sync-$i.txt" 2>&1 &
    loads+=($!)
  done
  window 1.1 "$length" "${pids_of[$build-$setup]}" "${loads[*]}" > "$work/window.json" &
  local sampler=$!
  for i in "${!loads[@]}"; do
    wait "${loads[$i]}" || ok=false
    parts+=("$(json_str "$(tail -1 "$work/sync-$i.txt")")")
  done
  wait "$sampler"
  record "$build" "$setup" "$round" '"load":"contractbench-sync"' "\"sessions\":$sessions" "\"ok\":$ok" \
    "\"parts\":[$(IFS=,; echo "${parts[*]}")]" "\"window\":$(<"$work/window.json")"
}

# ListPods with h2load, 64 callers (4 connections x 16 streams).
list_calls() { # BUILD SETUP ROUND
  local out="$work/h2load.txt" script load=
  "$peers/h2load-unary.sh" "${addr_of[$1-$2]}" 4 16 "$SECONDS_EACH" > "$out" 2>&1 &
  script=$!
  # The timed pass starts after the verified check pass: its h2load process.
  while kill -0 "$script" 2>/dev/null; do
    if grep -q '^check OK' "$out" 2>/dev/null; then
      load=$(pgrep -n -P "$script" -x h2load || true)
      [[ -n $load ]] && break
    fi
    sleep 0.05
  done
  local sampler='' ok=true
  if [[ -n $load ]]; then
    window 1.1 "$length" "${pids_of[$1-$2]}" "$load" > "$work/window.json" &
    sampler=$!
  fi
  wait "$script" || ok=false
  if [[ -n $sampler ]]; then wait "$sampler"; fi
  local result
  result=$(grep '^RESULT' "$out" || tail -1 "$out")
  if $ok && [[ -n $sampler ]]; then
    record "$1" "$2" "$3" '"load":"h2load-list"' '"ok":true' "\"result\":$(json_str "$result")" "\"window\":$(<"$work/window.json")"
  else
    record "$1" "$2" "$3" '"load":"h2load-list"' '"ok":false' "\"result\":$(json_str "$result")"
  fi
}

# A pod-bench load against the setup: its JSON lines as records.
pod_bench() { # BUILD SETUP ROUND ARGS...
  local build=$1 setup=$2 round=$3 line
  shift 3
  if "$bench" --addr "$(urls "$build-$setup")" --connections 3 --json \
    --namespace-tag "$build-$setup-r$round" "$@" > "$work/pod-bench.txt" 2>&1; then
    while read -r line; do
      if [[ $line == "{"* ]]; then record "$build" "$setup" "$round" "${line:1:-1}"; fi
    done < "$work/pod-bench.txt"
  else
    record "$build" "$setup" "$round" "\"load\":\"$1\"" "\"error\":$(json_str "$(tail -1 "$work/pod-bench.txt")")"
  fi
}

note() { # ROUND TEXT
  record - - "$1" '"load":"note"' "\"uptime\":$(json_str "$(uptime)")" "\"etcd_leader\":$(leader)" \
    "\"text\":$(json_str "$2")"
  echo "$(date -u +%H:%M:%S) round $1: $2 ($(uptime | sed 's/.*load/load/'))" >&2
}

for round in $(seq "$ROUNDS"); do
  order=("${builds[@]}")
  # The builds' order alternates, so that neither always goes first.
  ((round % 2)) || mapfile -t order < <(printf '%s\n' "${builds[@]}" | tac)
  note "$round" "etcd's ceiling"
  ceiling after "$round" 1
  for build in "${order[@]}"; do
    [[ $build == before ]] || ceiling "$build" "$round" 64
  done
  note "$round" "SyncPods"
  for build in "${order[@]}"; do
    sync_sessions "$build" etcd-x1 "$round" 64
    sync_sessions "$build" etcd-x3 "$round" 64
    [[ $build == variant ]] && continue
    sync_sessions "$build" etcd-x1 "$round" 1
    sync_sessions "$build" embedded "$round" 1
    sync_sessions "$build" embedded "$round" 64
  done
  note "$round" "ListPods, snapshots, fan-out"
  for build in "${order[@]}"; do
    [[ $build == variant ]] && continue
    for setup in embedded etcd-x1; do
      list_calls "$build" "$setup" "$round"
      pod_bench "$build" "$setup" "$round" watch --runs 10
      pod_bench "$build" "$setup" "$round" fanout --watchers 1000 --changes 200 --rate 100
    done
  done
done

note 0 "memory per idle watcher"
for build in before after; do
  for setup in embedded etcd-x1; do
    "$bench" --addr "$(urls "$build-$setup")" --connections 10 --json watchers --count "$WATCHERS" \
      --server-pid "${pids_of[$build-$setup]}" > "$work/pod-bench.txt" 2>&1 ||
      echo "watchers on $build $setup failed: $(tail -1 "$work/pod-bench.txt")" >&2
    while read -r line; do
      if [[ $line == "{"* ]]; then record "$build" "$setup" 0 "${line:1:-1}"; fi
    done < "$work/pod-bench.txt"
  done
done
note 0 "done"

python3 "$root/scripts/compare-etcd-writes.py" "$runs"
echo "runs: $runs"
