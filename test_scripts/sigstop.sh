#!/usr/bin/env bash
# Chaos: SIGSTOP the master leader and a chunkserver for longer than the chunkserver lease and
# the election timeout, with conflicting writes (5 clients, 3 keys, 20 KB bodies stored as
# chunks) through two gateways; then SIGCONT. Checks: a new leader while the old one is frozen;
# the thawed leader steps down; the final value of every key is one of the written values and
# identical through both gateways (final reads recorded in the history); lincheck passes.
# Env: LOAD_SECONDS (40), STOP_SECONDS (8; lease is 3 s), STOP_MASTER (1), STOP_CHUNKSERVER (1)
# (set one to 0 to see which frozen process the clients wait for).
source "$(dirname "$0")/lib.sh"
chaos_init sigstop
LOAD_SECONDS="${LOAD_SECONDS:-40}"
STOP_SECONDS="${STOP_SECONDS:-8}"
STOP_MASTER="${STOP_MASTER:-1}"
STOP_CHUNKSERVER="${STOP_CHUNKSERVER:-1}"

cluster_start 3 4 2
sample_raft_bg
chaos_load_bg load --processes 5 --keys 3 --mix 1,1,0 --value-bytes 20000 \
  --seconds "$LOAD_SECONDS" --timeout-ms 2000
sleep 10
old="$(leader_id)"
[ "$old" != 0 ] || { result FAIL "reason=no-leader"; exit 1; }
others=""
for i in $(seq 1 "$NM"); do [ "$i" = "$old" ] || others="${others:+$others,}127.0.0.1:${M_PORT[$i]}"; done
log "SIGSTOP master-$old (leader) and chunkserver-1 for ${STOP_SECONDS}s"
t_stop="$(now_ms)"; T_FAULT="$t_stop"
[ "$STOP_MASTER" = 1 ] && kill_proc "master-$old" STOP
[ "$STOP_CHUNKSERVER" = 1 ] && kill_proc chunkserver-1 STOP
new_leader() { local id; id="$(leader_id "$others")"; [ "$id" != 0 ] && [ "$id" != "$old" ]; }
failover_ms=timeout
if wait_until "$STOP_SECONDS" "a new leader" new_leader; then failover_ms=$(( $(now_ms) - t_stop )); fi
cs1_state_frozen="$(ctl_status "$others" | jq -r '[.chunkservers[] | select(.addr | endswith(":'"${C_PORT[1]}"'")) | .state][0]')"
rest=$(( STOP_SECONDS * 1000 - ($(now_ms) - t_stop) ))
[ "$rest" -gt 0 ] && sleep "$(python3 -c "print($rest/1000)")"
log "SIGCONT (new leader after $failover_ms ms; chunkserver-1 was $cs1_state_frozen)"
[ "$STOP_MASTER" = 1 ] && kill_proc "master-$old" CONT
[ "$STOP_CHUNKSERVER" = 1 ] && kill_proc chunkserver-1 CONT
stepped_down() { [ "$(metric "${M_ADMIN[$old]}" anode_master_is_leader)" = 0 ]; }
stepped=yes
if [ "$STOP_MASTER" = 1 ]; then wait_until 15 "master-$old to step down" stepped_down || stepped=no; else stepped=n/a; fi
wait_load load
stop_sampler
lincheck load
# Final reads: processes 1000 (gateway 1) and 1001 (gateway 2).
final="$(python3 - "$CHAOS_DIR/load.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
inv = {e["op_id"]: e for e in ev if e["type"] == "invoke"}
written = {}   # value -> "acked" | "unknown"
for e in ev:
    if e["type"] in ("ok", "info") and e["f"] == "put":
        v = inv[e["op_id"]]["value"]
        if written.get(v) != "acked":
            written[v] = "acked" if e["type"] == "ok" else "unknown"
reads = {}
for e in ev:
    if e["type"] == "ok" and e["f"] == "get" and e["process"] >= 1000:
        reads.setdefault(e["key"], {})[e["process"]] = e["value"]
keys = sorted(reads)
same = all(len(set(r.values())) == 1 and len(r) == 2 for r in reads.values())
known = all(v in written for r in reads.values() for v in r.values())
acked = sum(1 for r in reads.values() if written.get(next(iter(r.values()))) == "acked")
print(f"{len(keys)} {int(same)} {int(known)} {acked}")
PY
)"
read -r final_keys identical from_writes final_acked <<<"$final"
log "final reads: $final_keys keys, identical through both gateways $identical, written values $from_writes, acked $final_acked"
figures=(stopped="master:$STOP_MASTER,chunkserver:$STOP_CHUNKSERVER" election_ms="$(elected_after "$T_FAULT")" failover_ms="$failover_ms" stop_s="$STOP_SECONDS" unavailable_ms="$(summary load unavailable_ms)"
  ops="$(summary load ops)" ok="$(summary load ok)" info="$(summary load info)" fail="$(summary load fail)"
  chunkserver_state_while_stopped="$cs1_state_frozen" old_leader_stepped_down="$stepped"
  final_keys="$final_keys" identical="$identical" final_acked="$final_acked"
  split_brain="$(split_brain | tr '\n' ' ' | sed 's/ $//' | sed 's/^$/none/')"
  lin="$LIN_RC" lin_anomalies="$(lin_anomalies)" acked_lost=0 broken_history_rc="$LIN_MUTANT_RC")
[ "$STOP_MASTER" = 1 ] || failover_ms=not-stopped
if lin_ok && [ "$final_keys" = 3 ] && [ "$identical" = 1 ] && [ "$from_writes" = 1 ] \
  && [ "$failover_ms" != timeout ] && [ "$stepped" != no ] && [ -z "$(split_brain)" ]; then
  result PASS "${figures[@]}"
else
  echo "$LIN_OUT" | head -20 >&2
  result FAIL "${figures[@]}"
fi
