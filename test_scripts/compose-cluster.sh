#!/usr/bin/env bash
# The container test: deploy/compose (3 masters, 4 chunkservers on distinct racks, 2 gateways,
# anode-toxiproxy in front of the raft links, Prometheus) on a private Docker network, each
# container on its own address, data on named volumes. Steps:
#   1. build the image (scripts/docker-image.sh: debootstrap base, no registry needed) and the
#      previous release's image (its `anode` built from git at deploy/previous-release), make
#      the certificates with deploy/compose/init-certs.sh, `docker-compose up` on the PREVIOUS
#      release;
#   2. a rolling upgrade to this tree under a recorded load (each container recreated on the
#      new image, one at a time, each healthy before the next): zero failed requests after
#      SDK-style retries (3 attempts, the retry to the other gateway), with a 10 s
#      per-attempt timeout (the client SDKs' default is 60 s); then awscli, s3cmd and
#      rclone through both gateways (scripts/s3-clients.sh);
#   3. four faults across containers, each under a recorded load through both gateways
#      (random put/get/delete on a few keys, checked for linearizability by anode-lincheck,
#      and write-once objects whose acknowledged writes must all be listed and byte-identical
#      afterwards): `docker kill` of the raft leader, `docker pause` of a chunkserver past its
#      lease, `docker network disconnect` of the leader (a real partition: no proxy), and a
#      rolling restart of every container (SIGTERM, one at a time, each back healthy first);
#   4. Prometheus: the chunkserver-dead alert (deploy/prometheus/alerts.yml) fires while a
#      chunkserver container is stopped (during the S3 clients' run);
#   5. `docker-compose down` and `up` on the same volumes: every acknowledged object of every
#      phase is still there, byte for byte.
# Prints one PASS/FAIL line per phase (and a JSON line each in $CHAOS_RESULTS when set); exits
# non-zero if any failed. Stops and removes only its own compose project (containers, network,
# volumes), whatever happens.
# COMPOSE_REPORT=FILE writes a Markdown report of the run there (docs/compose-report.md).
# Env: SETTLE_SECONDS (8: load before and after each fault), ANODE_NET_PREFIX (a free 172.31.x, probed), CHAOS_KEEP=1 keeps the
# project and the temp dir for a look afterwards, UNAVAILABLE_MAX_MS (20000),
# ANODE_IMAGE_PROFILE (release; CI: debug), COMPOSE_PREV_REV (deploy/previous-release; "none"
# skips the upgrade and starts on this tree).
source "$(dirname "$0")/lib.sh"
chaos_init compose-cluster
# Every result line also goes to results.jsonl here (for COMPOSE_REPORT), and to the caller's
# CHAOS_RESULTS when set.
CALLER_RESULTS="${CHAOS_RESULTS:-}"
export CHAOS_RESULTS="$CHAOS_DIR/results.jsonl"
SETTLE_SECONDS="${SETTLE_SECONDS:-8}"
UNAVAILABLE_MAX_MS="${UNAVAILABLE_MAX_MS:-20000}"
COMPOSE_FILE="$CHAOS_ROOT/deploy/compose/docker-compose.yml"
PROJECT="anodeci$$"
FAILED=()

command -v docker-compose >/dev/null || { log "docker-compose not found"; exit 1; }
docker info >/dev/null 2>&1 || { log "no Docker engine"; exit 1; }

# A /24 that no Docker network or host route uses yet.
pick_prefix() {
  local n p
  for n in $(seq 250 -1 200); do
    p="172.31.$n"
    ip route | grep -q "^$p\." && continue
    docker network ls -q | xargs -r docker network inspect -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' \
      | grep -q "$p\.0/" && continue
    echo "$p"; return
  done
  return 1
}
export ANODE_NET_PREFIX="${ANODE_NET_PREFIX:-$(pick_prefix)}"
export ANODE_IMAGE="${ANODE_IMAGE:-anode:latest}"
NEW_IMAGE="$ANODE_IMAGE"
PREV_REV="${COMPOSE_PREV_REV:-$(grep -v '^#' "$CHAOS_ROOT/deploy/previous-release" | head -1)}"
export ANODE_PROMETHEUS_IMAGE="${ANODE_PROMETHEUS_IMAGE:-anode-prometheus:local}"
export ANODE_CERTS="$CHAOS_DIR/certs"
# A stopped chunkserver is dead after 10 s (so the alert check takes ~80 s, not ~100 s); the
# pause phase stays under it.
export ANODE_DEAD_AFTER_MS="${ANODE_DEAD_AFTER_MS:-10000}"
export ANODE_S3_PORT_1="$(free_port)" ANODE_S3_PORT_2="$(free_port)"
P="$ANODE_NET_PREFIX"
dc() { docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }

