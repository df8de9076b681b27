#!/usr/bin/env bash
# Reads of two Anode builds side by side, in one run, through the client library and through
# the S3 gateway:
#   scripts/bench-reads.sh OLD_ANODE OLD_TOOLS NEW_ANODE NEW_TOOLS [ROUNDS]
# Each side runs its own scripts/local-cluster.sh cluster (3 masters, 4 chunkservers, 1
# gateway, mutual TLS) and is measured with its own `anode-tools` (so with its own client
# library). Workloads: `bench client` and `bench s3` PUT then GET of 64 KiB, 1 MiB and 16 MiB
# objects, 16 in flight. Rounds alternate old/new to spread machine drift. Prints one JSON
# line per measurement and, at the end, the median new/old ratio per workload.
# ANODE_PORT_OFFSET (default 1230) keeps the clusters off the ports of other benches. A bench
# that fails leaves its rows out (its stderr is in the work directory, kept on failure).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OLD_ANODE OLD_TOOLS NEW_ANODE NEW_TOOLS [ROUNDS]" >&2; exit 2; }
old_bin="$1"; old_tools="$2"; new_bin="$3"; new_tools="$4"; rounds="${5:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-1230}"
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-reads.XXXXXX")"
out="$work/results.jsonl"
trap 'for d in "$work"/*-cluster; do [ -d "$d" ] && ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done' EXIT
# size concurrency objects
workloads=("65536 16 800" "1048576 16 160" "16777216 16 16")

record() { # build
  while read -r line; do echo "{\"build\":\"$1\",${line#\{}" | tee -a "$out"; done
}

run_side() { # old|new anode tools
  local label="$1" bin="$2" tools="$3" dir="$work/$1-cluster"
  ANODE_CLUSTER_TLS=on ANODE_BIN="$bin" ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  # shellcheck disable=SC1091
  source "$dir/credentials"
  for w in "${workloads[@]}"; do
    set -- $w
    ANODE_CERTS_DIR="$dir/certs/client-1" "$tools" bench client --masters "$masters" --size "$1" \
      --concurrency "$2" --objects "$3" --bucket "c-$1" 2>>"$work/$label.err" | record "$label" || true
    "$tools" bench s3 --endpoint "http://127.0.0.1:$((9000 + off))" --access-key "$ANODE_ACCESS_KEY" \
      --secret-key "$ANODE_SECRET_KEY" --size "$1" --concurrency "$2" --objects "$3" \
      --bucket "s-$1" 2>>"$work/$label.err" | record "$label" || true
  done
  ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir" >/dev/null
  rm -rf "$dir"
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run_side old "$old_bin" "$old_tools"; run_side new "$new_bin" "$new_tools"
  else run_side new "$new_bin" "$new_tools"; run_side old "$old_bin" "$old_tools"; fi
done

python3 - "$out" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
kind = lambda r: r.get("bench", r.get("kind", "?"))
keys = sorted({(kind(r), r["op"], r["size"], r["concurrency"]) for r in rows},
              key=lambda k: (k[0], k[2], k[1]))
print(f"{'bench':<7} {'op':<4} {'size':>9} {'conc':>4} {'old ops/s':>10} {'new ops/s':>10} {'new/old':>8} errors(old/new)")
for b, op, size, conc in keys:
    sel = lambda build: [r for r in rows if r["build"] == build and (kind(r), r["op"], r["size"], r["concurrency"]) == (b, op, size, conc)]
    o, n = sel("old"), sel("new")
    if not o or not n:
        continue
    om = statistics.median(r["ops_per_sec"] for r in o)
    nm = statistics.median(r["ops_per_sec"] for r in n)
    err = f"{sum(r.get('errors', 0) for r in o)}/{sum(r.get('errors', 0) for r in n)}"
    print(f"{b:<7} {op:<4} {size:>9} {conc:>4} {om:>10.1f} {nm:>10.1f} {nm / om:>8.2f} {err}")
PY
rm -rf "$work"
