#!/usr/bin/env bash
# A local cluster in one command: 3 etcd members (the pods), 3 NATS
# JetStream nodes (the logs) and 3 pod-server replicas that share them, all
# on loopback.
#
# usage: scripts/cluster.sh up [--etcd-only] [--tls]
#                                              start (or restart a stopped one)
#        scripts/cluster.sh status             what runs, who leads (exit 1 if
#                                              anything is down)
#        scripts/cluster.sh down               stop everything, remove its state
#
# State (pid files, logs, etcd and NATS data) lives in $CLUSTER_DIR
# (target/cluster). `up` builds pod-server (cargo build --release; set
# POD_SERVER=PATH to use another binary), starts the etcd members and the
# NATS nodes and waits until each is healthy, then starts the replicas (with
# --nats-url) and waits until each listens. If the directory holds a stopped
# cluster of the same ports, `up` starts it again with its data.
# --etcd-only starts the etcd members alone.
#
# --tls: everything over TLS with certificates of a CA of the cluster's own
# (made once by `pod-server --make-certs $CLUSTER_DIR/certs`): etcd serves
# https:// and requires client certificates (--client-cert-auth), NATS
# serves TLS and verifies them (a tls block, verify: true), the replicas
# show client.pem to both (--etcd-certfile, --nats-cert, ...) and serve
# gRPC over TLS with server.pem; clients use https:// and --ca ca.pem.
# etcd's health is then read from a plain-HTTP metrics listener of its own
# (--listen-metrics-urls, CLUSTER_ETCD_METRICS_PORTS).
#
# Ports, each overridable (space-separated, three each):
#   CLUSTER_ETCD_PORTS  etcd client ports   (12379 22379 32379; not 2379, where
#                       Debian's own etcd service may listen)
#   CLUSTER_PEER_PORTS  etcd peer ports     (12380 22380 32380)
#   CLUSTER_ETCD_METRICS_PORTS etcd /health with --tls (12381 22381 32381)
#   CLUSTER_POD_PORTS   pod-server replicas (50051 50052 50053)
#   CLUSTER_NATS_PORTS  NATS client ports   (14222 24222 34222; not 4222)
#   CLUSTER_ROUTE_PORTS NATS cluster ports  (16222 26222 36222)
#   CLUSTER_MONITOR_PORTS NATS monitoring   (18222 28222 38222)
# Also: CLUSTER_ETCD_PREFIX (/pod-service/), the replicas' key prefix;
# CLUSTER_SERVER_ARGS, more pod-server flags; CLUSTER_TIMEOUT (30), seconds
# each member or replica may take to come up.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/target/cluster}
read -ra etcd_ports <<<"${CLUSTER_ETCD_PORTS:-12379 22379 32379}"
read -ra peer_ports <<<"${CLUSTER_PEER_PORTS:-12380 22380 32380}"
read -ra etcd_metrics_ports <<<"${CLUSTER_ETCD_METRICS_PORTS:-12381 22381 32381}"
read -ra pod_ports <<<"${CLUSTER_POD_PORTS:-50051 50052 50053}"
read -ra nats_ports <<<"${CLUSTER_NATS_PORTS:-14222 24222 34222}"
read -ra route_ports <<<"${CLUSTER_ROUTE_PORTS:-16222 26222 36222}"
read -ra monitor_ports <<<"${CLUSTER_MONITOR_PORTS:-18222 28222 38222}"
read -ra server_args <<<"${CLUSTER_SERVER_ARGS:-}"
prefix=${CLUSTER_ETCD_PREFIX:-/pod-service/}
timeout_s=${CLUSTER_TIMEOUT:-30}
marker=.pod-service-cluster
# Whether the cluster runs over TLS (up --tls; a stopped cluster's marker
# says so for status and down).
tls=false
certs=$dir/certs

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

