#!/usr/bin/env bash
# Chaos: kill -9 every process of the cluster (3 masters, 4 chunkservers, 2 gateways) at once
# during write-once PUTs (20 KB chunked bodies and 512 B inline ones), restart them all, keep
# writing; then every acknowledged object must be listed and byte-identical (SHA-256) through
# both gateways, every unacknowledged one absent or complete, every failed one absent.
# Env: LOAD_SECONDS (30), CRASH_AT (10), DOWN_SECONDS (2).
source "$(dirname "$0")/lib.sh"
chaos_init crash-all
LOAD_SECONDS="${LOAD_SECONDS:-30}"
CRASH_AT="${CRASH_AT:-10}"
DOWN_SECONDS="${DOWN_SECONDS:-2}"

cluster_start 3 4 2
chaos_load_bg chunked --unique 1000000 --processes 4 --seconds "$LOAD_SECONDS" --key-prefix c \
  --value-bytes 20000 --timeout-ms 3000 --writes "$CHAOS_DIR/chunked.writes"
chaos_load_bg inline --unique 1000000 --processes 2 --seconds "$LOAD_SECONDS" --key-prefix i \
  --value-bytes 512 --timeout-ms 3000 --writes "$CHAOS_DIR/inline.writes"
sleep "$CRASH_AT"
procs=()
for f in "$CHAOS_DIR"/master-*.pid "$CHAOS_DIR"/chunkserver-*.pid "$CHAOS_DIR"/gateway-*.pid; do
  procs+=("$(basename "$f" .pid)")
done
log "kill -9 all ${#procs[@]} processes"
t_crash="$(now_ms)"
pids=()
for p in "${procs[@]}"; do pids+=("$(pid_of "$p")"); done
kill -KILL "${pids[@]}"
for p in "${procs[@]}"; do kill_proc "$p" KILL; done
sleep "$DOWN_SECONDS"
log "restart all"
for i in $(seq 1 "$NM"); do start_master "$i"; done
for i in $(seq 1 "$NC"); do start_chunkserver "$i"; done
for i in $(seq 1 "$NG"); do start_gateway "$i"; done
recovered=yes
wait_until 60 "a leader after restart" has_leader || recovered=no
for i in $(seq 1 "$NG"); do wait_until 60 "gateway-$i" s3_answers "${G_PORT[$i]}" || recovered=no; done
t_up="$(now_ms)"
log "cluster back after $(( t_up - t_crash )) ms"
wait_load chunked
wait_load inline
wait_until 60 "$NC live chunkservers" chunkservers_alive "$NC" || recovered=no
verify_writes chunked c
rc_chunked="$VERIFY_RC"
verify_writes inline i
rc_inline="$VERIFY_RC"
after="$(( $(ok_between chunked "$t_up" 99999999999999) + $(ok_between inline "$t_up" 99999999999999) ))"
both() { echo $(( $(vsum chunked "$1") + $(vsum inline "$1") )); }
lost="$(( $(both acked_missing) + $(both acked_corrupt) + $(both acked_unlisted) ))"
figures=(down_ms="$(( t_up - t_crash ))" acked="$(both acked)" unknown="$(both unknown)"
  unknown_present="$(both unknown_present)" unknown_absent="$(both unknown_absent)"
  unknown_bad="$(both unknown_bad)" failed="$(both failed)" failed_present="$(both failed_present)"
  acked_after_restart="$after" ops="$(( $(summary chunked ops) + $(summary inline ops) ))"
  unavailable_ms="$(summary chunked unavailable_ms)" acked_lost="$lost" lin_anomalies=n/a)
if [ "$recovered" = yes ] && [ "$rc_chunked" = 0 ] && [ "$rc_inline" = 0 ] && [ "$lost" = 0 ] \
  && [ "$after" -gt 0 ]; then
  result PASS "${figures[@]}"
else
  result FAIL "${figures[@]}"
fi
