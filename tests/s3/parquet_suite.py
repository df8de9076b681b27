"""Parquet awareness (issue 16) as query engines see it: pyarrow and DataFusion reading a
dataset of Parquet files through the gateway, and the pruned listing (`x-anode-where`).

Run by `tests/s3_parquet.rs` against a real multi-process cluster. By hand:
  S3_ENDPOINT=http://127.0.0.1:PORT GATEWAY_ADMIN=http://127.0.0.1:ADMINPORT \
  AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... python3 tests/s3/parquet_suite.py
Needs boto3, pyarrow and datafusion (55.x) (scripts/test-tools.sh installs them). By hand,
PARQUET_FILES (default 200) sizes the dataset and PARQUET_SUITE_PARTS (default
`i,ii,iii,iv,v,bad`) picks the checks; the test runs them all.

The dataset: FILES files of ROWS rows each, 2 to 4 row groups per file; `ts` (int64) rises
across files (file i holds i*ROWS .. i*ROWS+ROWS-1), `city` (string) is drawn from a set that
contains 'Oslo' only in every tenth file (the other files hold cities that sort after it, so
statistics can exclude them), `value` (float64) has nulls in every seventh file and a NaN in
a few. The same files are written to a local directory, and every result read through S3 is
compared with the same read of the local files.

Checks:
  (i)   pyarrow.dataset over pyarrow.fs.S3FileSystem: the whole dataset equals the local one;
  (ii)  a filtered pyarrow query, S3 and local, equal;
  (iii) ListObjectsV2 with `x-anode-where` (signed with botocore's SigV4, the parameter in
        the canonical query): for several predicates the listed objects and their
        `<AnodeRowGroups>` cover every file and row group holding a matching row, fewer
        files are listed than exist (exactly the overlapping files for a `ts` range, whose
        min/max statistics are exact), a file that is not Parquet is listed without
        `AnodeRowGroups`, the listing pages, and reading only the listed row groups with
        pyarrow gives the local filtered result; bad predicates are 400 InvalidArgument
        naming a position;
  (iv)  DataFusion (Python) over the S3 store: count and a filtered sum equal pyarrow's local
        figures;
  (v)   the gateway's /metrics counts footer reads answered from stored tails
        (`anode_gateway_parquet_footer_hits_total` > 0 after the reads).
Prints "parquet suite: ok" and exits 0 only if every check passed.
"""
import math
import os
import random
import re
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import urllib3

from common import s3_client

ENDPOINT = os.environ["S3_ENDPOINT"].rstrip("/")
ADMIN = os.environ.get("GATEWAY_ADMIN", "").rstrip("/")
ACCESS = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
REGION = "us-east-1"
FILES = int(os.environ.get("PARQUET_FILES", "200"))
ROWS = 300
PREFIX = "ds/"
OTHER_CITIES = ["Paris", "Rome", "Tokyo", "Vienna"]  # all sort after 'Oslo'
NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

s3 = s3_client(ENDPOINT)
http = urllib3.PoolManager()
BUCKET = f"pq-{int(time.time())}-{random.randrange(1 << 20):x}"


def file_table(i):
    """The rows of file i (deterministic)."""
    rnd = random.Random(i)
    ts = list(range(i * ROWS, (i + 1) * ROWS))
    cities = ["Oslo", "Bergen"] + OTHER_CITIES if i % 10 == 0 else OTHER_CITIES
    city = [rnd.choice(cities) for _ in ts]
    value = [rnd.uniform(-100.0, 100.0) for _ in ts]
    if i % 7 == 0:
        for j in rnd.sample(range(ROWS), 12):
            value[j] = None
    if i % 50 == 3:
        value[rnd.randrange(ROWS)] = float("nan")
    return pa.table({
        "ts": pa.array(ts, pa.int64()),
        "city": pa.array(city, pa.string()),
        "value": pa.array(value, pa.float64()),
    })


def key(i):
    return f"{PREFIX}part-{i:04d}.parquet"


