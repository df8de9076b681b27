#!/usr/bin/env bash
# What Parquet awareness (issue 16) saves a query engine, on `anode dev`:
#
#   scripts/bench-parquet.sh [--anode BIN] [--tools BIN] [--files N] [--rows R]
#       [--row-groups G] [--rounds K] [--concurrency C] [--json]
#       [--peer-endpoint URL --peer-access-key AK --peer-secret-key SK
#        [--peer-region REGION] [--peer-name NAME]]
#
# Starts `anode dev` (temp dir, free loopback ports, release builds of this checkout unless
# --anode/--tools are given), then runs `anode-tools bench parquet`: it writes N Parquet
# files of R rows (G row groups each; defaults 200 x 100000 x 4), uploads them, and answers
# a selective query (a narrow ts range, ~1.5 % of the files) and a non-selective one (ts over
# everything and a filter on an unsorted column) by the plain S3 path (list, footers, row
# groups pruned client-side, ranged GETs of column chunks) and by the pruned listing
# (`x-anode-where`), with the chunkservers' bytes read and the gateway's footer hits from
# /metrics (the three chunkservers of `anode dev` share one process and so one registry: its
# admin endpoint is scraped once). A peer already running (say another S3 store on
# 127.0.0.1) gets its own copy of the dataset and the plain path in the same run. Stops what
# it started (by pid) and removes its data directory (KEEP_DATA=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
anode=""; tools=""
bench=()
while [ $# -gt 0 ]; do
  case "$1" in
    --anode) anode="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --files|--rows|--row-groups|--rounds|--concurrency|--peer-endpoint|--peer-access-key|\
    --peer-secret-key|--peer-region|--peer-name|--footer-read)
      bench+=("$1" "$2"); shift 2 ;;
    --json) bench+=("$1"); shift ;;
    *) echo "usage: $0 [--anode BIN] [--tools BIN] [--files N] [--rows R] [--row-groups G] [--rounds K] [--concurrency C] [--json] [--peer-endpoint URL --peer-access-key AK --peer-secret-key SK [--peer-region R] [--peer-name NAME]]" >&2
       exit 2 ;;
  esac
done
if [ -z "$anode" ] || [ -z "$tools" ]; then
  source scripts/setup.sh
  cargo build --release -p anode --bin anode -p anode-tools --bin anode-tools >&2
  anode="${anode:-$CARGO_TARGET_DIR/release/anode}"
  tools="${tools:-$CARGO_TARGET_DIR/release/anode-tools}"
fi
dir=$(mktemp -d /tmp/anode-bench-parquet.XXXXXX)
pids=()
# The dataset is a few GB on disk (three replicas): removed on exit unless KEEP_DATA=1.
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
read -r s3port base < <(python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    b = random.randrange(20000, 29000)
    ports = [b, b + 80, b + 2000] + [b + 100 + i for i in range(4)] + [b + 180 + i for i in range(4)]
    if all(free(p) for p in ports + [b + 2500]):
        print(b + 2500, b); break
EOF
)
rnd() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export ANODE_ACCESS_KEY="BENCHPQ$(rnd 6 | tr a-f A-F)" ANODE_SECRET_KEY="$(rnd 20)"
"$anode" dev --data "$dir/data" --listen "127.0.0.1:$s3port" --base-port "$base" >"$dir/anode.log" 2>&1 &
pids+=($!)
gw_metrics="http://127.0.0.1:$((base + 2000))/metrics"
cs_metrics="http://127.0.0.1:$((base + 180))/metrics"
for _ in $(seq 1 300); do
  curl -sf "$gw_metrics" >/dev/null 2>&1 && curl -sf "$cs_metrics" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$gw_metrics" >/dev/null || { echo "anode dev did not come up; log:" >&2; tail -30 "$dir/anode.log" >&2; exit 1; }
# Writes need the three chunkservers registered (else 503 "need 3 chunkservers").
ctl() { "$anode" ctl --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/admin-1" "$@"; }
alive=0
for _ in $(seq 1 300); do
  alive=$(ctl status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length' 2>/dev/null || echo 0)
  [ "$alive" = 3 ] && break
  sleep 0.2
done
[ "$alive" = 3 ] || { echo "anode dev: $alive chunkservers alive, want 3; log:" >&2; tail -30 "$dir/anode.log" >&2; exit 1; }
echo "anode dev: http://127.0.0.1:$s3port (dir $dir); $(uptime)" >&2
"$tools" bench parquet --endpoint "http://127.0.0.1:$s3port" \
  --gateway-metrics "$gw_metrics" --chunkserver-metrics "$cs_metrics" "${bench[@]}"