compose_cleanup() {
  local rc=$?
  if [ -z "${CHAOS_KEEP:-}" ]; then
    dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  else
    log "kept: docker-compose -p $PROJECT -f $COMPOSE_FILE (down -v to remove)"
  fi
  (exit "$rc"); chaos_cleanup
}
trap compose_cleanup EXIT

# ---- image, certificates, cluster ------------------------------------------------------------
t0="$(now_ms)"
log "building the image"
bash "$CHAOS_ROOT/scripts/docker-image.sh" "$ANODE_IMAGE" >"$CHAOS_DIR/image.log" 2>&1 ||
  { tail -30 "$CHAOS_DIR/image.log" >&2; result FAIL phase=image; exit 1; }
if [ "$PREV_REV" != none ]; then
  if ! git -C "$CHAOS_ROOT" cat-file -e "$PREV_REV^{commit}" 2>/dev/null; then
    # A shallow clone has no history to build from: say so loudly and test without it.
    log "previous release $PREV_REV is not in this clone's history: NO UPGRADE TEST"
    SCENARIO=compose-rolling-upgrade; echo "SKIP compose-rolling-upgrade reason=no-history rev=$PREV_REV"
    PREV_REV=none
  fi
fi
if [ "$PREV_REV" != none ]; then
  log "building the previous release's image (anode at ${PREV_REV:0:12})"
  ANODE_IMAGE_REV="$PREV_REV" ANODE_NO_PROMETHEUS_IMAGE=1 bash "$CHAOS_ROOT/scripts/docker-image.sh" anode:previous \
    >"$CHAOS_DIR/image-prev.log" 2>&1 || { tail -30 "$CHAOS_DIR/image-prev.log" >&2; result FAIL phase=prev-image; exit 1; }
  export ANODE_IMAGE=anode:previous
fi
image_ms=$(( $(now_ms) - t0 ))
ANODE_CERTS="$ANODE_CERTS" bash "$CHAOS_ROOT/deploy/compose/init-certs.sh" >/dev/null

chaos_credentials
declare -A M_IP
MASTERS=""
for i in 1 2 3; do
  M_IP[$i]="$P.1$i"; MASTERS="${MASTERS:+$MASTERS,}${M_IP[$i]}:7001"
done
ENDPOINTS="http://$P.31:9000,http://$P.32:9000"
ctl() { "$ANODE" ctl --certs-dir "$CHAOS_DIR/certs/admin-1" "$@"; }
cid() { dc ps -q "$1"; }
health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$(cid "$1")" 2>/dev/null; }
is_healthy() { [ "$(health_of "$1")" = healthy ]; }
all_healthy() { local s; for s in "$@"; do is_healthy "$s" || return 1; done; }
SERVICES=(toxiproxy master-1 master-2 master-3 chunkserver-1 chunkserver-2 chunkserver-3 chunkserver-4 gateway-1 gateway-2)

up_cluster() {
  dc up -d >"$CHAOS_DIR/up.log" 2>&1 || { cat "$CHAOS_DIR/up.log" >&2; return 1; }
  wait_until 90 "a raft leader" has_leader
  wait_until 90 "4 live chunkservers" chunkservers_alive 4
  wait_until 90 "every container healthy" all_healthy "${SERVICES[@]}"
}
t0="$(now_ms)"
log "docker-compose up (project $PROJECT, network $P.0/24)"
up_cluster || { dc logs --tail 30 >&2; result FAIL phase=up; exit 1; }
up_ms=$(( $(now_ms) - t0 ))
for _ in $(seq 1 100); do
  if ctl --masters "$MASTERS" keys create --name default --access-key "$ANODE_ACCESS_KEY" \
    --secret-key "$ANODE_SECRET_KEY" >/dev/null 2>"$CHAOS_DIR/ctl.err" ||
    grep -q AccessKeyExists "$CHAOS_DIR/ctl.err"; then break; fi
  sleep 0.3