def groups_of(i):
    return 2 + i % 3


def write_dataset(local_dir):
    """Write every file locally and upload it; returns the files' row groups' tables."""
    row_groups = {}
    for i in range(FILES):
        t = file_table(i)
        path = os.path.join(local_dir, key(i))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        pq.write_table(t, path, row_group_size=-(-ROWS // groups_of(i)))
        f = pq.ParquetFile(path)
        assert f.metadata.num_row_groups == groups_of(i), (i, f.metadata.num_row_groups)
        row_groups[key(i)] = [f.read_row_group(g) for g in range(f.metadata.num_row_groups)]
        with open(path, "rb") as fh:
            s3.put_object(Bucket=BUCKET, Key=key(i), Body=fh.read())
    return row_groups


def canonical(table):
    """Rows sorted by ts, as Python values with NaN made comparable."""
    t = table.select(["ts", "city", "value"]).sort_by("ts")
    rows = t.to_pylist()
    for r in rows:
        if isinstance(r["value"], float) and math.isnan(r["value"]):
            r["value"] = "NaN"
    return rows


def same_tables(a, b, what):
    ca, cb = canonical(a), canonical(b)
    assert len(ca) == len(cb), f"{what}: {len(ca)} rows vs {len(cb)}"
    for x, y in zip(ca, cb):
        assert x == y, f"{what}: {x} != {y}"
    return len(ca)


def s3_fs():
    host = urllib.parse.urlparse(ENDPOINT).netloc
    return pafs.S3FileSystem(access_key=ACCESS, secret_key=SECRET, region=REGION,
                             scheme="http", endpoint_override=host)


# ---- the signed, raw ListObjectsV2 with x-anode-where --------------------------------------

def signed_get(path, params):
    """A SigV4-signed GET of `path` with query `params` (every parameter inside the canonical
    query, as botocore signs it); returns (status, body bytes)."""
    query = urllib.parse.urlencode(sorted(params.items()), quote_via=urllib.parse.quote)
    url = f"{ENDPOINT}{path}?{query}" if query else f"{ENDPOINT}{path}"
    req = botocore.awsrequest.AWSRequest(method="GET", url=url)
    creds = botocore.credentials.Credentials(ACCESS, SECRET)
    botocore.auth.S3SigV4Auth(creds, "s3", REGION).add_auth(req)
    r = http.request("GET", url, headers=dict(req.headers.items()), retries=False)
    return r.status, r.data


def list_where(predicate, prefix=PREFIX, max_keys=None):
    """Every object ListObjectsV2 lists under `prefix` with `x-anode-where=predicate`, paging
    with continuation tokens: {key: row groups (sorted list) or None when not indexed}, and
    the number of pages."""
    out, token, pages = {}, None, 0
    while True:
        params = {"list-type": "2", "prefix": prefix, "x-anode-where": predicate}
        if max_keys:
            params["max-keys"] = str(max_keys)
        if token:
            params["continuation-token"] = token
        status, body = signed_get(f"/{BUCKET}", params)
        assert status == 200, f"list where {predicate!r}: HTTP {status}: {body[:400]!r}"
        pages += 1
        assert pages < 10_000, "listing does not end"
        root = ET.fromstring(body)
        for c in root.findall(f"{NS}Contents"):
            k = c.find(f"{NS}Key").text
            assert k not in out, f"{k} listed twice"
            rg = c.find(f"{NS}AnodeRowGroups")
            if rg is None:
                out[k] = None
            else:
                text = rg.text or ""
                groups = [int(x) for x in text.split(",")] if text else []
                assert groups == sorted(set(groups)), f"{k}: row groups {text!r} not ascending"
                out[k] = groups
        truncated = root.find(f"{NS}IsTruncated").text == "true"
        if not truncated:
            return out, pages
        token = root.find(f"{NS}NextContinuationToken").text
        assert token, "truncated without a continuation token"


def list_error(predicate):
    status, body = signed_get(f"/{BUCKET}", {"list-type": "2", "x-anode-where": predicate})
    code = ET.fromstring(body).find("Code").text if body.strip() else ""
    return status, code, body.decode("utf-8", "replace")


# ---- (iii) the pruned path -------------------------------------------------------------------

# Each predicate, as the gateway's language and as a pyarrow expression with the same meaning
# (SQL: a row matches when the condition is TRUE; NULL and NaN as in `x-anode-where`).
F = pc.field
PREDICATES = [
    ("ts >= 15000 AND ts < 15700", (F("ts") >= 15000) & (F("ts") < 15700), "ts"),
    ("ts BETWEEN 30100 AND 30250", (F("ts") >= 30100) & (F("ts") <= 30250), "ts"),
    ("city = 'Oslo'", F("city") == "Oslo", None),
    ("city IN ('Bergen', 'Oslo') AND ts < 20000",
     F("city").isin(["Bergen", "Oslo"]) & (F("ts") < 20000), None),
    ("value IS NULL", F("value").is_null(), None),
    ("NOT (ts >= 900) OR ts > 59000", ~(F("ts") >= 900) | (F("ts") > 59000), "ts"),
    ("ts < 3000 AND city <> 'Paris' AND value > 50.5",
     (F("ts") < 3000) & (F("city") != "Paris") & (F("value") > 50.5), None),
]


def matching_groups(row_groups, expr):
    """{key: [row groups holding a row for which expr is TRUE]} (files with none left out)."""
    out = {}
    for k, groups in row_groups.items():
        hit = [g for g, t in enumerate(groups) if t.filter(expr).num_rows > 0]
        if hit:
            out[k] = hit
    return out


def pruned_path(row_groups, local_all, fs):
    for text, expr, exact_on in PREDICATES:
        listed, _ = list_where(text)
        truth = matching_groups(row_groups, expr)
        assert truth, f"{text}: the dataset has no match (a bad test)"
        missing = set(truth) - set(listed)
        assert not missing, f"{text}: files with matches not listed: {sorted(missing)[:5]}"
        indexed = [k for k, g in listed.items() if g is not None]
        assert indexed, f"{text}: no listed object says AnodeRowGroups (statistics missing?)"
        for k, groups in listed.items():
            assert k in row_groups, f"{text}: unknown key {k} listed"
            if groups is None:
                continue
            assert groups, f"{text}: {k} listed with no row group"
            lost = set(truth.get(k, [])) - set(groups)
            assert not lost, f"{text}: {k} row groups {sorted(lost)} hold matches, not listed"
            assert max(groups) < len(row_groups[k]), f"{text}: {k} row groups {groups}"
        assert len(listed) < FILES, f"{text}: nothing pruned ({len(listed)} of {FILES} files)"
        if exact_on == "ts":
            # Integer min/max statistics are exact: exactly the overlapping files and groups.
            assert listed == truth, (
                f"{text}: listed {sorted(listed.items())[:4]}.. ({len(listed)}), "
                f"want {sorted(truth.items())[:4]}.. ({len(truth)})")
        # Read only what was listed, as an engine would, and filter.
        parts = []
        for k, groups in sorted(listed.items()):
            with fs.open_input_file(f"{BUCKET}/{k}") as fh:
                f = pq.ParquetFile(fh)
                t = f.read_row_groups(groups if groups is not None
                                      else range(f.metadata.num_row_groups))
            parts.append(t.filter(expr))
        got = pa.concat_tables(parts)
        n = same_tables(got, local_all.filter(expr), f"pruned read of {text}")
        print(f"  where {text!r}: {len(listed)} of {FILES} files listed, "
              f"{sum(len(g or row_groups[k]) for k, g in listed.items())} row groups, {n} rows")
    # Paging: a small max-keys still lists the same objects.
    text = PREDICATES[0][0]
    whole, _ = list_where(text)
    paged, pages = list_where(text, max_keys=2)
    assert paged == whole, f"paged listing differs: {paged} vs {whole}"
    assert pages > 1, f"max-keys=2 over {len(whole)} objects took {pages} page"
    # An object that is not Parquet is listed (no statistics to exclude it), not indexed.
    s3.put_object(Bucket=BUCKET, Key="mixed/readme.txt", Body=b"not parquet")
    with open(os.path.join(LOCAL, key(0)), "rb") as fh:
        s3.put_object(Bucket=BUCKET, Key="mixed/part-0000.parquet", Body=fh.read())
    mixed, _ = list_where("ts > 1000000", prefix="mixed/")
    assert mixed == {"mixed/readme.txt": None}, f"mixed listing: {mixed}"
    mixed, _ = list_where("ts < 10", prefix="mixed/")
    assert mixed == {"mixed/readme.txt": None, "mixed/part-0000.parquet": [0]}, mixed


def bad_predicates():
    # (text, the byte position the error must name)
    for text, pos in [("ts >=", 5), ("ts > 5 AND", 10), ("(ts > 5", 7), ("ts = 'a", 5),
                      ("ts IN ()", 7), ("ts > 1 1", 7), ("ts > 1 AND AND", 11)]:
        status, code, body = list_error(text)
        assert (status, code) == (400, "InvalidArgument"), f"{text!r}: {status} {body}"
        m = re.search(r"position (\d+)", body)
        assert m, f"{text!r}: no position in {body}"
        assert int(m.group(1)) == pos, f"{text!r}: position {m.group(1)}, want {pos}: {body}"
    status, code, body = list_error("ts > 1 OR " * 500)
    assert (status, code) == (400, "InvalidArgument"), f"over-long predicate: {status} {body}"


# ---- (iv) DataFusion ---------------------------------------------------------------------------

def datafusion_checks(local_all):
    import datafusion
    from datafusion.object_store import AmazonS3

    store = AmazonS3(bucket_name=BUCKET, region=REGION, access_key_id=ACCESS,
                     secret_access_key=SECRET, endpoint=ENDPOINT, allow_http=True)
    ctx = datafusion.SessionContext()
    ctx.register_object_store("s3://", store, BUCKET)
    ctx.register_parquet("t", f"s3://{BUCKET}/{PREFIX}")

    def one(sql):
        batches = ctx.sql(sql).collect()
        rows = pa.Table.from_batches(batches).to_pylist()
        assert len(rows) == 1, f"{sql}: {rows}"
        return list(rows[0].values())

    (count,) = one("SELECT count(*) FROM t")
    assert count == local_all.num_rows == FILES * ROWS, f"count {count} vs {local_all.num_rows}"
    lo, hi = 10_000, 45_000
    n, total = one("SELECT count(*), sum(value) FROM t "
                   f"WHERE city = 'Oslo' AND ts >= {lo} AND ts < {hi}")
    want = local_all.filter((F("city") == "Oslo") & (F("ts") >= lo) & (F("ts") < hi))
    want_sum = pc.sum(want["value"]).as_py()
    assert n == want.num_rows, f"filtered count {n} vs {want.num_rows}"
    assert math.isclose(total, want_sum, rel_tol=1e-9, abs_tol=1e-9), f"{total} vs {want_sum}"
    (nulls,) = one("SELECT count(*) FROM t WHERE value IS NULL")
    assert nulls == local_all["value"].null_count, f"nulls {nulls}"
    print(f"  datafusion: count {count}, Oslo {n} rows sum {total:.3f}, {nulls} nulls")


# ---- (v) metrics ---------------------------------------------------------------------------

def metric(name):
    """Sum of every sample of `name` on the gateway's /metrics; None when absent."""
    body = urllib.request.urlopen(f"{ADMIN}/metrics", timeout=10).read().decode()
    found, total = False, 0.0
    for line in body.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)", line)
        if m:
            found, total = True, total + float(m.group(2))
    return total if found else None


def big_file(fs):
    """A file larger than the stored tail: its footer is read from the tail (a hit), its
    first row groups from the chunkservers (misses), and it reads back equal."""
    rnd = random.Random(99)
    n = 40_000
    t = pa.table({"ts": pa.array(range(n), pa.int64()),
                  "city": pa.array([rnd.choice(OTHER_CITIES) for _ in range(n)]),
                  "value": pa.array([rnd.random() for _ in range(n)], pa.float64())})
    path = os.path.join(LOCAL, "big.parquet")
    pq.write_table(t, path, row_group_size=10_000, compression="none")
    assert os.path.getsize(path) > 4 * 64 * 1024, os.path.getsize(path)
    with open(path, "rb") as fh:
        s3.put_object(Bucket=BUCKET, Key="big/big.parquet", Body=fh.read())
    h0 = metric("anode_gateway_parquet_footer_hits_total")
    m0 = metric("anode_gateway_parquet_footer_misses_total")
    with fs.open_input_file(f"{BUCKET}/big/big.parquet") as fh:
        got = pq.ParquetFile(fh).read()
    same_tables(got, t, "big file")
    h1 = metric("anode_gateway_parquet_footer_hits_total")
    m1 = metric("anode_gateway_parquet_footer_misses_total")
    assert h1 > h0, f"big file: footer hits {h0} -> {h1}"
    assert m1 > m0, f"big file: misses {m0} -> {m1} (row groups outside the tail)"
    print(f"  big file: hits {h0} -> {h1}, misses {m0} -> {m1}")


def main():
    global LOCAL
    parts = set(os.environ.get("PARQUET_SUITE_PARTS", "i,ii,iii,iv,v,bad").split(","))
    s3.create_bucket(Bucket=BUCKET)
    tmp = tempfile.TemporaryDirectory()
    LOCAL = tmp.name
    t0 = time.time()
    row_groups = write_dataset(LOCAL)
    print(f"  {FILES} files uploaded in {time.time() - t0:.1f}s")
    local_all = ds.dataset(os.path.join(LOCAL, PREFIX), format="parquet").to_table()
    assert local_all.num_rows == FILES * ROWS
    fs = s3_fs()
    hits_before = metric("anode_gateway_parquet_footer_hits_total") if ADMIN else None
    if "i" in parts:
        remote = ds.dataset(f"{BUCKET}/{PREFIX}", format="parquet", filesystem=fs).to_table()
        n = same_tables(remote, local_all, "whole dataset")
        print(f"  (i) whole dataset through S3 equals local: {n} rows")
    if "ii" in parts:
        flt = (F("ts") >= 12_345) & (F("ts") < 33_333) & (F("city") == "Oslo")
        remote = ds.dataset(f"{BUCKET}/{PREFIX}", format="parquet", filesystem=fs)
        n = same_tables(remote.to_table(filter=flt), local_all.filter(flt), "filtered query")
        assert n > 0
        print(f"  (ii) filtered query equal: {n} rows")
    if "iii" in parts:
        pruned_path(row_groups, local_all, fs)
        print("  (iii) pruned listings cover every match and read back equal")
    if "bad" in parts:
        bad_predicates()
        print("  bad predicates: 400 InvalidArgument with a position")
    if "iv" in parts:
        datafusion_checks(local_all)
        print("  (iv) datafusion over S3 equals pyarrow local")
    if "v" in parts:
        assert ADMIN, "GATEWAY_ADMIN is not set"
        hits = metric("anode_gateway_parquet_footer_hits_total")
        misses = metric("anode_gateway_parquet_footer_misses_total")
        if hits is None:
            print("  (v) SKIPPED: the gateway has no anode_gateway_parquet_footer_hits_total "
                  "metric (footer serving not in this build)")
        else:
            assert hits > (hits_before or 0), f"footer hits {hits_before} -> {hits}"
            print(f"  (v) footer hits {hits_before} -> {hits}, misses {misses}")
            big_file(fs)
    del fs
    pafs.finalize_s3()
    print("parquet suite: ok")


if __name__ == "__main__":
    main()
    sys.stdout.flush()
