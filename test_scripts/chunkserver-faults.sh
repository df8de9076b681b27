#!/usr/bin/env bash
# Chaos: chunkserver faults under load, one after another, with clients that retry like SDKs
# (up to ATTEMPTS attempts, exponential backoff with full jitter, next endpoint on retry):
#   1. loss: kill -9 one of 5 chunkservers; the master declares it dead and re-replicates.
#   2. corrupt blobs: flip one byte in CORRUPT (20) blob files of another chunkserver; reads
#      verify SHA-256 and skip the bad copy, the scrubber quarantines them, the master repairs.
#   3. disk full: a sixth chunkserver with a CAPACITY_MIB (16 MiB) capacity joins and fills up;
#      writes go on elsewhere.
# Pass: zero failed client requests; after the loss, no under-replicated chunk; after the
# corruption, no corrupt file is left in place and nothing is
# under-replicated; the small server reached its capacity and writes still succeeded after;
# the history is linearizable; every acknowledged write-once object is intact on both gateways.
source "$(dirname "$0")/lib.sh"
chaos_init chunkserver-faults
ATTEMPTS="${ATTEMPTS:-10}"
CORRUPT="${CORRUPT:-20}"
CAPACITY_MIB="${CAPACITY_MIB:-16}"
# Scrub passes every 2 s (the default pause is an hour) so planted corruption is found by the
# scrubber too, not only by reads that happen to touch it.
CHUNKSERVER_FLAGS="--scrub-interval-secs 2"

cluster_start 3 5 2
retry=(--attempts "$ATTEMPTS" --timeout-ms 5000 --backoff-ms 100 --backoff-max-ms 2000
  --seconds 600 --stop-file "$CHAOS_DIR/stop-load")
chaos_load_bg load --processes 4 --keys 10 --mix 4,5,1 --value-bytes 20000 "${retry[@]}"
chaos_load_bg acked --unique 1000000 --processes 2 --key-prefix u --value-bytes 50000 \
  --writes "$CHAOS_DIR/acked.writes" "${retry[@]}"
sleep 8

cs_state() { ctl_status | jq -r --arg a "127.0.0.1:${C_PORT[$1]}" '[.chunkservers[] | select(.addr == $a) | .state][0] // "none"'; }
is_dead() { [ "$(cs_state "$1")" = dead ]; }
fully_replicated() {
  ctl_status | jq -e '.under_replicated_chunks == 0 and .missing_copies == 0 and .lost_chunks == 0' >/dev/null
}
# bad_blobs LIST: files named in LIST (blob paths) that exist and do not hash to their name.
bad_blobs() {
  python3 - "$1" <<'PY'
import hashlib, os, sys
bad = 0
for p in open(sys.argv[1]).read().split():
    try:
        with open(p, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() != os.path.basename(p):
                bad += 1
    except FileNotFoundError:
        pass
print(bad)
PY
}
health_log() {
  log "health: $(ctl_status | jq -c '{under_replicated_chunks, missing_copies, missing_bytes, lost_chunks, tasks_in_flight, garbage_chunks}')"
}
ok=yes

# 1. Loss.
t0="$(now_ms)"
kill_proc chunkserver-1 KILL
wait_until 60 "chunkserver-1 declared dead" is_dead 1 || ok=no
dead_ms=$(( $(now_ms) - t0 ))
wait_until 120 "re-replication after the loss" fully_replicated || { ok=no; health_log; }
loss_heal_ms=$(( $(now_ms) - t0 ))
log "loss: dead after $dead_ms ms, fully replicated after $loss_heal_ms ms"

# 2. Corrupt blobs on chunkserver-2 (same size, one byte flipped).
corrupted="$(python3 - "$CHAOS_DIR/chunkserver-2" "$CORRUPT" "$CHAOS_DIR/corrupted.txt" <<'PY'
import os, re, sys, random
root, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
blobs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "blobs"))
         for f in fs if re.fullmatch(r"[0-9a-f]{64}", f)]
random.shuffle(blobs)
done = 0
for p in blobs[:n]:
    with open(p, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            continue
        fh.seek(size // 2); b = fh.read(1); fh.seek(size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    done += 1
    print(p, file=open(out, "a"))
print(done)
PY
)"
t1="$(now_ms)"
planted="$(bad_blobs "$CHAOS_DIR/corrupted.txt")"
log "corrupted $corrupted blobs on chunkserver-2 ($planted bad on disk)"
# Repaired: no corrupt file left in place (quarantined, or rewritten by a repair) and every
# chunk back at R good copies.
repaired() { [ "$(bad_blobs "$CHAOS_DIR/corrupted.txt")" = 0 ] && fully_replicated; }
wait_until 120 "corrupt copies repaired" repaired || { ok=no; health_log; }
corrupt_heal_ms=$(( $(now_ms) - t1 ))
log "corruption: every copy good and fully replicated after $corrupt_heal_ms ms"

# 3. A small chunkserver joins and fills up.
C_PORT[6]="$(free_port)"; C_ADMIN[6]="$(free_port)"
start_chunkserver 6 --capacity $(( CAPACITY_MIB << 20 ))
cs_used() { ctl_status | jq -r --arg a "127.0.0.1:${C_PORT[6]}" '[.chunkservers[] | select(.addr == $a) | .used_bytes][0] // 0'; }
# Full: less than one value (plus slack) left below the capacity.
is_full() { [ "$(cs_used)" -ge $(( (CAPACITY_MIB << 20) - 300000 )) ]; }
wait_until 120 "chunkserver-6 full" is_full || ok=no
t_full="$(now_ms)"
log "chunkserver-6 full: $(cs_used) of $(( CAPACITY_MIB << 20 )) bytes"
sleep 5
touch "$CHAOS_DIR/stop-load"
wait_load load || ok=no
wait_load acked || ok=no
after_full="$(( $(ok_between load "$t_full" "$(now_ms)") + $(ok_between acked "$t_full" "$(now_ms)") ))"
lincheck load
verify_writes acked u
failed=$(( $(summary load requests_failed) + $(summary acked requests_failed) ))
lost="$(( $(vsum acked acked_missing) + $(vsum acked acked_corrupt) + $(vsum acked acked_unlisted) ))"
figures=(loss_dead_ms="$dead_ms" loss_heal_ms="$loss_heal_ms" corrupted="$corrupted"
  corrupt_heal_ms="$corrupt_heal_ms" full_used_bytes="$(cs_used)" ok_after_full="$after_full"
  requests="$(( $(summary load requests) + $(summary acked requests) ))" requests_failed="$failed"
  retried_attempts="$(( $(summary load fail) + $(summary load info) + $(summary acked fail) + $(summary acked info) ))"
  ops="$(( $(summary load ops) + $(summary acked ops) ))" unavailable_ms="$(summary load unavailable_ms)"
  p99_ms="$(summary load p99_ms)" acked_writes="$(vsum acked acked)" acked_lost="$lost"
  lin="$LIN_RC" lin_anomalies="$(lin_anomalies)" broken_history_rc="$LIN_MUTANT_RC")
if [ "$ok" = yes ] && [ "$failed" = 0 ] && [ "$corrupted" -gt 0 ] && [ "$after_full" -gt 0 ] \
  && lin_ok && [ "$VERIFY_RC" = 0 ] && [ "$lost" = 0 ]; then
  result PASS "${figures[@]}"
else
  echo "first errors: $(summary load first_error) / $(summary acked first_error)" >&2
  result FAIL "${figures[@]}"
fi
