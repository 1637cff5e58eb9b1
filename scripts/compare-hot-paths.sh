#!/usr/bin/env bash
# The bidirectional and fan-out paths (and unary against the HTTP/2
# ceiling), side by side with the Go peer in alternating rounds: each round
# starts the Go peer and then every build of ours named on the command line,
# one after the other, and drives each with the same tools:
#
#   SYNC1    contractbench sync -s 1 -w 1      (one session, one op in flight)
#   SYNC64   contractbench sync -s 64 -w 1     (64 sessions on one connection)
#   FANOUT   pod-bench fanout, 1,000 watchers over 4 connections, 200
#            changes at 100/s (latency from the writer's send)
#   H2       h2load-unary.sh 4 32 (unary ListPods of 34 pods)
#   CEILING  h2load-ceiling.sh 4 32 (nghttpd serving the same bytes), once a round
#
# Every server runs in memory with --pods 100 (ours also durable with
# DURABLE=1, as "NAME-durable"). Prints each figure's median over the rounds
# and its ratio to Go's, and unary as a share of the ceiling.
#
# usage: scripts/compare-hot-paths.sh [NAME=POD_SERVER_BINARY ...]
#        (default: ours=target/release/pod-server, built first;
#         env ROUNDS=3 D=5 DURABLE=0 PARTS="sync fanout h2")
# e.g.   scripts/compare-hot-paths.sh before=/tmp/before/pod-server ours=target/release/pod-server
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers="$root/../shared/peers"
out="${PEERS_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/pod-peers}"
results="$root/target/compare-hot-paths"
mkdir -p "$results"
ROUNDS="${ROUNDS:-3}" D="${D:-5}" PARTS="${PARTS:-sync fanout h2}"
ADDR=127.0.0.1:50561
log="$results/$(date +%Y%m%d-%H%M%S).log"

"$peers/build-go.sh" > "$results/build-go.log" 2>&1
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server --bin pod-bench
builds=("$@")
[ ${#builds[@]} -gt 0 ] || builds=("ours=$root/target/release/pod-server")
servers=(go)
# GO1=1: the Go peer on one core too (GOMAXPROCS=1), as "go-1cpu".
[ "${GO1:-0}" = 1 ] && servers+=(go-1cpu)
for build in "${builds[@]}"; do
  servers+=("${build%%=*}")
  [ "${DURABLE:-0}" = 1 ] && servers+=("${build%%=*}-durable")
done
binary() { # NAME -> the pod-server binary of that build
  local name="${1%-durable}" build
  for build in "${builds[@]}"; do [ "${build%%=*}" = "$name" ] && realpath "${build#*=}"; done
}

has() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }
SPID=""
start() { # SERVER
  local data
  case "$1" in
    go) "$out/bin/pod-fullserver-go" -addr "$ADDR" -pods 100 > "$results/server.log" 2>&1 & ;;
    go-1cpu) GOMAXPROCS=1 "$out/bin/pod-fullserver-go" -addr "$ADDR" -pods 100 > "$results/server.log" 2>&1 & ;;
    *-durable)
      data=$(mktemp -d /tmp/hot-paths.XXXXXX)
      "$(binary "$1")" --data-dir "$data" --addr "$ADDR" --pods 100 > "$results/server.log" 2>&1 & ;;
    *) "$(binary "$1")" --in-memory --addr "$ADDR" --pods 100 > "$results/server.log" 2>&1 & ;;
  esac
  SPID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}") 2>/dev/null && return 0; sleep 0.1; done
  echo "$1 did not come up: $(tail -3 "$results/server.log")" >&2; exit 1
}
stop() {
  kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""
  rm -rf /tmp/hot-paths.*
}
trap stop EXIT
# The server's CPU time so far, in clock ticks (user + system).
cpu() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
TICKS=$(getconf CLK_TCK)
measure() { # ROUND SERVER TAG COMMAND...: runs it, records its result line and the server's CPU seconds
  local round="$1" server="$2" tag="$3" before line
  shift 3
  before=$(cpu)
  line=$("$@" 2>&1 | grep -E '^(sync:|RESULT|\{)' | tail -1 || true)
  echo "$round $server $tag ${line:-failed} server_cpu_s=$(awk -v a="$before" -v b="$(cpu)" -v t="$TICKS" 'BEGIN{print (b-a)/t}')" | tee -a "$log"
}

