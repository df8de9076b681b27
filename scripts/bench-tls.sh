#!/usr/bin/env bash
# What TLS costs, measured with one build in one run: a scripts/local-cluster.sh cluster
# (3 masters, 4 chunkservers, 1 gateway) with every gRPC link plain (`--insecure-no-tls`) and
# S3 over HTTP, against the same cluster with mutual TLS on every gRPC link and S3 over HTTPS.
#   scripts/bench-tls.sh ANODE ANODE_TOOLS [ROUNDS]
# Rounds alternate plain/tls to spread machine drift. Workloads: `bench meta` (8 writers,
# 10 s), `bench client` and `bench s3` PUT+GET of 1 KiB and 16 MiB objects. Prints one JSON
# line per measurement and, at the end, the median tls/plain ratio per workload.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ANODE ANODE_TOOLS [ROUNDS]" >&2; exit 2; }
anode="$1"; tools="$2"; rounds="${3:-2}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-600}"
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-tls.XXXXXX")"
out="$work/results.jsonl"
trap 'for d in "$work"/*-cluster; do [ -d "$d" ] && ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done' EXIT

# A server certificate for S3 over HTTPS on 127.0.0.1, from a CA of its own (the client
# trusts that CA only).
"$anode" ctl certs init "$work/s3-ca" >/dev/null
"$anode" ctl certs issue --ca "$work/s3-ca" --role gateway --id s3 --san 127.0.0.1 --out "$work/s3" >/dev/null

record() { # mode
  while read -r line; do echo "{\"mode\":\"$1\",${line#\{}" | tee -a "$out"; done
}

run_side() { # plain|tls
  local mode="$1" dir="$work/$1-cluster"
  local -a env=() s3=(--endpoint "http://127.0.0.1:$((9000 + off))")
  if [ "$mode" = tls ]; then
    export ANODE_CLUSTER_TLS=on
    export ANODE_GATEWAY_ARGS="--https-listen 127.0.0.1:$((9443 + off)) --tls-cert $work/s3/node.crt --tls-key $work/s3/node.key"
    env=(ANODE_CERTS_DIR="$dir/certs/client-1")
    s3=(--endpoint "https://127.0.0.1:$((9443 + off))" --ca-bundle "$work/s3/ca.crt")
  else
    export ANODE_CLUSTER_TLS=insecure ANODE_GATEWAY_ARGS=""
    env=(ANODE_INSECURE_NO_TLS=1)
  fi
  ANODE_BIN="$anode" ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  # shellcheck disable=SC1091
  source "$dir/credentials"
  export AWS_ACCESS_KEY_ID="$ANODE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ANODE_SECRET_KEY"
  env "${env[@]}" "$tools" bench meta --masters "$masters" --writers 8 --seconds 10 2>/dev/null | record "$mode"
  for w in "1024 16 1000" "16777216 4 24"; do
    set -- $w
    env "${env[@]}" "$tools" bench client --masters "$masters" --size "$1" --concurrency "$2" \
      --objects "$3" --bucket "c-$1" 2>/dev/null | record "$mode"
    "$tools" bench s3 "${s3[@]}" --access-key "$ANODE_ACCESS_KEY" --secret-key "$ANODE_SECRET_KEY" \
      --size "$1" --concurrency "$2" --objects "$3" --bucket "s-$1" 2>/dev/null | record "$mode"
  done
  ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir" >/dev/null
  rm -rf "$dir"
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run_side plain; run_side tls; else run_side tls; run_side plain; fi
done

python3 - "$out" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r["bench"], r.get("op", "commit"), r.get("size", 0))
def rate(r):
    return r.get("ops_per_sec", r.get("per_sec"))
print(f"{'bench':<7}{'op':<7}{'size':>9} {'plain/s':>9} {'tls/s':>9} {'tls/plain':>9} errors(plain/tls)")
for k in sorted({key(r) for r in rows}):
    p = [r for r in rows if key(r) == k and r["mode"] == "plain"]
    t = [r for r in rows if key(r) == k and r["mode"] == "tls"]
    if not p or not t:
        continue
    pm, tm = statistics.median(map(rate, p)), statistics.median(map(rate, t))
    err = f"{sum(r['errors'] for r in p)}/{sum(r['errors'] for r in t)}"
    print(f"{k[0]:<7}{k[1]:<7}{k[2]:>9} {pm:>9.1f} {tm:>9.1f} {tm / pm if pm else 0:>9.2f} {err}")
PY
