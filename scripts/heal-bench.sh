#!/usr/bin/env bash
# Repair benchmark (issue 5 figures): 1 master + 5 chunkservers on loopback, about 1 GiB stored
# at R=3, then `kill -9` of one chunkserver. Prints JSON lines: the time from the kill to full
# health (every chunk back at 3 live copies, as `anode ctl status` reports), the repair rate,
# and client throughput (`anode-tools bench client`) without and during the repair.
#   scripts/heal-bench.sh [DIR]      (ANODE_BIN and ANODE_TOOLS_BIN override the release builds)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
if [ -z "${ANODE_BIN:-}" ] || [ -z "${ANODE_TOOLS_BIN:-}" ]; then
  source "$root/scripts/setup.sh"
  (cd "$root" && cargo build --release -p anode -p anode-tools >&2)
  ANODE_BIN="${ANODE_BIN:-$CARGO_TARGET_DIR/release/anode}"
  ANODE_TOOLS_BIN="${ANODE_TOOLS_BIN:-$CARGO_TARGET_DIR/release/anode-tools}"
fi
off="${ANODE_PORT_OFFSET:-300}"
m="127.0.0.1:$((7001 + off))"
c="$dir/certs"
# Mutual TLS: a CA and one certificate per process (anode ctl certs).
[ -f "$c/ca/ca.key" ] || "$ANODE_BIN" ctl certs init "$c/ca" >/dev/null
certs() { [ -f "$c/$1/node.crt" ] || "$ANODE_BIN" ctl certs issue --ca "$c/ca" --role "${1%-*}" --id "${1##*-}" --out "$c/$1" >/dev/null; echo "--certs-dir $c/$1"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$ANODE_BIN" master --id 1 --data "$dir/master-1" --listen "$m" --admin-listen "127.0.0.1:$((7081 + off))" \
  --peers "1=$m" $(certs master-1) --lease-ms 1000 --dead-after-ms 3000 --heal-interval-ms 500 >"$dir/master-1.log" 2>&1 &
pids+=($!)
declare -A cs
for i in 1 2 3 4 5; do
  "$ANODE_BIN" chunkserver --data "$dir/chunkserver-$i" --listen "127.0.0.1:$((7100 + off + i))" \
    --admin-listen "127.0.0.1:$((7180 + off + i))" --masters "$m" --rack "rack-$i" $(certs "chunkserver-$i") >"$dir/chunkserver-$i.log" 2>&1 &
  cs[$i]=$!; pids+=($!)
done
status() { "$ANODE_BIN" ctl --masters "$m" $(certs admin-1) status --json 2>/dev/null; }
for _ in $(seq 1 300); do
  n=$(status | python3 -c 'import json,sys; print(sum(c["state"]=="alive" for c in json.load(sys.stdin)["chunkservers"]))' 2>/dev/null || echo 0)
  [ "$n" = 5 ] && break; sleep 0.2
done
bench() { "$ANODE_TOOLS_BIN" bench client --masters "$m" $(certs client-1) "$@"; }
echo "# filling: 22 x 16 MiB objects (352 MiB logical, ~1.03 GiB stored at R=3)" >&2
bench --size $((16 << 20)) --objects 22 --concurrency 4 --bucket fill >"$dir/fill.json"
cat "$dir/fill.json"
echo "# baseline client load: 1 MiB objects, concurrency 8" >&2
bench --size $((1 << 20)) --objects 96 --concurrency 8 --bucket base >"$dir/base.json"
cat "$dir/base.json"
lost=$(du -sb "$dir/chunkserver-5/blobs" | cut -f1)
kill -9 "${cs[5]}"
t0=$(date +%s.%N)
echo "# killed chunkserver-5 ($lost bytes of blobs); client load once it is declared dead" >&2
for _ in $(seq 1 200); do
  d=$(status | python3 -c 'import json,sys; print(sum(c["state"]=="dead" for c in json.load(sys.stdin)["chunkservers"]))' 2>/dev/null || echo 0)
  [ "$d" = 1 ] && break; sleep 0.1
done
tdead=$(date +%s.%N)
bench --size $((1 << 20)) --objects 96 --concurrency 8 --bucket during >"$dir/during.json" &
bpid=$!
peak=0
for _ in $(seq 1 1200); do
  st="$(status || true)"
  read -r ur miss rate dead <<<"$(python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["under_replicated_chunks"], s["missing_copies"], s["repair_bytes_per_sec"], sum(c["state"]=="dead" for c in s["chunkservers"]))' <<<"$st" 2>/dev/null || echo "x x 0 0")"
  [ "$rate" -gt "$peak" ] 2>/dev/null && peak=$rate
  if [ "$dead" = 1 ] && [ "$ur" = 0 ] && [ "$miss" = 0 ]; then break; fi
  sleep 0.25
done
t1=$(date +%s.%N)
wait "$bpid"
cat "$dir/during.json"
python3 - "$t0" "$t1" "$peak" "$dir" "$tdead" "$lost" <<'EOF'
import json, sys
t0, t1, peak, d = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tdead, lost = float(sys.argv[5]), int(sys.argv[6])
def load(name):
    return {j["op"]: j for j in map(json.loads, open(f"{d}/{name}.json").read().split("\n")[:-1])}
base, during = load("base"), load("during")
print(json.dumps({
    "time_to_full_health_s": round(t1 - t0, 2),
    "dead_detection_s": round(tdead - t0, 2),
    "lost_bytes": lost,
    "repair_mb_per_s": round(lost / max(t1 - tdead, 0.001) / 1e6, 1),
    "peak_repair_mb_per_s": round(peak / 1e6, 1),
    "put_mb_per_s": [base["put"]["mb_per_sec"], during["put"]["mb_per_sec"]],
    "get_mb_per_s": [base["get"]["mb_per_sec"], during["get"]["mb_per_sec"]],
    "during_over_baseline": {op: round(during[op]["mb_per_sec"] / base[op]["mb_per_sec"], 2) for op in ("put", "get")},
}))
EOF
