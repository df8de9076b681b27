#!/usr/bin/env bash
# Metadata at scale (docs/architecture.md, "Master storage budget" and "Listing"): a 3-master
# group (no chunkservers: inline objects need none) on 127.0.4.1-3, filled with small inline
# objects by `anode-tools bench fill`, then per step: each master directory's size and its WAL
# share, and LIST page latency (`anode-tools bench list`, with and without a delimiter).
#
#   scripts/bench-scale.sh DIR STEP1,STEP2,...   e.g. /work/scale/run 10000,1000000
#
# ANODE_BIN / ANODE_TOOLS_BIN pick the binaries (default: the release build of this tree);
# SIZE (1024), CONCURRENCY (64), BATCH (1: one PUT per object through the client's write
# path; up to 1000: that many inline objects per `PutObjects` bulk command), PAGES (500), LIST_CONCURRENCY ("1 16") tune the load; FILL=0 skips the fill (measure
# a DIR filled before: restart it and list, e.g. in alternating rounds with another build;
# STEPS then names the object count). JOIN=1 then adds a fourth
# member (127.0.4.4) with `anode ctl members add`, which gets the state as a raft snapshot,
# and reports how long it took and the peak RSS of the leader and the new member (JOIN_S,
# default 300, bounds the wait). Prints JSON lines; leaves the cluster stopped and DIR in
# place (delete it when done).
set -euo pipefail
dir="${1:?usage: $0 DIR STEPS}"; steps="${2:?usage: $0 DIR STEPS}"
root="$(cd "$(dirname "$0")/.." && pwd)"
ANODE="${ANODE_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/anode}"
TOOLS="${ANODE_TOOLS_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/anode-tools}"
SIZE="${SIZE:-1024}"; CONCURRENCY="${CONCURRENCY:-64}"; PAGES="${PAGES:-500}"
# HOST_OFFSET shifts the addresses (127.0.4.(1+HOST_OFFSET)...) to run two builds side by side;
# HOST_PREFIX (127.0.4) moves them to another /24.
host() { echo "${HOST_PREFIX:-127.0.4}.$(( $1 + ${HOST_OFFSET:-0} ))"; }
# MASTERS=1 runs a one-member group (a third of the disk; each member holds the whole state).
n_masters="${MASTERS:-3}"
masters=$(for i in $(seq 1 "$n_masters"); do printf '%s:7001,' "$(host "$i")"; done); masters=${masters%,}
peers=$(for i in $(seq 1 "$n_masters"); do printf '%s=%s:7001,' "$i" "$(host "$i")"; done); peers=${peers%,}
mkdir -p "$dir"
pids=()
stop() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
for i in $(seq 1 "$n_masters"); do
  "$ANODE" master --id "$i" --data "$dir/master-$i" --listen "$(host "$i"):7001" \
    --admin-listen "$(host "$i"):7081" --peers "$peers" --insecure-no-tls \
    >>"$dir/master-$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 1 300); do
  "$ANODE" ctl --masters "$masters" --insecure-no-tls status --json 2>/dev/null \
    | jq -e '.leader_id > 0' >/dev/null 2>&1 && break
  sleep 0.2
done
sizes() { # step
  for i in $(seq 1 "$n_masters"); do
    d="$dir/master-$i"
    total=$(du -sb "$d" | cut -f1)
    wal=$(find "$d" -name '[0-9]*.log' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    sst=$(find "$d" -name '*.sst' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    echo "{\"bench\":\"disk\",\"objects\":$1,\"master\":$i,\"bytes\":$total,\"wal_bytes\":$wal,\"sst_bytes\":$sst}"
  done
}
done_n=0
for n in ${steps//,/ }; do
  if [ "${FILL:-1}" = 1 ]; then
    "$TOOLS" bench fill --masters "$masters" --insecure-no-tls --objects $((n - done_n)) \
      --start "$done_n" --size "$SIZE" --concurrency "$CONCURRENCY" --batch "${BATCH:-1}"
    # Let background flushes and compactions settle before measuring the disk.
    sleep 20
  fi
  done_n=$n
  sizes "$n"
  for c in ${LIST_CONCURRENCY:-1 16}; do
    for d in "" --delimiter; do
      "$TOOLS" bench list --masters "$masters" --insecure-no-tls --objects "$n" \
        --pages "$PAGES" --concurrency "$c" $d
    done
  done
done

[ "${JOIN:-0}" = 1 ] || exit 0
ctl() { "$ANODE" ctl --masters "$masters" --insecure-no-tls "$@"; }
leader=$(ctl status --json | jq -r .leader_id)
lpid=${pids[$((leader - 1))]}
"$ANODE" master --id 4 --data "$dir/master-4" --listen "$(host 4):7001" \
  --admin-listen "$(host 4):7081" --peers "$peers,4=$(host 4):7001" --join --insecure-no-tls \
  >>"$dir/master-4.log" 2>&1 &
npid=$!; pids+=($npid)
t0=$(date +%s.%N)
ctl members add 4 "$(host 4):7001" >"$dir/members-add.out" 2>&1 &
addpid=$!
peak_l=0; peak_n=0; ok=false
for _ in $(seq 1 $(( ${JOIN_S:-300} * 4 ))); do
  r=$(ps -o rss= -p "$lpid" | tr -d ' '); [ "${r:-0}" -gt "$peak_l" ] && peak_l=$r
  r=$(ps -o rss= -p "$npid" | tr -d ' '); [ "${r:-0}" -gt "$peak_n" ] && peak_n=$r
  kill -0 "$npid" 2>/dev/null || break
  if ! kill -0 "$addpid" 2>/dev/null; then
    wait "$addpid" && ok=true
    break
  fi
  sleep 0.25
done
t1=$(date +%s.%N)
echo "{\"bench\":\"join\",\"objects\":$done_n,\"ok\":$ok,\"seconds\":$(echo "$t1 - $t0" | bc),\"leader_peak_rss_kb\":$peak_l,\"member_peak_rss_kb\":$peak_n,\"member_bytes\":$(du -sb "$dir/master-4" | cut -f1)}"
grep -h "snapshot" "$dir/master-$leader.log" "$dir/master-4.log" | tail -5 >&2 || true
