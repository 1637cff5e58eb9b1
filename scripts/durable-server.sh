#!/usr/bin/env bash
# pod-server on a fresh data directory, for benchmarks that start the server
# several times with different pod counts (../shared/peers/bench.sh).
# usage: durable-server.sh ADDR PODS [MORE pod-server OPTIONS]
#        (env POD_SERVER: the binary, default target/release/pod-server)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
addr=$1 pods=$2
shift 2
exec "${POD_SERVER:-$root/target/release/pod-server}" --addr "$addr" --pods "$pods" \
  --data-dir "$(mktemp -d "${TMPDIR:-/tmp}/pod-bench-data.XXXXXX")" "$@"
