#!/usr/bin/env bash
# Chaos: kill -9 the master leader during a PUT/GET/DELETE load through two gateways.
# Measures the election time (kill -> a new leader in ctl status) and the clients' longest
# window without a successful operation; checks the history with anode-lincheck; every
# acknowledged write-once object is listed and byte-identical through both gateways afterwards.
# Env: LOAD_SECONDS (30), UNAVAILABLE_MAX_MS (15000).
source "$(dirname "$0")/lib.sh"
chaos_init leader-failover
LOAD_SECONDS="${LOAD_SECONDS:-30}"
UNAVAILABLE_MAX_MS="${UNAVAILABLE_MAX_MS:-15000}"

cluster_start 3 4 2
chaos_load_bg load --processes 5 --keys 10 --seconds "$LOAD_SECONDS" --timeout-ms 2000 --mix 4,5,1
chaos_load_bg acked --unique 1000000 --processes 2 --seconds "$LOAD_SECONDS" --key-prefix u \
  --value-bytes 20000 --timeout-ms 2000 --writes "$CHAOS_DIR/acked.writes" --no-final-reads
sleep $(( LOAD_SECONDS / 3 ))
old="$(leader_id)"
[ "$old" != 0 ] || { result FAIL "reason=no-leader-before-kill"; exit 1; }
log "kill -9 leader master-$old"
t_kill="$(now_ms)"; T_FAULT="$t_kill"
kill_proc "master-$old" KILL
new_leader() { local id; id="$(leader_id)"; [ "$id" != 0 ] && [ "$id" != "$old" ]; }
failover_ms=timeout
if wait_until 30 "a new leader" new_leader; then failover_ms=$(( $(now_ms) - t_kill )); fi
new="$(leader_id)"
log "new leader master-$new after ${failover_ms} ms"
sleep 5
log "restart master-$old"
start_master "$old"
wait_load load
wait_load acked
lincheck load
verify_writes acked u
wait_until 30 "master-$old back" healthy "${M_ADMIN[$old]}" || true

unavail="$(summary load unavailable_ms)"
ops="$(summary load ops)"
corrupt="$(summary load corrupt_reads)"
lost="$(( $(vsum acked acked_missing) + $(vsum acked acked_corrupt) + $(vsum acked acked_unlisted) ))"
figures=(election_ms="$(elected_after "$T_FAULT")" failover_ms="$failover_ms" unavailable_ms="$unavail" ops="$ops" ok="$(summary load ok)"
  info="$(summary load info)" fail="$(summary load fail)" p99_ms="$(summary load p99_ms)"
  acked_writes="$(vsum acked acked)" acked_lost="$lost" lin="$LIN_RC" lin_anomalies="$(lin_anomalies)"
  broken_history_rc="$LIN_MUTANT_RC")
if lin_ok && [ "$VERIFY_RC" = 0 ] && [ "$corrupt" = 0 ] && [ "$failover_ms" != timeout ] \
  && python3 -c "import sys; sys.exit(0 if $unavail <= $UNAVAILABLE_MAX_MS else 1)"; then
  result PASS "${figures[@]}"
else
  echo "$LIN_OUT" | head -20 >&2
  result FAIL "${figures[@]}"
fi
