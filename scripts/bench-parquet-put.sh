#!/usr/bin/env bash
# What Parquet indexing costs on the write path (docs/parquet.md), on `anode dev`:
#
#   scripts/bench-parquet-put.sh [--anode BIN] [--tools BIN] [--objects N] [--rounds R]
#
# Starts `anode dev` (temp dir, free loopback ports; its gateway indexes Parquet) and a second
# gateway on the same cluster with `--parquet-max-tail 0` (indexing off), writes Parquet files
# with pyarrow (a narrow one: 4 columns, 8 row groups, ~8 MiB; a wide one: 200 columns, 16 row
# groups, ~6 MiB with a ~400 KiB footer), and in each of R rounds PUTs N copies of each file
# through both gateways (`anode-tools bench s3 --body-file`, 8 workers; every copy stamped so
# none deduplicates, magic and footer untouched). Prints PUT/s with and without indexing and
# their ratio per round, and the gateways' indexing counters.
set -euo pipefail
cd "$(dirname "$0")/.."
anode=target/debug/anode
tools=target/debug/anode-tools
objects=40
rounds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --anode) anode="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --objects) objects="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--anode BIN] [--tools BIN] [--objects N] [--rounds R]" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d /tmp/anode-bench-pqput.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
read -r base s3port s3off adminoff < <(python3 scripts/dev-ports.py 2500 2600 2700)
rnd() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export ANODE_ACCESS_KEY="BENCHPQPUT$(rnd 6 | tr a-f A-F)" ANODE_SECRET_KEY="$(rnd 20)"
"$anode" dev --data "$dir/data" --listen "127.0.0.1:$s3port" --base-port "$base" >"$dir/anode.log" 2>&1 &
pids+=($!)
ctl() { "$anode" ctl --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/admin-1" "$@"; }
for _ in $(seq 1 300); do
  [ "$(ctl status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length')" = 3 ] && break
  sleep 0.2
done
"$anode" gateway --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/gateway-1" \
  --listen "127.0.0.1:$s3off" --admin-listen "127.0.0.1:$adminoff" --parquet-max-tail 0 \
  >"$dir/gateway-off.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$s3off/" && break; sleep 0.1; done
python3 - "$dir" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq
d = sys.argv[1]
n = 1_000_000
pq.write_table(pa.table({"ts": pa.array(range(n), pa.int64()), "v": pa.array([i * 0.5 for i in range(n)]),
                         "city": pa.array(["Oslo", "Bergen", "Tromso", "Bodo"] * (n // 4)),
                         "k": pa.array([i % 977 for i in range(n)], pa.int32())}),
               f"{d}/narrow.parquet", row_group_size=n // 8, compression="none")
rows = 16_000
pq.write_table(pa.table({f"c{i}": pa.array([(j * 31 + i) % 10007 for j in range(rows)], pa.int64()) for i in range(200)}),
               f"{d}/wide.parquet", row_group_size=rows // 16, compression="none")
for f in ("narrow", "wide"):
    m = pq.ParquetFile(f"{d}/{f}.parquet").metadata
    print(f"{f}.parquet: {m.num_columns} columns, {m.num_row_groups} row groups, footer {m.serialized_size} bytes")
PY
ls -l "$dir"/*.parquet | awk '{print $5, $9}'
put_rate() { jq -r 'select(.op == "put") | .ops_per_sec' "$1"; }
run() { "$tools" bench s3 --endpoint "http://127.0.0.1:$1" --bucket "$2" --body-file "$dir/$3.parquet" \
  --objects "$objects" --concurrency 8 >"$4" 2>&1; }
echo "file     round  PUT/s indexing  PUT/s off  ratio"
for f in narrow wide; do
  for r in $(seq 1 "$rounds"); do
    # Alternate which goes first, so neither always meets a warmer cluster.
    if [ $((r % 2)) = 1 ]; then
      run "$s3port" bench-on "$f" "$dir/$f-on-$r.txt"; run "$s3off" bench-off "$f" "$dir/$f-off-$r.txt"
    else
      run "$s3off" bench-off "$f" "$dir/$f-off-$r.txt"; run "$s3port" bench-on "$f" "$dir/$f-on-$r.txt"
    fi
    on=$(put_rate "$dir/$f-on-$r.txt"); off=$(put_rate "$dir/$f-off-$r.txt")
    python3 -c "import sys; f,r,a,b=sys.argv[1:]; print(f'{f:<8} {r:>5}  {float(a):>14.2f}  {float(b):>9.2f}  {float(a)/float(b):>5.2f}')" "$f" "$r" "$on" "$off"
  done
done
echo "indexing gateway:"; curl -s "http://127.0.0.1:$((base + 2000))/metrics" | grep '^anode_gateway_parquet' || true
echo "(bench output and logs in $dir)"
