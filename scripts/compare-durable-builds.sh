#!/usr/bin/env bash
# Two builds of pod-server on the durable store, side by side in one run:
# what a change to the store's syncing (issue 27) did to its figures. Each
# round starts each build (the order alternating per round) on a fresh data
# directory and measures, with this checkout's pod-bench:
#
#  * start-up: from spawning the server to its "listening" line, on a data
#    directory that does not exist yet (creating the database and syncing
#    the directories) and then again on the one it made (opening it);
#  * SyncPods ops/s and ack p50/p99, 1 and 64 sessions, one op in flight;
#  * uploads, MB/s, 1 and 4 streams of 100-byte lines, each acknowledged
#    after its sync.
#
# usage: scripts/compare-durable-builds.sh BEFORE_BINARY [AFTER_BINARY]
#        (AFTER defaults to this checkout's release build, built first)
# env: ROUNDS=5 SECONDS_EACH=5 LINES=1000000 PORT=46100
# Prints a Markdown table of the medians and of each round's after/before
# ratio; leaves the runs in target/compare-durable-builds/STAMP.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS="${ROUNDS:-5}"
SECONDS_EACH="${SECONDS_EACH:-5}"
LINES="${LINES:-1000000}"
PORT="${PORT:-46100}"
results="$root/target/compare-durable-builds"
stamp=$(date +%Y%m%d-%H%M%S)
work="$results/$stamp"
runs="$results/$stamp.jsonl"
mkdir -p "$work"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
target=${CARGO_TARGET_DIR:-$root/target}
declare -A server_of=([before]=$(realpath "$1") [after]=$(realpath "${2:-$target/release/pod-server}"))
bench="$target/release/pod-bench"

pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"/data
}
trap cleanup EXIT

# Starts BUILD on DIR; sets pid, and took_us: the time to its "listening" line.
took_us=
start() { # BUILD DIR
  local log="$work/server.log" began
  began=$(date +%s%N)
  # --log-bytes-per-pod: keep every uploaded line, as the Go comparisons do.
  "${server_of[$1]}" --addr "127.0.0.1:$PORT" --pods 0 --data-dir "$2" \
    --log-bytes-per-pod 4294967296 > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 6000); do
    if grep -q "pod-server listening" "$log"; then
      took_us=$((($(date +%s%N) - began) / 1000))
      return
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.001
  done
  echo "pod-server $1 did not start:" >&2
  tail "$log" >&2
  exit 1
}
stop() {
  kill "$pid" && wait "$pid" 2>/dev/null || true
  pid=
}
record() { # BUILD ROUND OUTPUT-FILE
  local line
  while read -r line; do
    [[ $line == "{"* ]] && printf '{"build":"%s","round":%s,%s\n' "$1" "$2" "${line:1}" >> "$runs"
  done < "$3"
  grep -v '^{' "$3" >&2 || true
}
measure() { # BUILD ROUND
  local build=$1 round=$2 out="$work/bench.txt" data="$work/data/new" created opened
  rm -rf "$work/data"
  start "$build" "$data"
  created=$took_us
  stop
  start "$build" "$data"
  opened=$took_us
  printf '{"build":"%s","round":%s,"load":"start","created_us":%s,"opened_us":%s}\n' \
    "$build" "$round" "$created" "$opened" >> "$runs"
  "$bench" --addr "http://127.0.0.1:$PORT" --json sync --sessions 1,64 \
    --seconds "$SECONDS_EACH" > "$out" 2>&1 || true
  record "$build" "$round" "$out"
  "$bench" --addr "http://127.0.0.1:$PORT" --json upload --streams 1,4 \
    --lines "$LINES" > "$out" 2>&1 || true
  record "$build" "$round" "$out"
  stop
}

for round in $(seq "$ROUNDS"); do
  order=(before after)
  ((round % 2)) || order=(after before)
  echo "$(date -u +%H:%M:%S) round $round: ${order[*]} ($(uptime | sed 's/.*load/load/'))" >&2
  for build in "${order[@]}"; do measure "$build" "$round"; done
done

python3 - "$runs" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
figures = [
    ("start", None, "created_us", "start-up, new data directory, ms", 1e-3),
    ("start", None, "opened_us", "start-up, existing data directory, ms", 1e-3),
    ("sync", ("sessions", 1), "ops_per_second", "SyncPods ops/s, 1 session", 1),
    ("sync", ("sessions", 64), "ops_per_second", "SyncPods ops/s, 64 sessions", 1),
    ("upload", ("streams", 1), "megabytes_per_second", "uploads MB/s, 1 stream", 1),
    ("upload", ("streams", 4), "megabytes_per_second", "uploads MB/s, 4 streams", 1),
]
def cells(build, load, key, field):
    return {r["round"]: r[field] for r in rows
            if r["build"] == build and r["load"] == load and field in r
            and (key is None or r.get(key[0]) == key[1])}
print("| figure (median of %d rounds) | before | after | after / before |" % len({r["round"] for r in rows}))
print("|---|---|---|---|")
for load, key, field, name, scale in figures:
    b, a = cells("before", load, key, field), cells("after", load, key, field)
    med = lambda d: statistics.median(d.values()) * scale if d else float("nan")
    ratios = [a[k] / b[k] for k in a if k in b and b[k]]
    ratio = f"{statistics.median(ratios):.2f}x" if ratios else ""
    print(f"| {name} | {med(b):,.1f} | {med(a):,.1f} | {ratio} |")
PY
echo "runs: $runs"