((${#etcd_ports[@]} == 3 && ${#peer_ports[@]} == 3 && ${#etcd_metrics_ports[@]} == 3 && ${#pod_ports[@]} == 3 &&
  ${#nats_ports[@]} == 3 && ${#route_ports[@]} == 3 && ${#monitor_ports[@]} == 3)) ||
  die "CLUSTER_ETCD_PORTS, CLUSTER_PEER_PORTS, CLUSTER_ETCD_METRICS_PORTS, CLUSTER_POD_PORTS, CLUSTER_NATS_PORTS, CLUSTER_ROUTE_PORTS and CLUSTER_MONITOR_PORTS take three ports each"

# The URL schemes of etcd, NATS and the replicas.
scheme() { # PLAIN SECURE
  if $tls; then echo "$2"; else echo "$1"; fi
}

etcd_endpoints() {
  local urls=() port
  for port in "${etcd_ports[@]}"; do urls+=("$(scheme http https)://127.0.0.1:$port"); done
  (IFS=,; echo "${urls[*]}")
}

nats_urls() {
  local urls=() port
  for port in "${nats_ports[@]}"; do urls+=("$(scheme nats tls)://127.0.0.1:$port"); done
  (IFS=,; echo "${urls[*]}")
}

replica_urls() {
  local urls=() port
  for port in "${pod_ports[@]}"; do urls+=("$(scheme http https)://127.0.0.1:$port"); done
  (IFS=,; echo "${urls[*]}")
}

# The configuration a stopped cluster's state must match to be restarted.
config() {
  echo "etcd ${etcd_ports[*]} peers ${peer_ports[*]} nats ${nats_ports[*]} routes ${route_ports[*]}$(scheme "" " tls")"
}

# A stopped or running cluster over TLS says so in its marker.
if [[ -f $dir/$marker && $(<"$dir/$marker") == *" tls" ]]; then
  tls=true
fi

# Whether process $1 runs (a zombie, dead but not yet reaped, does not).
alive() {
  local stat
  kill -0 "$1" 2>/dev/null && stat=$(cat "/proc/$1/stat" 2>/dev/null) && [[ ${stat##*) } != [ZX]* ]]
}

# Whether the process in pid file $1 runs.
running() {
  local pid
  [[ -f $1 ]] && pid=$(<"$1") && [[ -n $pid ]] && alive "$pid"
}

# Whether something accepts connections on loopback port $1.
listens() {
  timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# The body of one HTTP/1.0 request to loopback port $1 (METHOD PATH [BODY]),
# in at most a second; fails if there is no answer. No curl needed.
http() {
  local port=$1 method=$2 path=$3 body=${4:-}
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 1 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %s\r\n\r\n%s" \
      "$2" "$3" "${#4}" "$4" >&3
    sed "1,/^\r\{0,1\}$/d" <&3' _ "$port" "$method" "$path" "$body" 2>/dev/null
}

healthy() { # PORT
  [[ $(http "$1" GET /health) == *'"health":"true"'* ]]
}

# etcd member N's health: on its client port, or with --tls on its
# plain-HTTP metrics port (its client port then wants a client certificate).
etcd_healthy() { # N
  healthy "$(if $tls; then echo "${etcd_metrics_ports[$1 - 1]}"; else echo "${etcd_ports[$1 - 1]}"; fi)"
}

nats_healthy() { # MONITOR_PORT
  [[ $(http "$1" GET /healthz) == *'"status":"ok"'* ]]
}

# A JSON string field of etcd's answer: json_field NAME < JSON.
json_field() {
  sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"
}

log_tail() { # LOG
  echo "--- last lines of $1:" >&2
  tail -n 20 "$1" >&2 || true
}

require_etcd() {
  command -v etcd >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing etcd-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends etcd-server >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends etcd-server >/dev/null; } ||
      die "apt-get install etcd-server failed: run it by hand"
    command -v etcd >/dev/null || die "etcd-server is installed but there is no etcd on the PATH"
  else
    die "etcd is missing: install it with \`sudo apt-get install etcd-server\`"
  fi
}

require_nats() {
  # Debian installs it in /usr/sbin, which a user's PATH may leave out.
  PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
  command -v nats-server >/dev/null && return
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing nats-server with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends nats-server >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends nats-server >/dev/null; } ||
      die "apt-get install nats-server failed: run it by hand"
    command -v nats-server >/dev/null || die "nats-server is installed but not on the PATH"
  else
    die "nats-server is missing: install it with \`sudo apt-get install nats-server\`"
  fi
}

pod_server_binary() {
  if [[ -n ${POD_SERVER:-} ]]; then
    [[ -x $POD_SERVER ]] || die "POD_SERVER=$POD_SERVER is not an executable"
    # The replicas run in directories of their own.
    realpath "$POD_SERVER"
    return
  fi
  local built=$root/target/release/pod-server
  if command -v cargo >/dev/null; then
    echo "building pod-server (cargo build --release --bin pod-server)" >&2
    cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin pod-server >&2 ||
      die "the build failed"
  elif [[ -x $built ]]; then
    echo "no cargo: using $built as it is" >&2
  else
    die "no cargo to build pod-server, and no $built"
  fi
  echo "$built"
}

# (Called where `set -e` does not apply: callers check its status.)
# Waits until `check ARG` succeeds while pid file PIDFILE runs, for at most
# $timeout_s seconds: wait_for WHAT PIDFILE LOG CHECK ARG
wait_for() {
  local what=$1 pidfile=$2 log=$3 check=$4 arg=$5 deadline=$((SECONDS + timeout_s))
  until "$check" "$arg"; do
    if ! running "$pidfile"; then
      echo "cluster.sh: $what exited" >&2
      log_tail "$log"
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "cluster.sh: $what is not up after ${timeout_s}s" >&2
      log_tail "$log"
      return 1
    fi
    sleep 0.1
  done
}

# Where each replica's log stood when it was started (logs are appended to).
log_offsets=(0 0 0)

# Whether replica N listens: its log says so since it started, or its port
# accepts.
replica_up() {
  tail -c "+$((log_offsets[$1 - 1] + 1))" "$dir/replica$1.log" 2>/dev/null |
    grep -q "pod-server listening" || listens "${pod_ports[$1 - 1]}"
}

start_etcd() {
  local members=() initial i state
  for i in 1 2 3; do members+=("m$i=http://127.0.0.1:${peer_ports[$i - 1]}"); done
  initial=$(IFS=,; echo "${members[*]}")
  for i in 1 2 3; do
    running "$dir/etcd$i.pid" && continue
    state=new
    [[ -d $dir/etcd$i/member ]] && state=existing
    local peer=http://127.0.0.1:${peer_ports[$i - 1]}
    local client=$(scheme http https)://127.0.0.1:${etcd_ports[$i - 1]} secure=()
    if $tls; then
      secure=(--client-cert-auth --trusted-ca-file "$certs/ca.pem"
        --cert-file "$certs/server.pem" --key-file "$certs/server-key.pem"
        --listen-metrics-urls "http://127.0.0.1:${etcd_metrics_ports[$i - 1]}")
    fi
    nohup etcd --name "m$i" --data-dir "$dir/etcd$i" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --initial-cluster "$initial" --initial-cluster-state "$state" \
      --initial-cluster-token pod-service-local \
      --heartbeat-interval 50 --election-timeout 500 \
      --experimental-watch-progress-notify-interval 1s "${secure[@]}" \
      >>"$dir/etcd$i.log" 2>&1 </dev/null &
    echo $! >"$dir/etcd$i.pid"
  done
  # All three start before any is waited for: one alone has no quorum.
  for i in 1 2 3; do
    wait_for "etcd member m$i (port ${etcd_ports[$i - 1]})" "$dir/etcd$i.pid" "$dir/etcd$i.log" \
      etcd_healthy "$i" || return 1
  done
}

start_nats() {
  local routes=() i
  for i in 1 2 3; do routes+=("nats://127.0.0.1:${route_ports[$i - 1]}"); done
  local secure=()
  if $tls; then
    # TLS only from a configuration file; the flags add the rest to it.
    printf 'tls {\n  cert_file: "%s"\n  key_file: "%s"\n  ca_file: "%s"\n  verify: true\n}\n' \
      "$certs/server.pem" "$certs/server-key.pem" "$certs/ca.pem" >"$dir/nats-tls.conf"
    secure=(-c "$dir/nats-tls.conf")
  fi
  for i in 1 2 3; do
    running "$dir/nats$i.pid" && continue
    nohup nats-server "${secure[@]}" -js -sd "$dir/nats$i" -a 127.0.0.1 -p "${nats_ports[$i - 1]}" \
      -m "${monitor_ports[$i - 1]}" -n "n$i" --cluster_name pod-service-logs \
      --cluster "nats://127.0.0.1:${route_ports[$i - 1]}" --routes "$(IFS=,; echo "${routes[*]}")" \
      >>"$dir/nats$i.log" 2>&1 </dev/null &
    echo $! >"$dir/nats$i.pid"
  done
  for i in 1 2 3; do
    wait_for "NATS node n$i (port ${nats_ports[$i - 1]})" "$dir/nats$i.pid" "$dir/nats$i.log" \
      nats_healthy "${monitor_ports[$i - 1]}" || return 1
  done
}

start_replicas() {
  local binary=$1 i secure=()
  if $tls; then
    secure=(--etcd-cafile "$certs/ca.pem" --etcd-certfile "$certs/client.pem"
      --etcd-keyfile "$certs/client-key.pem" --nats-ca "$certs/ca.pem"
      --nats-cert "$certs/client.pem" --nats-key "$certs/client-key.pem"
      --tls-cert "$certs/server.pem" --tls-key "$certs/server-key.pem")
  fi
  for i in 1 2 3; do
    running "$dir/replica$i.pid" && continue
    mkdir -p "$dir/replica$i"
    log_offsets[i - 1]=$(stat -c %s "$dir/replica$i.log" 2>/dev/null || echo 0)
    # In its own working directory, for anything it keeps on a relative
    # path; exec, so that $! is pod-server's own pid.
    (cd "$dir/replica$i" || exit
      RUST_LOG=${RUST_LOG:-info} exec nohup "$binary" --addr "127.0.0.1:${pod_ports[$i - 1]}" \
        --etcd-endpoints "$(etcd_endpoints)" --etcd-prefix "$prefix" \
        --nats-url "$(nats_urls)" "${secure[@]}" "${server_args[@]}" \
        >>"$dir/replica$i.log" 2>&1 </dev/null) &
    echo $! >"$dir/replica$i.pid"
  done
  for i in 1 2 3; do
    wait_for "pod-server replica $i (port ${pod_ports[$i - 1]})" "$dir/replica$i.pid" \
      "$dir/replica$i.log" replica_up "$i" || return 1
  done
}

# Stops the processes of the pid files given: SIGNAL (TERM: KILL after
# 10 s), and waits until they are gone. stop SIGNAL PIDFILE...
stop() {
  local signal=$1 pidfile pid pids=()
  shift
  for pidfile in "$@"; do
    running "$pidfile" && pids+=("$(<"$pidfile")")
    rm -f "$pidfile"
  done
  ((${#pids[@]})) || return 0
  kill "-$signal" "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  for pid in "${pids[@]}"; do
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# The replicas get to finish their calls. etcd is killed outright: it
# loses nothing it acknowledged (its log is synced before it answers), and
# three members stopped gracefully at once can each wait seconds to hand
# over leadership to another that is stopping too.
stop_all() {
  stop TERM "$dir"/replica{1,2,3}.pid
  stop TERM "$dir"/nats{1,2,3}.pid
  stop KILL "$dir"/etcd{1,2,3}.pid
}

up() {
  local etcd_only=false option
  tls=false
  for option in "$@"; do
    case $option in
      --etcd-only) etcd_only=true ;;
      --tls) tls=true ;;
      *) die "unknown option for up: $option" ;;
    esac
  done
  if [[ -d $dir ]]; then
    [[ -f $dir/$marker ]] || die "$dir exists but is not a cluster's directory: set CLUSTER_DIR"
    [[ $(<"$dir/$marker") == "$(config)" ]] ||
      die "$dir holds a cluster of other ports ($(<"$dir/$marker")): run \`$0 down\` first"
  fi
  require_etcd
  local binary=
  $etcd_only || require_nats
  # pod-server makes the certificates of --tls, even for etcd alone.
  if ! $etcd_only || $tls; then binary=$(pod_server_binary); fi

  # A port someone else listens on would fail late and obscurely.
  local i port
  for i in 1 2 3; do
    local etcd_ports_used=("${etcd_ports[$i - 1]}" "${peer_ports[$i - 1]}")
    $tls && etcd_ports_used+=("${etcd_metrics_ports[$i - 1]}")
    for port in "${etcd_ports_used[@]}"; do
      if ! running "$dir/etcd$i.pid" && listens "$port"; then
        die "port $port is taken: choose others with CLUSTER_ETCD_PORTS / CLUSTER_PEER_PORTS / CLUSTER_ETCD_METRICS_PORTS"
      fi
    done
    if ! $etcd_only && ! running "$dir/replica$i.pid" && listens "${pod_ports[$i - 1]}"; then
      die "port ${pod_ports[$i - 1]} is taken: choose others with CLUSTER_POD_PORTS"
    fi
    for port in "${nats_ports[$i - 1]}" "${route_ports[$i - 1]}" "${monitor_ports[$i - 1]}"; do
      if ! $etcd_only && ! running "$dir/nats$i.pid" && listens "$port"; then
        die "port $port is taken: choose others with CLUSTER_NATS_PORTS / CLUSTER_ROUTE_PORTS / CLUSTER_MONITOR_PORTS"
      fi
    done
  done

  mkdir -p "$dir"
  config >"$dir/$marker"
  if $tls && [[ ! -f $certs/ca.pem ]]; then
    "$binary" --make-certs "$certs" >/dev/null || die "pod-server --make-certs $certs failed"
  fi
  if ! start_etcd || { ! $etcd_only && ! { start_nats && start_replicas "$binary"; }; }; then
    stop_all
    die "not started; everything is stopped, the logs are in $dir (\`$0 down\` removes it)"
  fi

  echo "etcd members:  $(etcd_endpoints)"
  echo "etcd prefix:   $prefix"
  $tls && echo "certificates:  $certs (ca.pem; server.pem, client.pem and their keys)"
  $tls && echo "etcdctl:       etcdctl --endpoints $(etcd_endpoints) --cacert $certs/ca.pem --cert $certs/client.pem --key $certs/client-key.pem"
  if ! $etcd_only; then
    echo "NATS nodes:    $(nats_urls)"
    local addrs=()
    for port in "${pod_ports[@]}"; do addrs+=("127.0.0.1:$port"); done
    echo "replicas:      ${addrs[*]}"
    echo "for clients:   --addr $(replica_urls)$(scheme "" " --ca $certs/ca.pem")"
  fi
  echo "logs:          $dir/*.log"
  echo "stop:          $0 down"
}

status() {
  [[ -d $dir ]] || { echo "no cluster (nothing in $dir)"; return 1; }
  local ok=true i port state answer id leader
  for i in 1 2 3; do
    port=${etcd_ports[$i - 1]}
    if ! running "$dir/etcd$i.pid"; then
      state=stopped
      ok=false
    elif etcd_healthy "$i"; then
      state=healthy
      # Over TLS the status call would need a client certificate: no leader shown.
      answer=$($tls || http "$port" POST /v3/maintenance/status '{}' || true)
      id=$(json_field member_id <<<"$answer")
      leader=$(json_field leader <<<"$answer")
      [[ -n $id && $id == "$leader" ]] && state="healthy, leader"
    else
      state="running, not healthy"
      ok=false
    fi
    echo "etcd m$i     $(scheme http https)://127.0.0.1:$port  pid $(cat "$dir/etcd$i.pid" 2>/dev/null || echo -)  $state"
  done
  for i in 1 2 3; do
    [[ -f $dir/nats$i.pid ]] || [[ -f $dir/nats$i.log ]] || continue
    port=${nats_ports[$i - 1]}
    if ! running "$dir/nats$i.pid"; then
      state=stopped
      ok=false
    elif nats_healthy "${monitor_ports[$i - 1]}"; then
      state=healthy
    else
      state="running, not healthy"
      ok=false
    fi
    echo "NATS n$i      $(scheme nats tls)://127.0.0.1:$port  pid $(cat "$dir/nats$i.pid" 2>/dev/null || echo -)  $state"
  done
  for i in 1 2 3; do
    [[ -f $dir/replica$i.pid ]] || [[ -f $dir/replica$i.log ]] || continue
    port=${pod_ports[$i - 1]}
    if ! running "$dir/replica$i.pid"; then
      state=stopped
      ok=false
    elif listens "$port"; then
      state=listening
    else
      state="running, not listening"
      ok=false
    fi
    echo "replica $i    $(scheme http https)://127.0.0.1:$port  pid $(cat "$dir/replica$i.pid" 2>/dev/null || echo -)  $state"
  done
  $ok
}

down() {
  if [[ ! -d $dir ]]; then
    echo "no cluster (nothing in $dir)"
    return
  fi
  [[ -f $dir/$marker ]] || die "$dir is not a cluster's directory: not removing it"
  stop_all
  rm -rf "$dir"
  echo "stopped; removed $dir"
}

case ${1:-} in
  up) shift; up "$@" ;;
  status) status ;;
  down) down ;;
  *) echo "usage: $0 up [--etcd-only] [--tls] | status | down" >&2; exit 2 ;;
esac
