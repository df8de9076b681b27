#!/usr/bin/env bash
# Chaos: rolling restart under load. Every process (4 chunkservers, then the master followers,
# then the master leader, then both gateways) gets SIGTERM (graceful drain), is started again and
# must be healthy before the next one goes. Clients retry like SDKs (up to ATTEMPTS attempts,
# exponential backoff with full jitter, next endpoint on retry). Checks: zero client requests
# failed after their retries; the history is linearizable; every acknowledged write-once
# object is readable and listed through both gateways.
# Env: ATTEMPTS (10), RESTART_GAP (2 s of load before each restart).
source "$(dirname "$0")/lib.sh"
chaos_init rolling-restart
ATTEMPTS="${ATTEMPTS:-10}"

cluster_start 3 4 2
retry=(--attempts "$ATTEMPTS" --timeout-ms 5000 --backoff-ms 100 --backoff-max-ms 2000
  --seconds 600 --stop-file "$CHAOS_DIR/stop-load")
chaos_load_bg load --processes 5 --keys 10 --mix 4,5,1 "${retry[@]}"
chaos_load_bg acked --unique 1000000 --processes 2 --key-prefix u --value-bytes 20000 \
  --writes "$CHAOS_DIR/acked.writes" "${retry[@]}"
sleep 5

member_ok() { # id: reachable, caught up, and some leader
  ctl_status | jq -e --argjson i "$1" '.leader_id != 0 and ([.members[] | select(.id == $i and .reachable)] | length) == 1 and (.members | map(.applied_index) | max - min) < 100' >/dev/null
}
cs_epoch() { ctl_status | jq -r --arg a "127.0.0.1:${C_PORT[$1]}" '[.chunkservers[] | select(.addr == $a and .state == "alive") | .epoch][0] // 0'; }
reregistered() { [ "$(cs_epoch "$1")" -gt "$2" ]; }
restart() { # name kind index
  local name="$1" kind="$2" i="$3" t0 epoch=0
  [ "$kind" = chunkserver ] && epoch="$(cs_epoch "$i")"
  sleep "${RESTART_GAP:-2}"
  t0="$(now_ms)"
  kill_proc "$name" TERM || return 1
  case "$kind" in
    chunkserver) start_chunkserver "$i"; wait_until 60 "$name healthy" healthy "${C_ADMIN[$i]}" \
      && wait_until 60 "$name registered again (epoch > $epoch)" reregistered "$i" "$epoch" ;;
    master) start_master "$i"; wait_until 60 "$name healthy" healthy "${M_ADMIN[$i]}" \
      && wait_until 60 "$name caught up" member_ok "$i" ;;
    gateway) start_gateway "$i"; wait_until 60 "$name answering" s3_answers "${G_PORT[$i]}" ;;
  esac || return 1
  log "restarted $name in $(( $(now_ms) - t0 )) ms"
}
ok=yes; restarted=0
for i in $(seq 1 "$NC"); do restart "chunkserver-$i" chunkserver "$i" || ok=no; restarted=$((restarted + 1)); done
leader="$(leader_id)"
for i in $(seq 1 "$NM"); do [ "$i" = "$leader" ] && continue; restart "master-$i" master "$i" || ok=no; restarted=$((restarted + 1)); done
restart "master-$leader" master "$leader" || ok=no; restarted=$((restarted + 1))
for i in $(seq 1 "$NG"); do restart "gateway-$i" gateway "$i" || ok=no; restarted=$((restarted + 1)); done
sleep 3
touch "$CHAOS_DIR/stop-load"
wait_load load
wait_load acked
lincheck load
verify_writes acked u
failed=$(( $(summary load requests_failed) + $(summary acked requests_failed) ))
lost="$(( $(vsum acked acked_missing) + $(vsum acked acked_corrupt) + $(vsum acked acked_unlisted) ))"
figures=(restarted="$restarted" requests="$(( $(summary load requests) + $(summary acked requests) ))"
  requests_failed="$failed" retried_attempts="$(( $(summary load fail) + $(summary load info) + $(summary acked fail) + $(summary acked info) ))"
  ops="$(( $(summary load ops) + $(summary acked ops) ))" unavailable_ms="$(summary load unavailable_ms)"
  p99_ms="$(summary load p99_ms)" acked_writes="$(vsum acked acked)" acked_lost="$lost"
  lin="$LIN_RC" lin_anomalies="$(lin_anomalies)" broken_history_rc="$LIN_MUTANT_RC")
if [ "$ok" = yes ] && [ "$failed" = 0 ] && lin_ok && [ "$VERIFY_RC" = 0 ]; then
  result PASS "${figures[@]}"
else
  echo "first errors: $(summary load first_error) / $(summary acked first_error)" >&2
  result FAIL "${figures[@]}"
fi
