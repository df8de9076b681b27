#!/usr/bin/env bash
# Reads of two Anode builds side by side, in one run:
#   scripts/bench-reads.sh [--small] OLD_ANODE OLD_TOOLS NEW_ANODE NEW_TOOLS [ROUNDS] [SECONDS]
# Each side runs its own scripts/local-cluster.sh cluster (3 masters, 4 chunkservers, 1
# gateway, mutual TLS) and is measured with its own `anode-tools` (so with its own client
# library). Rounds alternate old/new to spread machine drift. Prints one JSON line per
# measurement and, at the end, per workload the median new/old throughput ratio, the median
# p99 of each side and the errors.
# Workloads:
# - default (the data path): `bench client` and `bench s3` PUT then GET of 64 KiB, 1 MiB and
#   16 MiB objects, 16 in flight; ROUNDS default 3; SECONDS unused.
# - `--small` (the metadata read path: gateway auth + one master read per 1 KiB GET, objects
#   inline in their manifests): `bench s3` PUT+GET of 1 KiB objects at 16 and 64 in flight,
#   each phase SECONDS long (default 10), and `bench meta` (8 writers); ROUNDS default 2.
# ANODE_PORT_OFFSET (default 1230) keeps the clusters off the ports of other benches. A bench
# that fails leaves its rows out (its stderr is in the work directory, kept on failure).
set -euo pipefail
small=0
[ "${1:-}" = --small ] && { small=1; shift; }
[ $# -ge 4 ] || { echo "usage: $0 [--small] OLD_ANODE OLD_TOOLS NEW_ANODE NEW_TOOLS [ROUNDS] [SECONDS]" >&2; exit 2; }
old_bin="$1"; old_tools="$2"; new_bin="$3"; new_tools="$4"
rounds="${5:-$((small ? 2 : 3))}"; secs="${6:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-1230}"
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
s3="http://127.0.0.1:$((9000 + off))"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-reads.XXXXXX")"
out="$work/results.jsonl"
trap 'for d in "$work"/*-cluster; do [ -d "$d" ] && ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done' EXIT

record() { # build
  while read -r line; do echo "{\"build\":\"$1\",${line#\{}" | tee -a "$out"; done
}

data_path() { # label tools dir
  local label="$1" tools="$2" dir="$3" w
  # size concurrency objects
  for w in "65536 16 800" "1048576 16 160" "16777216 16 16"; do
    set -- $w
    ANODE_CERTS_DIR="$dir/certs/client-1" "$tools" bench client --masters "$masters" --size "$1" \
      --concurrency "$2" --objects "$3" --bucket "c-$1" 2>>"$work/$label.err" | record "$label" || true
    "$tools" bench s3 --endpoint "$s3" --access-key "$ANODE_ACCESS_KEY" \
      --secret-key "$ANODE_SECRET_KEY" --size "$1" --concurrency "$2" --objects "$3" \
      --bucket "s-$1" 2>>"$work/$label.err" | record "$label" || true
  done
}

small_reads() { # label tools dir
  local label="$1" tools="$2" dir="$3" conc
  for conc in 16 64; do
    "$tools" bench s3 --endpoint "$s3" --access-key "$ANODE_ACCESS_KEY" \
      --secret-key "$ANODE_SECRET_KEY" --size 1024 --concurrency "$conc" --duration "$secs" \
      --bucket "r-$conc" 2>>"$work/$label.err" | record "$label" || true
  done
  ANODE_CERTS_DIR="$dir/certs/client-1" "$tools" bench meta --masters "$masters" --writers 8 \
    --seconds "$secs" 2>>"$work/$label.err" | record "$label" || true
}

run_side() { # old|new anode tools
  local label="$1" bin="$2" tools="$3" dir="$work/$1-cluster"
  # Old builds have no --audit-log: compare builds without it.
  ANODE_CLUSTER_AUDIT="${ANODE_CLUSTER_AUDIT:-off}" ANODE_CLUSTER_TLS=on ANODE_BIN="$bin" ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  # shellcheck disable=SC1091
  source "$dir/credentials"
  if [ "$small" = 1 ]; then small_reads "$label" "$tools" "$dir"; else data_path "$label" "$tools" "$dir"; fi
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
key = lambda r: (r.get("bench", r.get("kind", "?")), r.get("op", ""), r.get("size", 0),
                 r.get("concurrency", r.get("writers", 0)))
rate = lambda r: r.get("ops_per_sec", r.get("per_sec", 0.0))
p99 = lambda v: statistics.median(r["p99_ms"] for r in v) if all("p99_ms" in r for r in v) else float("nan")
print(f"{'bench':<7} {'op':<4} {'size':>9} {'conc':>4} {'old ops/s':>10} {'new ops/s':>10} {'new/old':>8} {'old p99':>8} {'new p99':>8} errors(old/new)")
for k in sorted({key(r) for r in rows}, key=lambda k: (k[0], k[2], k[1], k[3])):
    o = [r for r in rows if r["build"] == "old" and key(r) == k]
    n = [r for r in rows if r["build"] == "new" and key(r) == k]
    if not o or not n:
        continue
    om = statistics.median(rate(r) for r in o)
    nm = statistics.median(rate(r) for r in n)
    err = f"{sum(r.get('errors', 0) for r in o)}/{sum(r.get('errors', 0) for r in n)}"
    print(f"{k[0]:<7} {k[1]:<4} {k[2]:>9} {k[3]:>4} {om:>10.1f} {nm:>10.1f} {nm / om:>8.2f} {p99(o):>8.2f} {p99(n):>8.2f} {err}")
PY
rm -rf "$work"
