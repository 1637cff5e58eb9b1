#!/usr/bin/env bash
# How cost grows, side by side with the Go full-contract peer, one server
# after the other on this machine:
#
#  * growth: for N = 100 .. 100,000 sample pods, unary ListPods of one
#    namespace (h2load, a third of the pods per call) and WatchPods
#    snapshots of all pods re-opened for D seconds (streambench -loop);
#  * fan-out: `pod-bench fanout` with 100, 1,000 and 10,000 watchers
#    (4 connections, 50 for 10,000), 200 changes at 100/s;
#  * memory: the server's resident memory per idle watcher, 10,000 of them
#    over 50 connections (`pod-bench watchers`).
#
# Prints one table per part with the ratio ours/Go.
#
# usage: scripts/compare-scaling.sh      (env: D=3 SIZES="100 1000 10000 100000"
#                                          WATCHERS="100 1000 10000"
#                                          PARTS="growth fanout memory")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/peers"
out="${PEERS_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/pod-peers}"
results="$root/target/compare-scaling"
mkdir -p "$results"
D="${D:-3}"
SIZES="${SIZES:-100 1000 10000 100000}"
WATCHERS="${WATCHERS:-100 1000 10000}"
PARTS="${PARTS:-growth fanout memory}"
ADDR=127.0.0.1:50061
log="$results/$(date +%Y%m%d-%H%M%S).txt"

"$peers/build-go.sh" > "$results/build-go.log" 2>&1
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench

declare -A servers=(
  [go]="$out/bin/pod-fullserver-go -addr $ADDR -pods"
  [memory]="$root/target/release/pod-server --in-memory --addr $ADDR --pods"
)
SPID=""
start() { # SERVER PODS
  ${servers[$1]} "$2" > "$results/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2; exit 1
}
stop() { kill "$SPID"; wait "$SPID" 2>/dev/null || true; }
trap '[ -n "$SPID" ] && kill "$SPID" 2>/dev/null || true' EXIT
field() { grep -o "$1=[0-9.]*" | head -1 | cut -d= -f2; }

has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
if has growth; then
  for n in $SIZES; do
    for server in go memory; do
      start "$server" "$n"
      list=$("$peers/h2load-unary.sh" "$ADDR" 4 32 "$D" 2>&1 | grep -E '^RESULT' || true)
      watch=$("$out/bin/streambench" watch -addr "$ADDR" -d "${D}s" -n "$n" -loop -q 2>&1 || true)
      stop
      echo "GROWTH $server pods=$n list_calls/s=$(field 'req/s' <<<"$list") list_p99=$(field p99 <<<"$list") watch_pods/s=$(field 'pods/s' <<<"$watch")" | tee -a "$log"
    done
  done
fi
if has fanout; then
  for w in $WATCHERS; do
    conns=4; [ "$w" -gt 2000 ] && conns=50
    for server in go memory; do
      start "$server" 100
      line=$("$root/target/release/pod-bench" --addr "http://$ADDR" --connections "$conns" --json \
        fanout --watchers "$w" --changes 200 --rate 100 2>&1 | tail -1 || true)
      stop
      echo "FANOUT $server watchers=$w $line" | tee -a "$log"
    done
  done
fi

if has memory; then
  for server in go memory; do
    start "$server" 100
    line=$("$root/target/release/pod-bench" --addr "http://$ADDR" --connections 50 --json \
      watchers --count 10000 --server-pid "$SPID" 2>&1 | tail -1 || true)
    stop
    echo "MEMORY $server $line" | tee -a "$log"
  done
fi

python3 - "$log" <<'PY'
import json, re, sys
growth, fanout, memory = {}, {}, {}
for line in open(sys.argv[1]):
    parts = line.split(maxsplit=3)
    if parts[0] == 'GROWTH':
        f = dict(re.findall(r'(\S+)=(\S*)', line))
        growth.setdefault(int(f['pods']), {})[parts[1]] = f
    elif parts[0] == 'MEMORY':
        try:
            memory[parts[1]] = json.loads(line.split(maxsplit=2)[2])
        except (IndexError, ValueError):
            memory[parts[1]] = {}
    elif parts[0] == 'FANOUT':
        w = int(parts[2].split('=')[1])
        try:
            fanout.setdefault(w, {})[parts[1]] = json.loads(parts[3])
        except (IndexError, ValueError):
            fanout.setdefault(w, {})[parts[1]] = {'error': parts[3].strip() if len(parts) > 3 else '?'}
def num(v):
    try: return float(v)
    except (TypeError, ValueError): return None
def ratio(a, b):
    return '%.2fx' % (a / b) if a is not None and b else '-'
if growth:
    print('\n# cost growth: ListPods of a third of the pods (h2load -c 4 -m 32), WatchPods snapshots re-opened')
    print('%-8s | %11s %11s %7s | %12s %12s %7s | %11s %11s %7s' % ('pods', 'Go calls/s', 'ours', 'x', 'Go listed/s', 'ours', 'x', 'Go watch/s', 'ours', 'x'))
    for n in sorted(growth):
        g, o = growth[n].get('go', {}), growth[n].get('memory', {})
        gc, oc = num(g.get('list_calls/s')), num(o.get('list_calls/s'))
        per = (n + 2) // 3
        gl, ol = gc and gc * per, oc and oc * per
        gw, ow = num(g.get('watch_pods/s')), num(o.get('watch_pods/s'))
        fmt = lambda v: '-' if v is None else '%.0f' % v
        print('%-8d | %11s %11s %7s | %12s %12s %7s | %11s %11s %7s' % (n, fmt(gc), fmt(oc), ratio(oc, gc), fmt(gl), fmt(ol), ratio(ol, gl), fmt(gw), fmt(ow), ratio(ow, gw)))
if fanout:
    print('\n# fan-out: pod-bench fanout, 200 changes at 100/s; latency from the writer\'s send (lower is better)')
    print('%-9s | %9s %9s %7s | %9s %9s %7s | %9s %9s' % ('watchers', 'Go p50', 'ours', 'x', 'Go p99', 'ours', 'x', 'Go max', 'ours'))
    for w in sorted(fanout):
        g, o = fanout[w].get('go', {}), fanout[w].get('memory', {})
        if 'error' in g or 'error' in o:
            print('%-9d | Go: %s | ours: %s' % (w, g.get('error', 'ok'), o.get('error', 'ok')))
            continue
        f = lambda d, k: d.get(k)
        print('%-9d | %9.3f %9.3f %7s | %9.3f %9.3f %7s | %9.3f %9.3f' % (w, g['send_p50_ms'], o['send_p50_ms'], ratio(o['send_p50_ms'], g['send_p50_ms']), g['send_p99_ms'], o['send_p99_ms'], ratio(o['send_p99_ms'], g['send_p99_ms']), g['send_max_ms'], o['send_max_ms']))
if memory:
    g, o = memory.get('go', {}), memory.get('memory', {})
    print('\n# memory per idle watcher: 10,000 WatchPods streams over 50 connections (lower is better)')
    gb, ob = g.get('bytes_per_watcher'), o.get('bytes_per_watcher')
    print('Go %s bytes, ours %s bytes, ratio %s' % (
        '-' if gb is None else '%.0f' % gb, '-' if ob is None else '%.0f' % ob, ratio(ob, gb)))
PY
echo "log: $log"
