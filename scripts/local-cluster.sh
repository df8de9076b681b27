#!/usr/bin/env bash
# Real multi-process Anode cluster on loopback: 3 masters, 4 chunkservers, 1 gateway.
#   scripts/local-cluster.sh start|stop|status DIR
# Process ROLE-N keeps data in DIR/ROLE-N/, log in DIR/ROLE-N.log, pid in DIR/ROLE-N.pid.
# Keys are in DIR/credentials. `start` returns once the S3 endpoint answers.
# gRPC uses mutual TLS: the first start makes a CA in DIR/certs/ca and a certificate per
# process in DIR/certs/ROLE-N (plus DIR/certs/admin-1 for `anode ctl --certs-dir`); later
# starts reuse them. S3 stays plain HTTP on 127.0.0.1. ANODE_CLUSTER_TLS=insecure runs every
# process with --insecure-no-tls instead (to measure the cost of TLS); =none passes no TLS
# flag at all (builds from before TLS, for scripts/bench-ab.sh).
# Ports: masters 7001-7003 (admin 7081-7083), chunkservers 7101-7104 (admin 7181-7184),
# gateway 9000 (admin 9001); ANODE_GATEWAY_ARGS adds flags to the gateway (e.g. HTTPS). Override the base with ANODE_PORT_OFFSET (added to every port).
# The gateway writes its S3 audit log to DIR/gateway-1.audit.log (JSON lines, rotated at
# 100 MiB, 5 kept); ANODE_CLUSTER_AUDIT=off runs it without one (to measure its cost).
set -euo pipefail
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-0}"
p() { echo $(( $1 + off )); }
masters="127.0.0.1:$(p 7001),127.0.0.1:$(p 7002),127.0.0.1:$(p 7003)"
peers="1=127.0.0.1:$(p 7001),2=127.0.0.1:$(p 7002),3=127.0.0.1:$(p 7003)"

bin() {
  if [ -n "${ANODE_BIN:-}" ]; then echo "$ANODE_BIN"; return; fi
  source "$root/scripts/setup.sh"
  (cd "$root" && cargo build --release --bin anode >&2)
  echo "$CARGO_TARGET_DIR/release/anode"
}

launch() { # name args...
  local name="$1"; shift
  mkdir -p "$dir/$name"
  nohup "$ANODE" "$@" >>"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# The cluster CA and one certificate per process (made once, then reused).
make_certs() {
  local c="$dir/certs"
  [ -f "$c/ca/ca.key" ] || "$ANODE" ctl certs init "$c/ca" >/dev/null
  issue() { [ -f "$c/$1-$2/node.crt" ] || "$ANODE" ctl certs issue --ca "$c/ca" --role "$1" --id "$2" --out "$c/$1-$2" >/dev/null; }
  for i in 1 2 3; do issue master "$i"; done
  for i in 1 2 3 4; do issue chunkserver "$i"; done
  issue gateway 1; issue admin 1; issue client 1
}
certs() {
  case "${ANODE_CLUSTER_TLS:-on}" in
    insecure) echo "--insecure-no-tls" ;;
    none) ;;
    *) echo "--certs-dir $dir/certs/$1" ;;
  esac
}

case "$cmd" in
start)
  mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
  ANODE="$(bin)"
  if [ ! -f "$dir/credentials" ]; then
    ak="AK$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
    sk="$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf 'ANODE_ACCESS_KEY=%s\nANODE_SECRET_KEY=%s\n' "$ak" "$sk" >"$dir/credentials"
  fi
  source "$dir/credentials"
  [ "${ANODE_CLUSTER_TLS:-on}" = on ] && make_certs
  for i in 1 2 3; do
    alive "$dir/master-$i.pid" || launch "master-$i" master --id "$i" --data "$dir/master-$i" \
      --listen "127.0.0.1:$(p $((7000 + i)))" --admin-listen "127.0.0.1:$(p $((7080 + i)))" --peers "$peers" $(certs "master-$i")
  done
  for i in 1 2 3 4; do
    alive "$dir/chunkserver-$i.pid" || launch "chunkserver-$i" chunkserver --data "$dir/chunkserver-$i" \
      --listen "127.0.0.1:$(p $((7100 + i)))" --admin-listen "127.0.0.1:$(p $((7180 + i)))" --masters "$masters" --rack "rack-$i" $(certs "chunkserver-$i")
  done
  for _ in $(seq 1 300); do
    "$ANODE" ctl --masters "$masters" $(certs admin-1) keys create --name default --access-key "$ANODE_ACCESS_KEY" --secret-key "$ANODE_SECRET_KEY" >/dev/null 2>"$dir/ctl.err" && break
    grep -q AccessKeyExists "$dir/ctl.err" && break
    sleep 0.2
  done
  audit=(--audit-log "$dir/gateway-1.audit.log")
  [ "${ANODE_CLUSTER_AUDIT:-on}" = off ] && audit=()
  alive "$dir/gateway-1.pid" || launch gateway-1 gateway --listen "127.0.0.1:$(p 9000)" \
    --admin-listen "127.0.0.1:$(p 9001)" --masters "$masters" $(certs gateway-1) "${audit[@]}" ${ANODE_GATEWAY_ARGS:-}
  # Ready: the S3 endpoint answers and all 4 chunkservers are alive (a put before that can
  # fail with "need 3 chunkservers, have 1").
  live() { "$ANODE" ctl --masters "$masters" $(certs admin-1) status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length'; }
  for _ in $(seq 1 300); do
    if curl -s -o /dev/null "http://127.0.0.1:$(p 9000)/" 2>/dev/null && [ "$(live)" = 4 ]; then
      echo "S3 endpoint http://127.0.0.1:$(p 9000) ready, 4 chunkservers alive; credentials in $dir/credentials"
      echo "operator CLI: $ANODE ctl --masters $masters --certs-dir $dir/certs/admin-1 status"; exit 0
    fi
    sleep 0.2
  done
  echo "S3 endpoint or chunkservers not ready within 60 s; see $dir/*.log" >&2; exit 1
  ;;
stop)
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$f"
  done
  ;;
status)
  for f in "$dir"/*.pid; do
    [ -f "$f" ] || continue
    n="$(basename "$f" .pid)"
    if alive "$f"; then echo "$n running (pid $(cat "$f"))"; else echo "$n stopped"; fi
  done
  ANODE="${ANODE_BIN:-$(bin)}"
  "$ANODE" ctl --masters "$masters" $(certs admin-1) status || true
  ;;
*) echo "usage: $0 start|stop|status DIR" >&2; exit 2 ;;
esac