done
s3_up() { curl -s -o /dev/null --max-time 2 "$1/"; }
wait_until 60 "gateway-1" s3_up "http://$P.31:9000"
wait_until 60 "gateway-2" s3_up "http://$P.32:9000"
log "cluster up in ${up_ms} ms (image ${image_ms} ms)"

# ---- S3 clients through both gateways (in parallel) -----------------------------------------
s3_clients() {
  local ep pids=() rc=PASS
  for ep in "http://$P.31:9000" "http://$P.32:9000"; do
    bash "$CHAOS_ROOT/scripts/s3-clients.sh" "$ep" >"$CHAOS_DIR/clients-${ep##*.}.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || rc=FAIL; done
  [ "$rc" = PASS ] || grep -h FAIL "$CHAOS_DIR"/clients-*.log | head -10 >&2
  SCENARIO=compose-s3-clients result "$rc" gateways=2 tools=aws,s3cmd,rclone version=new || FAILED+=(s3-clients)
}

# ---- an alert on a real fault (overlapping the S3 clients' run) ------------------------------
# chunkserver-4 is stopped while awscli, s3cmd and rclone run (so they also run with one
# server down); the real rules of deploy/prometheus/alerts.yml must fire AnodeChunkserverDead
# (dead after ANODE_DEAD_AFTER_MS, then its `for:` of 1 minute) before it comes back.
alert_firing() {
  curl -fs --max-time 2 "http://$P.41:9090/api/v1/alerts" |
    jq -e '[.data.alerts[] | select(.labels.alertname == "AnodeChunkserverDead" and .state == "firing")] | length > 0' >/dev/null
}
alert_start() {
  log "docker stop chunkserver-4 (AnodeChunkserverDead must fire)"
  docker stop -t 5 "$(cid chunkserver-4)" >/dev/null
  T_ALERT="$(now_ms)"
}
alert_check() {
  SCENARIO=compose-alert
  if wait_until 180 "AnodeChunkserverDead firing" alert_firing; then
    result PASS alert=AnodeChunkserverDead stopped=chunkserver-4 fired_after_ms=$(( $(now_ms) - T_ALERT ))
  else
    result FAIL alert=AnodeChunkserverDead || true; FAILED+=(alert)
  fi
  docker start "$(cid chunkserver-4)" >/dev/null
  wait_until 60 "4 live chunkservers" chunkservers_alive 4 || true
}

# ---- faults under recorded load --------------------------------------------------------------
leader_cid() { local id; id="$(leader_id)"; [ "$id" != 0 ] && cid "master-$id"; }
PHASES=()

