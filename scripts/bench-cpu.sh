#!/usr/bin/env bash
# CPU cost per byte of GETs, by process role: starts scripts/local-cluster.sh with ANODE
# (offset ANODE_PORT_OFFSET, default 2500), runs one GET cell of the suite, and over the cell's
# GET-only part (from its first GET, after the suite has written its objects, to its end, when
# every response is complete) reads each process's CPU time and page faults (/proc) and the
# gateway's sent bytes (its /metrics). Prints CPU seconds per GB sent for the gateway, the chunkservers and the masters, the gateway's minor faults per MB and
# RSS. Counts of work per byte drift less with machine load than throughput does.
#   scripts/bench-cpu.sh ANODE ANODE_TOOLS [SIZE=16MiB] [CONCURRENCY=64] [SECONDS=12]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ANODE ANODE_TOOLS [SIZE] [CONCURRENCY] [SECONDS]" >&2; exit 2; }
anode=$1; tools=$2; size=${3:-16MiB}; conc=${4:-64}; secs=${5:-12}
root="$(cd "$(dirname "$0")/.." && pwd)"
off=${ANODE_PORT_OFFSET:-2500}; export ANODE_PORT_OFFSET=$off ANODE_BIN=$anode
dir=$(mktemp -d /tmp/anode-bench-cpu.XXXXXX)
trap '"$root/scripts/local-cluster.sh" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$root/scripts/local-cluster.sh" start "$dir" >/dev/null
source "$dir/credentials"
s3=$((9000 + off)); admin=$((9001 + off))
ticks() { local t=0 f; for f in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$(cat "$f")/stat"))); done; echo "$t"; }
faults() { awk '{print $10}' "/proc/$(cat "$dir/gateway-1.pid")/stat"; }
metric() { curl -s "127.0.0.1:$admin/metrics" | awk -v k="$1" '$1==k{print $2}'; }
gets() { curl -s "127.0.0.1:$admin/metrics" | awk '/^anode_gateway_requests_total\{op="GetObject"/{s+=$2} END{print s+0}'; }
snap() { echo "$(ticks "$dir"/gateway-1.pid) $(ticks "$dir"/chunkserver-*.pid) $(ticks "$dir"/master-*.pid) $(faults) $(metric anode_gateway_sent_bytes_total) $(date +%s.%N)"; }
"$tools" bench suite --endpoint "http://127.0.0.1:$s3" --access-key "$ANODE_ACCESS_KEY" \
  --secret-key "$ANODE_SECRET_KEY" --sizes "$size" --concurrency "$conc" --seconds "$secs" \
  --only "get-$size-" --out "$dir/suite.json" >"$dir/suite.log" 2>&1 &
suite=$!
n0=$(gets)
while [ "$(gets)" = "$n0" ]; do kill -0 $suite 2>/dev/null || break; sleep 0.1; done
read -r g0 c0 m0 f0 b0 t0 <<<"$(snap)"
wait $suite
read -r g1 c1 m1 f1 b1 t1 <<<"$(snap)"
hz=$(getconf CLK_TCK)
awk -v g=$((g1 - g0)) -v c=$((c1 - c0)) -v m=$((m1 - m0)) -v f=$((f1 - f0)) -v b="$b0" -v b1="$b1" \
  -v t="$t0" -v t1="$t1" -v hz="$hz" -v rss="$(awk '/VmRSS/{print $2}' "/proc/$(cat "$dir/gateway-1.pid")/status")" \
  -v cell="$(grep -E 'c[0-9]+ ' "$dir/suite.log" | head -1)" -v label="$size c$conc" 'BEGIN {
  gb = (b1 - b) / 1e9; if (gb <= 0) { print "no bytes sent in the window"; exit 1 }
  printf "%s: %.0f MB/s over the GETs; CPU s per GB sent: gateway %.2f, chunkservers %.2f, masters %.2f; gateway faults per MB %.1f, RSS %d MB\n",
    label, gb * 1000 / (t1 - t), g / hz / gb, c / hz / gb, m / hz / gb, f / (gb * 1000), rss / 1024
  print "cell: " cell }'
