#!/usr/bin/env bash
# Side-by-side client benchmark of two Anode builds on this machine, in one run:
#   scripts/bench-ab.sh OLD_ANODE OLD_LOAD NEW_ANODE NEW_LOAD [ROUNDS]
# OLD_ANODE/NEW_ANODE: `anode` binaries (each runs its own scripts/local-cluster.sh cluster:
# 3 masters, 4 chunkservers); OLD_LOAD/NEW_LOAD: the command that provides `bench client`
# for each (`/path/anode` before the tools split, `/path/anode-tools` after), so each build
# is measured with its own client library. Rounds alternate old/new to spread machine drift.
# Prints one JSON line per measurement and, at the end, the median new/old ratio per workload.
# OLD_TLS / NEW_TLS (on | insecure | none; default on) choose each side's gRPC security (see
# ANODE_CLUSTER_TLS in scripts/local-cluster.sh): `none` for builds from before mutual TLS,
# `insecure` against `on` with the same build measures what TLS costs.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OLD_ANODE OLD_LOAD NEW_ANODE NEW_LOAD [ROUNDS]" >&2; exit 2; }
old_bin="$1"; old_load="$2"; new_bin="$3"; new_load="$4"; rounds="${5:-2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-500}"
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-ab.XXXXXX")"
out="$work/results.jsonl"
# size concurrency objects
workloads=("4096 16 2000" "1048576 8 200" "16777216 4 32")

run_side() { # label anode load
  local label="$1" bin="$2" load="$3" dir="$work/$1-cluster" tls
  if [ "$label" = old ]; then tls="${OLD_TLS:-on}"; else tls="${NEW_TLS:-on}"; fi
  local -a env=()
  case "$tls" in
    on) env=(ANODE_CERTS_DIR="$dir/certs/client-1") ;;
    insecure) env=(ANODE_INSECURE_NO_TLS=1) ;;
  esac
  # Old builds have no --audit-log: compare builds without it.
  ANODE_CLUSTER_AUDIT="${ANODE_CLUSTER_AUDIT:-off}" ANODE_CLUSTER_TLS="$tls" ANODE_BIN="$bin" ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  for w in "${workloads[@]}"; do
    set -- $w
    env "${env[@]}" "$load" bench client --masters "$masters" --size "$1" --concurrency "$2" --objects "$3" \
      --bucket "ab-$1" 2>/dev/null | while read -r line; do
      echo "{\"build\":\"$label\",${line#\{}" | tee -a "$out"
    done
  done
  ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir"
  rm -rf "$dir"
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run_side old "$old_bin" "$old_load"; run_side new "$new_bin" "$new_load"
  else run_side new "$new_bin" "$new_load"; run_side old "$old_bin" "$old_load"; fi
done

python3 - "$out" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = sorted({(r["op"], r["size"], r["concurrency"]) for r in rows}, key=lambda k: (k[1], k[0]))
print(f"{'op':<4} {'size':>9} {'conc':>4} {'old ops/s':>10} {'new ops/s':>10} {'new/old':>8} errors(old/new)")
for op, size, conc in keys:
    sel = lambda b: [r for r in rows if r["build"] == b and (r["op"], r["size"], r["concurrency"]) == (op, size, conc)]
    o, n = sel("old"), sel("new")
    if not o or not n:
        continue
    om = statistics.median(r["ops_per_sec"] for r in o)
    nm = statistics.median(r["ops_per_sec"] for r in n)
    err = f"{sum(r['errors'] for r in o)}/{sum(r['errors'] for r in n)}"
    print(f"{op:<4} {size:>9} {conc:>4} {om:>10.1f} {nm:>10.1f} {nm / om:>8.2f} {err}")
PY
rm -rf "$work"
