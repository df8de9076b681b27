#!/usr/bin/env bash
# CI step: scripts/s3-clients.sh (awscli, s3cmd, rclone), scripts/s3-https-smoke.sh (awscli
# over HTTPS, `anode dev --s3-https-listen` with its self-signed certificate) and a short
# `anode-tools bench s3` against `anode dev`, then s3-clients.sh against
# scripts/local-cluster.sh, both on free loopback ports, with the debug `anode` and
# `anode-tools` binaries that `cargo build` already made (set ANODE_BIN and ANODE_TOOLS_BIN to
# use others). Stops everything it started, by
# PID, and exits non-zero if either run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
t_start=$SECONDS
if [ -z "${ANODE_BIN:-}" ] || [ -z "${ANODE_TOOLS_BIN:-}" ]; then
  cargo build -p anode -p anode-tools
  ANODE_BIN="${ANODE_BIN:-$CARGO_TARGET_DIR/debug/anode}"
  ANODE_TOOLS_BIN="${ANODE_TOOLS_BIN:-$CARGO_TARGET_DIR/debug/anode-tools}"
fi
export ANODE_BIN ANODE_TOOLS_BIN
work="$(mktemp -d)"
dev_pid=""
cluster=""
cleanup() {
  if [ -n "$dev_pid" ]; then
    kill -TERM "$dev_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dev_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dev_pid" 2>/dev/null || true
  fi
  [ -z "$cluster" ] || scripts/local-cluster.sh stop "$cluster" || true
  rm -rf "$work"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A port offset in [lo, hi) (step 100) under which every port BASE+offset is free.
pick_offset() { # LO HI BASE...
  local lo="$1" hi="$2"; shift 2
  for _ in $(seq 1 50); do
    local off=$((lo + (RANDOM % ((hi - lo) / 100)) * 100)) ok=1
    for p in "$@"; do port_free $((p + off)) || { ok=0; break; }; done
    [ "$ok" = 1 ] && { echo "$off"; return 0; }
  done
  echo "no free ports found" >&2; return 1
}

failed=0
# ---- anode dev ------------------------------------------------------------------------------
# Ports: S3 at base+900, HTTPS S3 at base+950, internal base, base+80, base+100..102,
# base+180..182, base+2000.
dev_base=$(( 20001 + $(pick_offset 0 8000 20001 20081 20101 20102 20103 20181 20182 20183 20901 20951 22001) ))
dev_ep="127.0.0.1:$((dev_base + 900))"
dev_https="127.0.0.1:$((dev_base + 950))"
echo "== anode dev on $dev_ep and https://$dev_https (internal ports from $dev_base)"
(
  unset ANODE_ACCESS_KEY ANODE_SECRET_KEY # the development keys
  exec "$ANODE_BIN" dev --data "$work/dev" --listen "$dev_ep" --base-port "$dev_base" \
    --s3-https-listen "$dev_https"
) >"$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 300); do
  kill -0 "$dev_pid" 2>/dev/null || break
  curl -s -o /dev/null "http://$dev_ep/" && break
  sleep 0.2
done
if curl -s -o /dev/null "http://$dev_ep/"; then
  t0=$SECONDS
  (unset ANODE_ACCESS_KEY ANODE_SECRET_KEY; scripts/s3-clients.sh "http://$dev_ep") || failed=1
  echo "== s3-clients on anode dev: $((SECONDS - t0)) s"
  t0=$SECONDS
  (unset ANODE_ACCESS_KEY ANODE_SECRET_KEY
    scripts/s3-https-smoke.sh "https://$dev_https" "$work/dev/s3-tls/cert.pem") || failed=1
  echo "== s3-https-smoke on anode dev: $((SECONDS - t0)) s"
  echo "== anode-tools bench s3 (signed PUT/GET, bodies verified) on anode dev"
  (unset ANODE_ACCESS_KEY ANODE_SECRET_KEY
    "$ANODE_TOOLS_BIN" bench s3 --endpoint "http://$dev_ep" --size 1KiB --concurrency 4 --objects 50 &&
      "$ANODE_TOOLS_BIN" bench s3 --endpoint "http://$dev_ep" --size 5MiB --concurrency 2 --objects 6 --payload sha256
  ) || { echo "FAIL anode-tools bench s3"; failed=1; }
else
  echo "FAIL anode dev did not serve on $dev_ep"; tail -n 30 "$work/dev.log"; failed=1
fi
kill -TERM "$dev_pid" 2>/dev/null || true
wait "$dev_pid" 2>/dev/null || true
dev_pid=""

# ---- scripts/local-cluster.sh ---------------------------------------------------------------
off=$(pick_offset 10000 18000 7001 7002 7003 7081 7082 7083 7101 7102 7103 7104 7181 7182 7183 7184 9000 9001)
cluster="$work/cluster"
echo "== local-cluster.sh with ANODE_PORT_OFFSET=$off"
if ANODE_PORT_OFFSET="$off" scripts/local-cluster.sh start "$cluster"; then
  t0=$SECONDS
  (source "$cluster/credentials"; export ANODE_ACCESS_KEY ANODE_SECRET_KEY
    scripts/s3-clients.sh "http://127.0.0.1:$((9000 + off))") || failed=1
  echo "== s3-clients on local-cluster: $((SECONDS - t0)) s"
else
  echo "FAIL local-cluster.sh start"; tail -n 20 "$cluster"/*.log; failed=1
fi
ANODE_PORT_OFFSET="$off" scripts/local-cluster.sh stop "$cluster" || failed=1
cluster=""
echo "== ci-s3-clients: $((SECONDS - t_start)) s, $([ "$failed" = 0 ] && echo ok || echo FAILED)"
exit "$failed"