# phase NAME FAULT: loads through both gateways; FAULT after SETTLE_SECONDS; the loads stop
# SETTLE_SECONDS after FAULT returned (a stop file; 600 s at most); then the checks.
phase() {
  local name="$1" fault="$2"
  SCENARIO="compose-$name"
  PHASES+=("$name")
  chaos_load_bg "load-$name" --processes 4 --keys 8 --key-prefix "$name-k" ${ROUTING:+--routing "$ROUTING"} \
    --seconds 600 --stop-file "$CHAOS_DIR/stop-$name" --timeout-ms "${TIMEOUT_MS:-3000}" --mix 4,5,1
  chaos_load_bg "acked-$name" --unique 1000000 --processes 2 ${ROUTING:+--routing "$ROUTING"} --seconds 600 --stop-file "$CHAOS_DIR/stop-$name" \
    --key-prefix "$name-u" --value-bytes 20000 --timeout-ms "${TIMEOUT_MS:-3000}" \
    --writes "$CHAOS_DIR/acked-$name.writes" --no-final-reads
  sleep "$SETTLE_SECONDS"
  FAULT_INFO=""
  T_FAULT="$(now_ms)"
  "$fault" || FAULT_INFO="${FAULT_INFO} fault=error"
  sleep "$SETTLE_SECONDS"
  touch "$CHAOS_DIR/stop-$name"
  local ok=1
  wait_load "load-$name" || ok=0
  wait_load "acked-$name" || ok=0
  lincheck "load-$name"
  verify_writes "acked-$name" "$name-u"
  local unavail corrupt lost
  unavail="$(summary "load-$name" unavailable_ms)"
  corrupt="$(summary "load-$name" corrupt_reads)"
  lost="$(( $(vsum "acked-$name" acked_missing) + $(vsum "acked-$name" acked_corrupt) + $(vsum "acked-$name" acked_unlisted) ))"
  local figures=(unavailable_ms="$unavail" ops="$(summary "load-$name" ops)"
    ok="$(summary "load-$name" ok)" fail="$(summary "load-$name" fail)"
    p99_ms="$(summary "load-$name" p99_ms)" acked_writes="$(vsum "acked-$name" acked)"
    acked_lost="$lost" lin="$LIN_RC" broken_history_rc="$LIN_MUTANT_RC" $FAULT_INFO)
  local pass=1
  [ "$ok" = 1 ] || pass=0
  [[ "$FAULT_INFO" != *fault=error* ]] || pass=0
  lin_ok || pass=0
  [ "$VERIFY_RC" = 0 ] && [ "$corrupt" = 0 ] && [ "$lost" = 0 ] || pass=0
  python3 -c "import sys; sys.exit(0 if $unavail <= $UNAVAILABLE_MAX_MS else 1)" || pass=0
  if [ -n "${ZERO_FAILURES:-}" ]; then
    # Requests as an S3 SDK sees them: failed after its retries, or a PUT of unknown outcome.
    # (Failed single attempts, e.g. a refused connection to a gateway being replaced that
    # the retry then sends to the other one, are the `fail` figure.)
    local failed_req
    failed_req="$(( $(summary "load-$name" requests_failed) + $(summary "load-$name" puts_unknown) + $(summary "acked-$name" requests_failed) + $(summary "acked-$name" puts_unknown) ))"
    figures+=(failed_requests="$failed_req" requests="$(( $(summary "load-$name" requests) + $(summary "acked-$name" requests) ))")
    [ "$failed_req" = 0 ] || pass=0
  fi
  if [ "$pass" = 1 ]; then
    result PASS "${figures[@]}"
  else
    echo "$LIN_OUT" | head -10 >&2
    result FAIL "${figures[@]}" || true; FAILED+=("$name")
  fi
}

fault_kill_leader() {
  local id c
  id="$(leader_id)"; [ "$id" != 0 ] || return 1
  c="$(cid "master-$id")"
  log "docker kill master-$id (the leader)"
  docker kill "$c" >/dev/null
  new_leader() { local x; x="$(leader_id)"; [ "$x" != 0 ] && [ "$x" != "$id" ]; }
  local t="$(now_ms)"
  wait_until 30 "a new leader" new_leader || return 1
  FAULT_INFO="killed=master-$id failover_ms=$(( $(now_ms) - t ))"
  sleep 3
  docker start "$c" >/dev/null
  wait_until 60 "master-$id healthy" is_healthy "master-$id"
}

fault_pause_chunkserver() {
  local c; c="$(cid chunkserver-2)"
  # Past its lease (ANODE_LEASE_MS, 3 s in the compose file): suspect, so new chunks go elsewhere.
  log "docker pause chunkserver-2 for 8 s"
  docker pause "$c" >/dev/null
  sleep 8
  docker unpause "$c" >/dev/null
  FAULT_INFO="paused=chunkserver-2 pause_ms=8000"
  wait_until 60 "4 live chunkservers" chunkservers_alive 4
}

fault_disconnect_leader() {
  local id c net
  id="$(leader_id)"; [ "$id" != 0 ] || return 1
  c="$(cid "master-$id")"
  net="${PROJECT}_anode"
  log "docker network disconnect master-$id (the leader) for 12 s"
  docker network disconnect "$net" "$c"
  new_leader() { local x; x="$(leader_id)"; [ "$x" != 0 ] && [ "$x" != "$id" ]; }
  local t="$(now_ms)" failover=timeout
  wait_until 30 "a new leader" new_leader && failover=$(( $(now_ms) - t ))
  sleep $(( 12 - failover / 1000 > 0 ? 12 - failover / 1000 : 0 ))
  docker network connect --ip "${M_IP[$id]}" "$net" "$c"
  FAULT_INFO="partitioned=master-$id failover_ms=$failover"
  [ "$failover" != timeout ] || return 1
  wait_until 60 "master-$id healthy" is_healthy "master-$id"
}

