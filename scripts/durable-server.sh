#!/usr/bin/env bash
# pod-server on a fresh data directory, for benchmarks that start the server
# several times with different pod counts (../shared/peers/bench.sh).
# usage: durable-server.sh ADDR PODS
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/target/release/pod-server" --addr "$1" --pods "$2" \
  --data-dir "$(mktemp -d "${TMPDIR:-/tmp}/pod-bench-data.XXXXXX")"
