#!/usr/bin/env bash
# What the S3 audit log costs, measured with one build in one run: a scripts/local-cluster.sh
# cluster whose gateway runs without `--audit-log` (ANODE_CLUSTER_AUDIT=off) against one that
# writes DIR/gateway-1.audit.log, on the 1 KiB PUT and GET cells of `anode-tools bench suite`.
#   scripts/bench-audit.sh ANODE ANODE_TOOLS [ROUNDS=2] [SECONDS=10]
# Rounds alternate off/on, on/off to spread machine drift. Prints each cell's ops/s per side
# and round, the audit file's size and line count, then `anode-tools bench compare` of the two
# sides (on/off ratio per cell, median over the rounds).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ANODE ANODE_TOOLS [ROUNDS] [SECONDS]" >&2; exit 2; }
anode="$1"; tools="$2"; rounds="${3:-2}"; secs="${4:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-4300}"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-audit.XXXXXX")"
trap 'for d in "$work"/*-cluster; do [ -d "$d" ] && ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT

run_side() { # off|on round
  local mode="$1" round="$2" dir="$work/$1-cluster"
  ANODE_CLUSTER_AUDIT="$mode" ANODE_BIN="$anode" ANODE_PORT_OFFSET="$off" \
    "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  # shellcheck disable=SC1091
  source "$dir/credentials"
  "$tools" bench suite --endpoint "http://127.0.0.1:$((9000 + off))" \
    --access-key "$ANODE_ACCESS_KEY" --secret-key "$ANODE_SECRET_KEY" --sizes 1KiB \
    --only put-1KiB-,get-1KiB- --seconds "$secs" --label "audit-$mode" \
    --out "$work/$mode.json" --append >"$work/$mode-$round.log" 2>&1
  grep -E 'c[0-9]+ ' "$work/$mode-$round.log" | sed "s/^/round $round audit $mode: /"
  if [ "$mode" = on ]; then
    local m; m=$(curl -s "127.0.0.1:$((9001 + off))/metrics")
    echo "round $round: audit $(cat "$dir"/gateway-1.audit.log* | wc -l) lines in $(ls "$dir"/gateway-1.audit.log* | wc -l) file(s)," \
      "$(du -cb "$dir"/gateway-1.audit.log* | tail -1 | cut -f1) bytes;" \
      "$(awk '/^anode_gateway_audit_dropped_total/{print "dropped " $2}' <<<"$m")," \
      "$(awk '/^anode_gateway_requests_total/{s+=$2} END{print "requests " s}' <<<"$m")"
  fi
  ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir" >/dev/null
  rm -rf "$dir"
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run_side off "$r"; run_side on "$r"; else run_side on "$r"; run_side off "$r"; fi
done

"$tools" bench compare "$work/on.json" "$work/off.json"
