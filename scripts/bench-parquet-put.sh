#!/usr/bin/env bash
# What Parquet indexing costs on the write path (docs/parquet.md), on `anode dev`:
#
#   scripts/bench-parquet-put.sh [--anode BIN] [--tools BIN] [--objects N] [--rounds R]
#                                [--open-files F]
#
# Starts `anode dev` (temp dir, free loopback ports) and two gateway processes on it, alike
# but for indexing (`--parquet-max-tail 4194304` and `0`), writes Parquet files
# with pyarrow (a narrow one: 4 columns, 8 row groups, ~8 MiB; a wide one: 200 columns, 16 row
# groups, ~6 MiB with a ~400 KiB footer), and in each of R rounds PUTs N copies of each file
# through both gateways (`anode-tools bench s3 --body-file`, 8 workers; every copy stamped so
# none deduplicates, magic and footer untouched). Prints PUT/s with and without indexing and
# their ratio per round, and the gateways' indexing counters. Then writes F small Parquet
# files (2,000 rows) and F/5 larger ones (100,000 rows) through each gateway and opens them
# all with pyarrow through the indexing gateway: time, chunk reads and footer hits, indexed
# against plain.
set -euo pipefail
cd "$(dirname "$0")/.."
anode=target/debug/anode
tools=target/debug/anode-tools
objects=40
rounds=3
open_files=1000
while [ $# -gt 0 ]; do
  case "$1" in
    --anode) anode="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --objects) objects="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --open-files) open_files="$2"; shift 2 ;;
    *) echo "usage: $0 [--anode BIN] [--tools BIN] [--objects N] [--rounds R] [--open-files F]" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d /tmp/anode-bench-pqput.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The cluster's data is GBs after a run; KEEP_DATA=1 keeps it (and the logs).
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
read -r base s3port s3on adminon s3off adminoff < <(python3 scripts/dev-ports.py 2500 2550 2560 2600 2700)
rnd() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export ANODE_ACCESS_KEY="BENCHPQPUT$(rnd 6 | tr a-f A-F)" ANODE_SECRET_KEY="$(rnd 20)"
"$anode" dev --data "$dir/data" --listen "127.0.0.1:$s3port" --base-port "$base" >"$dir/anode.log" 2>&1 &
pids+=($!)
ctl() { "$anode" ctl --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/admin-1" "$@"; }
for _ in $(seq 1 300); do
  [ "$(ctl status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length')" = 3 ] && break
  sleep 0.2
done
# Two gateways of their own on the cluster, alike but for indexing (the one `anode dev` runs
# shares its process with the masters and chunkservers, so it is not compared).
gw() { "$anode" gateway --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/gateway-1" \
  --listen "127.0.0.1:$1" --admin-listen "127.0.0.1:$2" --parquet-max-tail "$3" >"$dir/gateway-$1.log" 2>&1 &
  pids+=($!); }
gw "$s3on" "$adminon" 4194304
gw "$s3off" "$adminoff" 0
for p in "$s3on" "$s3off"; do
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
done
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
put_rate() { jq -r 'select(.op == "put") | .ops / .seconds' "$1"; }
run() { "$tools" bench s3 --endpoint "http://127.0.0.1:$1" --bucket "$2" --body-file "$dir/$3.parquet" \
  --objects "$objects" --concurrency 8 >"$4" 2>&1; }
echo "file     round  PUT/s indexing  PUT/s off  ratio"
for f in narrow wide; do
  for r in $(seq 1 "$rounds"); do
    # Alternate which goes first, so neither always meets a warmer cluster.
    if [ $((r % 2)) = 1 ]; then
      run "$s3on" bench-on "$f" "$dir/$f-on-$r.txt"; run "$s3off" bench-off "$f" "$dir/$f-off-$r.txt"
    else
      run "$s3off" bench-off "$f" "$dir/$f-off-$r.txt"; run "$s3on" bench-on "$f" "$dir/$f-on-$r.txt"
    fi
    on=$(put_rate "$dir/$f-on-$r.txt"); off=$(put_rate "$dir/$f-off-$r.txt")
    python3 -c "import sys; f,r,a,b=sys.argv[1:]; print(f'{f:<8} {r:>5}  {float(a):>14.2f}  {float(b):>9.2f}  {float(a)/float(b):>5.2f}')" "$f" "$r" "$on" "$off"
  done
done
echo "indexing gateway:"; curl -s "http://127.0.0.1:$adminon/metrics" | grep '^anode_gateway_parquet' || true
# Opening files: the same Parquet files written through each gateway (indexed / plain), then
# opened with pyarrow (S3FileSystem) through the indexing gateway: footer only
# (`read_metadata`), and whole (`read_table`). Chunk reads are the chunkservers' counters
# (one process in `anode dev`: one registry).
export AWS_ACCESS_KEY_ID="$ANODE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ANODE_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1
python3 - "$s3on" "$s3off" "$((base + 180))" "$adminon" "$open_files" <<'PY'
import io, sys, time, urllib.request, concurrent.futures as cf
import boto3, pyarrow as pa, pyarrow.parquet as pq, pyarrow.fs as pafs
on, off, cs_admin, gw_admin, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{"))
def parquet(rows, seed):
    t = pa.table({"ts": pa.array(range(seed * rows, (seed + 1) * rows), pa.int64()),
                  "v": pa.array([float(i % 1000) for i in range(rows)]),
                  "city": pa.array(["Oslo", "Bergen", "Tromso", "Bodo"][seed % 4:] * rows)[:rows]})
    b = io.BytesIO(); pq.write_table(t, b, row_group_size=max(rows // 4, 1)); return b.getvalue()
print(f"\nopening files with pyarrow through the indexing gateway")
print("files  size     written via      footer only: s  chunk GETs  hits   whole: s  chunk GETs  hits")
for rows, count in ((2_000, n), (100_000, n // 5)):
    bodies = [parquet(rows, i) for i in range(count)]
    for label, port in (("indexing gw", on), ("plain gw", off)):
        bucket = f"open-{rows}-{port}"
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        s3.create_bucket(Bucket=bucket)
        with cf.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: s3.put_object(Bucket=bucket, Key=f"f{i:05}.parquet", Body=bodies[i]), range(count)))
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{on}", scheme="http", region="us-east-1")
        paths = [f"{bucket}/f{i:05}.parquet" for i in range(count)]
        row = []
        for what in ("meta", "table"):
            g0, h0 = metric(cs_admin, "anode_chunkserver_gets_total"), metric(gw_admin, "anode_gateway_parquet_footer_hits_total")
            t0 = time.monotonic()
            with cf.ThreadPoolExecutor(8) as ex:
                if what == "meta":
                    got = list(ex.map(lambda p: pq.read_metadata(p, filesystem=fs).num_rows, paths))
                else:
                    got = list(ex.map(lambda p: pq.read_table(p, filesystem=fs).num_rows, paths))
            dt = time.monotonic() - t0
            assert got == [rows] * count, got[:3]
            row += [dt, metric(cs_admin, "anode_chunkserver_gets_total") - g0, metric(gw_admin, "anode_gateway_parquet_footer_hits_total") - h0]
        print(f"{count:>5}  {len(bodies[0]) // 1024:>5} KiB  {label:<13}  {row[0]:>14.2f}  {row[1]:>10.0f}  {row[2]:>5.0f}  {row[3]:>8.2f}  {row[4]:>10.0f}  {row[5]:>5.0f}")
PY
if [ "${KEEP_DATA:-0}" = 1 ]; then echo "(bench output and logs in $dir)"; fi
