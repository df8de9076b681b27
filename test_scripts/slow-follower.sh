#!/usr/bin/env bash
# Chaos: one slow follower. Every master->master link goes through anode-toxiproxy. The same
# put/get/delete load runs in alternating phases, normal and with a 500 ms latency toxic on both
# raft links into one follower (ROUNDS pairs; alternating cancels the slow drift of a shared
# machine's load). Client throughput (ok ops/s from chaos-load) with the slow follower must stay
# >= 80 % of normal; the leader must not change; every phase's history (each on its own key
# set, since a history starts from absent keys) must be linearizable.
# Env: PHASE_SECONDS (8), ROUNDS (3), LATENCY_MS (500), MIN_RATIO (0.80).
source "$(dirname "$0")/lib.sh"
chaos_init slow-follower
PHASE_SECONDS="${PHASE_SECONDS:-8}"
ROUNDS="${ROUNDS:-3}"
LATENCY_MS="${LATENCY_MS:-500}"
MIN_RATIO="${MIN_RATIO:-0.80}"

cluster_ports 3 4 2
toxi_start
proxied_masters
cluster_start 3 4 2
leader="$(leader_id)"
slow=""
for i in $(seq 1 "$NM"); do [ "$i" = "$leader" ] || { slow="$i"; break; }; done
log "leader master-$leader; slow follower master-$slow (${LATENCY_MS} ms on its inbound raft links)"
toxic() { # on|off
  local j
  for j in $(seq 1 "$NM"); do
    [ "$j" = "$slow" ] && continue
    if [ "$1" = on ]; then
      toxi POST "/proxies/m${j}_to_$slow/toxics" \
        "{\"name\":\"slow\",\"type\":\"latency\",\"stream\":\"upstream\",\"toxicity\":1.0,\"attributes\":{\"latency\":$LATENCY_MS,\"jitter\":0}}"
      curl -fs "http://127.0.0.1:$TOXI_PORT/proxies/m${j}_to_$slow/toxics" | jq -e 'map(.name) | index("slow")' >/dev/null
    else
      toxi DELETE "/proxies/m${j}_to_$slow/toxics/slow"
    fi
  done
}
load_args=(--processes 5 --keys 10 --seconds "$PHASE_SECONDS" --timeout-ms 3000 --mix 4,5,1)
lin_all=0; mut_all=1; normal_ok=0; slow_ok=0; normal_s=0; slow_s=0; ops=0; lag=""
p99n=""; p99s=""
for r in $(seq 1 "$ROUNDS"); do
  for phase in normal slow; do
    name="$phase$r"
    [ "$phase" = slow ] && toxic on
    chaos_load_bg "$name" "${load_args[@]}" --key-prefix "$name-k"
    sleep "$(( PHASE_SECONDS / 2 ))"
    # mid-phase: how far the slow member's applied index trails the leader's (metrics, 1 s)
    behind=$(( $(metric "${M_ADMIN[$leader]}" anode_master_raft_applied_index) - $(metric "${M_ADMIN[$slow]}" anode_master_raft_applied_index) ))
    wait_load "$name" || { result FAIL "reason=$name-load-failed"; exit 1; }
    if [ "$phase" = slow ]; then lag="$lag$behind "; toxic off; else lag_n="${lag_n:-}$behind "; fi
    lincheck "$name"
    [ "$LIN_RC" = 0 ] || lin_all="$LIN_RC"
    [ "$LIN_MUTANT_RC" = 1 ] || mut_all="$LIN_MUTANT_RC"
    ok="$(python3 -c "print(round($(summary "$name" ops_per_sec) * $(summary "$name" seconds)))")"
    secs="$(summary "$name" seconds)"; ops=$(( ops + $(summary "$name" ops) ))
    log "$name: $(summary "$name" ops_per_sec) ops/s, p99 $(summary "$name" p99_ms) ms"
    if [ "$phase" = slow ]; then slow_ok=$(( slow_ok + ok )); slow_s="$(python3 -c "print($slow_s + $secs)")"; p99s="$p99s$(summary "$name" p99_ms) "
    else normal_ok=$(( normal_ok + ok )); normal_s="$(python3 -c "print($normal_s + $secs)")"; p99n="$p99n$(summary "$name" p99_ms) "; fi
  done
done
leader_after="$(leader_id)"
n="$(python3 -c "print(round($normal_ok / $normal_s, 1))")"
s="$(python3 -c "print(round($slow_ok / $slow_s, 1))")"
ratio="$(python3 -c "print(round($s / $n, 3) if $n > 0 else 0)")"
LIN_RC="$lin_all"
figures=(normal_ops_per_sec="$n" slow_ops_per_sec="$s" ratio="$ratio" min_ratio="$MIN_RATIO"
  normal_p99_ms="$(echo $p99n | tr ' ' '/')" slow_p99_ms="$(echo $p99s | tr ' ' '/')"
  leader="$leader" leader_after="$leader_after" slow_member="$slow" slow_member_behind="$(echo $lag | tr ' ' '/')" normal_behind="$(echo $lag_n | tr ' ' '/')"
  ops="$ops" lin="$lin_all" lin_anomalies="$(lin_anomalies)" acked_lost=0 broken_history_rc="$mut_all")
if [ "$lin_all" = 0 ] && [ "$mut_all" = 1 ] && [ "$leader_after" = "$leader" ] \
  && python3 -c "import sys; sys.exit(0 if $ratio >= $MIN_RATIO else 1)"; then
  result PASS "${figures[@]}"
else
  result FAIL "${figures[@]}"
fi
