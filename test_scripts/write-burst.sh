#!/usr/bin/env bash
# Chaos: a burst of BURST_PUTS (1000) write-once PUTs from BURST_CLIENTS (20) parallel clients
# spread over two gateways; then every object must be listed and byte-identical (SHA-256)
# through every gateway, and every PUT acknowledged.
source "$(dirname "$0")/lib.sh"
chaos_init write-burst
BURST_PUTS="${BURST_PUTS:-1000}"
BURST_CLIENTS="${BURST_CLIENTS:-20}"

cluster_start 3 4 2
t0="$(now_ms)"
chaos_load burst --unique "$BURST_PUTS" --processes "$BURST_CLIENTS" --seconds 600 \
  --key-prefix b --value-bytes 1024 --timeout-ms 10000 --writes "$CHAOS_DIR/burst.writes" \
  || { result FAIL "reason=chaos-load-exit-$? $(tail -2 "$CHAOS_DIR/burst.err")"; exit 1; }
burst_ms=$(( $(now_ms) - t0 ))
verify_writes burst b
acked="$(summary burst puts_acked)"
lost="$(( $(vsum burst acked_missing) + $(vsum burst acked_corrupt) + $(vsum burst acked_unlisted) ))"
listed="$(jq -r '.listed | map(tostring) | join("/")' "$CHAOS_DIR/burst.verify.json")"
figures=(puts="$BURST_PUTS" clients="$BURST_CLIENTS" acked="$acked" burst_ms="$burst_ms"
  ops="$(summary burst ops)" ops_per_sec="$(summary burst ops_per_sec)" p50_ms="$(summary burst p50_ms)"
  p99_ms="$(summary burst p99_ms)" info="$(summary burst info)" fail="$(summary burst fail)"
  listed="$listed" acked_lost="$lost" lin_anomalies=n/a)
all_listed="$(jq --argjson n "$BURST_PUTS" '(.listed | length) as $m | $m > 0 and ([.listed[] | select(. == $n)] | length) == $m' "$CHAOS_DIR/burst.verify.json")"
if [ "$acked" = "$BURST_PUTS" ] && [ "$VERIFY_RC" = 0 ] && [ "$all_listed" = true ] && [ "$lost" = 0 ]; then
  result PASS "${figures[@]}"
else
  result FAIL "${figures[@]}"
fi