for round in $(seq "$ROUNDS"); do
  for server in "${servers[@]}"; do
    start "$server"
    if has sync; then
      measure "$round" "$server" SYNC1 "$out/bin/contractbench" sync -addr "$ADDR" -s 1 -w 1 -d "${D}s"
      measure "$round" "$server" SYNC64 "$out/bin/contractbench" sync -addr "$ADDR" -s 64 -w 1 -d "${D}s"
    fi
    if has fanout && [[ "$server" != *-durable ]]; then
      measure "$round" "$server" FANOUT "$root/target/release/pod-bench" --addr "http://$ADDR" --connections 4 --json \
        fanout --watchers 1000 --changes 200 --rate 100
    fi
    if has h2 && [[ "$server" != *-durable ]]; then
      measure "$round" "$server" H2 "$peers/h2load-unary.sh" "$ADDR" 4 32 "$D"
    fi
    stop
  done
  if has h2; then
    echo "$round nghttpd CEILING $("$peers/h2load-ceiling.sh" 4 32 "$D" 2>&1 | grep '^RESULT' || echo failed)" | tee -a "$log"
  fi
done

python3 - "$log" <<'PY'
import json, re, statistics, sys
runs = {}  # (server, figure) -> [values]
order = []
def add(server, figure, value):
    if server not in order:
        order.append(server)
    runs.setdefault((server, figure), []).append(value)
for line in open(sys.argv[1]):
    _, server, tag, rest = line.rstrip('\n').split(' ', 3)
    head, separator, cpu = rest.rpartition(' server_cpu_s=')
    rest, cpu = (head, float(cpu)) if separator else (rest, None)
    if tag == 'FANOUT':
        try:
            f = json.loads(rest)
        except ValueError:
            continue
        add(server, 'fan-out p50 from send, ms', f['send_p50_ms'])
        add(server, 'fan-out p99 from send, ms', f['send_p99_ms'])
        deliveries = f.get('deliveries')
        if cpu is not None and deliveries:
            add(server, 'fan-out server CPU/delivery, us', 1e6 * cpu / deliveries)
        continue
    f = dict(re.findall(r'([\w/]+)=([0-9.]+)', rest))
    if tag in ('SYNC1', 'SYNC64') and 'ops/s' in f:
        add(server, f'{tag} ops/s', float(f['ops/s']))
        add(server, f'{tag} p99, ms', float(f['p99']))
        if cpu is not None and float(f['ops']):
            add(server, f'{tag} server CPU/op, us', 1e6 * cpu / float(f['ops']))
    elif tag in ('H2', 'CEILING') and 'req/s' in f:
        add(server, f'{tag} calls/s', float(f['req/s']))
        if tag == 'H2':
            add(server, 'H2 p99, ms', float(f['p99']))
median = {k: statistics.median(v) for k, v in runs.items()}
figures = []
for (_, figure) in runs:
    if figure not in figures and not figure.startswith('CEILING'):
        figures.append(figure)
servers = [s for s in order if s != 'nghttpd']
print('\n# medians over the rounds; x = ratio to Go (rates: higher is better; ms: lower is better)')
print('%-28s' % 'figure' + ''.join('%14s %6s' % (s, 'x' if s != 'go' else '') for s in servers))
for figure in figures:
    base = median.get(('go', figure))
    row = '%-28s' % figure
    for s in servers:
        v = median.get((s, figure))
        x = '' if s == 'go' or v is None or not base else '%.2f' % (v / base)
        row += '%14s %6s' % ('-' if v is None else '%.3f' % v if v < 100 else '%.0f' % v, x)
    print(row)
ceiling = median.get(('nghttpd', 'CEILING calls/s'))
if ceiling:
    print('\nHTTP/2 ceiling (nghttpd, same bytes): %.0f responses/s; unary as a share of it:' % ceiling
          + ''.join(' %s %.1f%%' % (s, 100 * median[(s, 'H2 calls/s')] / ceiling)
                    for s in servers if (s, 'H2 calls/s') in median))
print('(every run: %s)' % sys.argv[1])
PY