fault_rolling_restart() {
  local s
  for s in master-1 master-2 master-3 chunkserver-1 chunkserver-2 chunkserver-3 chunkserver-4 gateway-1 gateway-2 toxiproxy; do
    log "docker restart $s (SIGTERM, drain)"
    docker restart -t 20 "$(cid "$s")" >/dev/null
    wait_until 60 "$s healthy" is_healthy "$s" || return 1
    [[ "$s" == chunkserver-* ]] && { wait_until 60 "4 live chunkservers" chunkservers_alive 4 || return 1; }
    [[ "$s" == master-* ]] && { wait_until 30 "a raft leader" has_leader || return 1; }
  done
  FAULT_INFO="restarted=${#SERVICES[@]}"
}

fault_rolling_upgrade() {
  local s
  for s in master-1 master-2 master-3 chunkserver-1 chunkserver-2 chunkserver-3 chunkserver-4 gateway-1 gateway-2; do
    log "upgrade $s to $NEW_IMAGE (stop with SIGTERM, recreate on the same volume)"
    ANODE_IMAGE="$NEW_IMAGE" dc up -d --no-deps "$s" >>"$CHAOS_DIR/upgrade.log" 2>&1 || return 1
    wait_until 60 "$s healthy" is_healthy "$s" || return 1
    [[ "$s" == chunkserver-* ]] && { wait_until 60 "4 live chunkservers" chunkservers_alive 4 || return 1; }
    [[ "$s" == master-* ]] && { wait_until 30 "a raft leader" has_leader || return 1; }
  done
  FAULT_INFO="upgraded=9 from=${PREV_REV:0:12}"
}

if [ "$PREV_REV" != none ]; then
  # A client with both gateways sends its retry to the other one (--routing per-process: attempt
  # i of process p goes to gateway (p + i) mod 2), as a load balancer in front would.
  ROUTING=per-process TIMEOUT_MS=10000 ZERO_FAILURES=1 phase rolling-upgrade fault_rolling_upgrade
  export ANODE_IMAGE="$NEW_IMAGE"
fi
alert_start
s3_clients
alert_check
phase kill-leader fault_kill_leader
phase pause-chunkserver fault_pause_chunkserver
phase partition-leader fault_disconnect_leader
phase rolling-restart fault_rolling_restart

# ---- down and up on the same volumes ---------------------------------------------------------
SCENARIO=compose-down-up
log "docker-compose down (volumes kept), then up"
t0="$(now_ms)"
dc down -t 20 >/dev/null 2>&1
up_cluster || { result FAIL phase=up-again; exit 1; }
wait_until 60 "gateway-1" s3_up "http://$P.31:9000"
wait_until 60 "gateway-2" s3_up "http://$P.32:9000"
restart_ms=$(( $(now_ms) - t0 ))
all=PASS total=0 lost=0
# Every phase's acknowledged objects, checked through both gateways, the phases at once.
for name in "${PHASES[@]}"; do
  (verify_writes "acked-$name" "$name-u"; echo "$VERIFY_RC" >"$CHAOS_DIR/verify-rc-$name") &
done
wait
for name in "${PHASES[@]}"; do
  n="$(vsum "acked-$name" acked)"; total=$(( total + n ))
  l="$(( $(vsum "acked-$name" acked_missing) + $(vsum "acked-$name" acked_corrupt) + $(vsum "acked-$name" acked_unlisted) ))"
  lost=$(( lost + l ))
  [ "$(cat "$CHAOS_DIR/verify-rc-$name")" = 0 ] && [ "$l" = 0 ] || all=FAIL
done
result "$all" objects_checked="$total" acked_lost="$lost" down_up_ms="$restart_ms" || FAILED+=(down-up)

if [ -n "${COMPOSE_REPORT:-}" ] && [ -s "$CHAOS_DIR/results.jsonl" ]; then
  python3 "$CHAOS_ROOT/test_scripts/compose-report.py" "$CHAOS_DIR/results.jsonl" "$COMPOSE_REPORT" \
    "$(git -C "$CHAOS_ROOT" rev-parse --short HEAD)" "${ANODE_IMAGE_PROFILE:-release}" $(( ($(now_ms) - CHAOS_T0) / 1000 ))
  log "report: $COMPOSE_REPORT"
fi
[ -z "$CALLER_RESULTS" ] || cat "$CHAOS_DIR/results.jsonl" >>"$CALLER_RESULTS"
if [ "${#FAILED[@]}" -gt 0 ]; then
  log "failed: ${FAILED[*]}"
  dc logs --tail 40 >"$CHAOS_DIR/compose.log" 2>&1 || true
  exit 1
fi
log "all phases passed"
