#!/usr/bin/env bash
# The server's CPU work for a fixed set of calls, counted in instructions by
# callgrind (repeatable whatever else the machine does, unlike rates), for
# two builds of pod-server: what a change did to each hot path.
#
# Each build serves an in-memory store of 10,000 numbered pods under
# `valgrind --tool=callgrind`; counters are zeroed once it listens, then
# pod-bench (this checkout's) runs each load against it, and the server's
# instructions are read after each one. Printed per unit of work: per
# ListPods call (the 3,333 pods of `dev`), per pod of a WatchPods snapshot,
# per SyncPods op (1 session, 64 ops in flight, 64 sessions), per change
# delivered to a watcher, per uploaded line (1 and 4 streams).
#
# usage: scripts/callgrind-builds.sh BEFORE_BINARY [AFTER_BINARY]
#        (AFTER defaults to this checkout's release build)
# BEFORE_ARGS and AFTER_ARGS add flags to each server (e.g. a token file and
# a policy file); pod-bench sends POD_SERVICE_TOKEN if it is set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
bench="$root/target/release/pod-bench"
before=$(realpath "$1")
after=$(realpath "${2:-$root/target/release/pod-server}")
out="$root/target/callgrind-builds"
mkdir -p "$out"
port=50611

# Instructions the server ran since the last zeroing, then zero again.
instructions() { # PID
  callgrind_control --dump "$1" > /dev/null 2>&1
  local file
  file=$(ls -t "$out"/callgrind.out."$1"* | head -1)
  awk '/^summary:|^totals:/ {print $2; exit}' "$file"
  rm -f "$out"/callgrind.out."$1"*
  callgrind_control --zero "$1" > /dev/null 2>&1
}

# Runs one pod-bench load; prints the unit count from its JSON output.
load() { # FIELD ARGS...
  local field=$1
  shift
  "$bench" --addr "http://127.0.0.1:$port" --json "$@" |
    python3 -c "import json,sys; print(sum(json.loads(l)['$field'] for l in sys.stdin))"
}

measure() { # NAME BINARY [SERVER FLAGS...]
  local name=$1 binary=$2
  shift 2
  rm -f "$out"/callgrind.out.*
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
    "$binary" --in-memory --pods 10000 --addr "127.0.0.1:$port" "$@" 2> "$out/$name.server.log" &
  local pid=$!
  for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
  callgrind_control --zero "$pid" > /dev/null 2>&1
  local units ins
  row() { printf '%-8s %-28s %14s %10s %12.0f\n' "$name" "$1" "$ins" "$units" "$(awk "BEGIN {print $ins / $units}")"; }
  units=$(load calls unary --namespace dev --concurrency 8 --seconds 4); ins=$(instructions $pid); row "ListPods call"
  units=$(load pods watch --runs 10); ins=$(instructions $pid); row "WatchPods snapshot pod"
  units=$(load ops sync --sessions 1 --seconds 4); ins=$(instructions $pid); row "SyncPods op, 1 session"
  units=$(load ops sync --sessions 1 --in-flight 64 --seconds 4); ins=$(instructions $pid); row "SyncPods op, 64 in flight"
  units=$(load ops sync --sessions 64 --seconds 4); ins=$(instructions $pid); row "SyncPods op, 64 sessions"
  units=$(load deliveries fanout --watchers 100 --changes 100 --rate 50); ins=$(instructions $pid); row "fan-out delivery"
  units=$(load lines upload --streams 1 --lines 400000); ins=$(instructions $pid); row "uploaded line, 1 stream"
  units=$(load lines upload --streams 4 --lines 400000); ins=$(instructions $pid); row "uploaded line, 4 streams"
  kill -INT "$pid"
  wait "$pid" || true
}

printf '%-8s %-28s %14s %10s %12s\n' build "unit of work" instructions units "per unit"
# shellcheck disable=SC2086 # the flags are words
measure before "$before" ${BEFORE_ARGS:-}
# shellcheck disable=SC2086
measure after "$after" ${AFTER_ARGS:-}
