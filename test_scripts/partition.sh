#!/usr/bin/env bash
# Chaos: network partition of the raft group through anode-toxiproxy. Every master->master
# link goes through its own proxy; under a put/get/delete load the leader is cut off from both
# followers (its four links disabled) for HOLD_SECONDS, then healed.
# Checks: the majority elects a new leader and keeps serving (ok operations during the cut);
# the isolated minority commits nothing (its commit index stays put); at most one leader per
# term (master logs + sampled metrics); the history is linearizable.
# Env: LOAD_SECONDS (40), HOLD_SECONDS (12).
source "$(dirname "$0")/lib.sh"
chaos_init partition
LOAD_SECONDS="${LOAD_SECONDS:-40}"
HOLD_SECONDS="${HOLD_SECONDS:-12}"

cluster_ports 3 4 2
toxi_start
proxied_masters
cluster_start 3 4 2
sample_raft_bg
chaos_load_bg load --processes 5 --keys 10 --seconds "$LOAD_SECONDS" --timeout-ms 2000 --mix 4,5,1
sleep 8
old="$(leader_id)"
[ "$old" != 0 ] || { result FAIL "reason=no-leader-before-partition"; exit 1; }
majority=""
for i in $(seq 1 "$NM"); do [ "$i" = "$old" ] || majority="${majority:+$majority,}127.0.0.1:${M_PORT[$i]}"; done
old_term="$(ctl_status | jq -r .term)"
log "isolate leader master-$old (term $old_term); majority $majority"
t_cut="$(now_ms)"; T_FAULT="$t_cut"
set_isolated "$old" yes
majority_leader() { local id; id="$(leader_id "$majority")"; [ "$id" != 0 ] && [ "$id" != "$old" ]; }
failover_ms=timeout
if wait_until 30 "a majority leader" majority_leader; then failover_ms=$(( $(now_ms) - t_cut )); fi
new="$(leader_id "$majority")"
new_term="$(ctl_status "$majority" | jq -r .term)"
log "majority leader master-$new term $new_term after $failover_ms ms"
sleep 3
iso_commit_a="$(metric "${M_ADMIN[$old]}" anode_master_raft_commit_index)"
maj_commit_a="$(metric "${M_ADMIN[$new]}" anode_master_raft_commit_index)"
iso_leader_a="$(metric "${M_ADMIN[$old]}" anode_master_is_leader)"
elapsed=$(( ($(now_ms) - t_cut) / 1000 ))
sleep $(( HOLD_SECONDS > elapsed ? HOLD_SECONDS - elapsed : 1 ))
sleep 1.2  # one metrics refresh
iso_commit_b="$(metric "${M_ADMIN[$old]}" anode_master_raft_commit_index)"
maj_commit_b="$(metric "${M_ADMIN[$new]}" anode_master_raft_commit_index)"
iso_leader_b="$(metric "${M_ADMIN[$old]}" anode_master_is_leader)"
log "isolated master-$old commit $iso_commit_a -> $iso_commit_b (is_leader $iso_leader_a -> $iso_leader_b); majority commit $maj_commit_a -> $maj_commit_b"
# ok operations completed while the cut lasted (the majority served)
t_heal="$(now_ms)"
log "heal"
set_isolated "$old" no
all_caught_up() {
  ctl_status | jq -e --argjson o "$old" '.leader_id != 0 and ([.members[] | select(.id == $o and .reachable and .applied_index > 0)] | length) == 1 and (.members | map(.applied_index) | max - min) < 50' >/dev/null
}
healed=yes
wait_until 30 "master-$old to rejoin" all_caught_up || healed=no
wait_load load
stop_sampler
lincheck load
served_during_cut="$(ok_between load "$t_cut" "$t_heal")"
split="$(split_brain)"
elections="$(leader_terms)"
unavail="$(summary load unavailable_ms)"
figures=(election_ms="$(elected_after "$T_FAULT")" failover_ms="$failover_ms" unavailable_ms="$unavail" ops="$(summary load ops)" ok="$(summary load ok)"
  info="$(summary load info)" ok_during_cut="$served_during_cut" old_term="$old_term" new_term="$new_term" elections="$elections"
  minority_commit="$iso_commit_a->$iso_commit_b" majority_commit="$maj_commit_a->$maj_commit_b"
  split_brain="${split:-none}" healed="$healed" lin="$LIN_RC" lin_anomalies="$(lin_anomalies)"
  acked_lost=0 broken_history_rc="$LIN_MUTANT_RC")
if lin_ok && [ -z "$split" ] && [ "$failover_ms" != timeout ] && [ "$healed" = yes ] \
  && [ -n "$iso_commit_b" ] && [ "$iso_commit_a" = "$iso_commit_b" ] && [ "$iso_leader_b" = 0 ] \
  && [ "$maj_commit_b" -gt "$maj_commit_a" ] && [ "$served_during_cut" -gt 0 ]; then
  result PASS "${figures[@]}"
else
  echo "$LIN_OUT" | head -20 >&2
  result FAIL "${figures[@]}"
fi
