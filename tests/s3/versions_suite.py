"""Versioning, object lock and lifecycle configuration (issue 14), driven by boto3 against two
gateways ($S3_ENDPOINT writes, $S3_ENDPOINT_2 reads, and the other way round).

Run by `tests/s3_versions.rs` against a real multi-process cluster of 3 masters: after phase 1
the suite writes $PHASE1_FILE and waits for $FAILOVER_FILE, which the test writes once it has
killed the raft leader (kill -9) and another member leads. Phase 2 then checks that every
version recorded in phase 1 reads the same through both gateways and that versioned writes,
deletes and locks go on. By hand (no failover):
  S3_ENDPOINT=... S3_ENDPOINT_2=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  python3 tests/s3/versions_suite.py
Prints "versions suite: ok" and exits 0 only if every check passed.
"""
import datetime
import os
import time

from botocore.exceptions import ClientError

from common import s3_client

A_URL = os.environ["S3_ENDPOINT"]
B_URL = os.environ.get("S3_ENDPOINT_2", A_URL)
PHASE1 = os.environ.get("PHASE1_FILE")
FAILOVER = os.environ.get("FAILOVER_FILE")
MIB = 1024 * 1024


def client(endpoint, attempts=1):
    return s3_client(endpoint, attempts=attempts)


a = client(A_URL)
b = client(B_URL)


def code(fn, *args, **kw):
    """The S3 error code and HTTP status of a call expected to fail."""
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} {kw} did not fail")


def body(c, bucket, key, vid=None):
    kw = {"VersionId": vid} if vid else {}
    return c.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def all_versions(c, bucket, page=1000):
    """Every (key, version id, is latest, is marker) of a bucket, paging with both markers:
    each page's versions in order, then its delete markers (boto3 lists them apart)."""
    out, kw = [], {}
    while True:
        r = c.list_object_versions(Bucket=bucket, MaxKeys=page, **kw)
        out += [(v["Key"], v["VersionId"], v["IsLatest"], False) for v in r.get("Versions", [])]
        out += [(m["Key"], m["VersionId"], m["IsLatest"], True)
                for m in r.get("DeleteMarkers", [])]
        if not r["IsTruncated"]:
            return out
        kw = {"KeyMarker": r["NextKeyMarker"]}
        if r.get("NextVersionIdMarker"):
            kw["VersionIdMarker"] = r["NextVersionIdMarker"]


def versioning(c, bucket):
    return c.get_bucket_versioning(Bucket=bucket).get("Status")


# ---- phase 1 ---------------------------------------------------------------------------------
stamp = str(int(time.time()))
V = f"ver-{stamp}"
a.create_bucket(Bucket=V)
assert versioning(b, V) is None
a.put_object(Bucket=V, Key="k", Body=b"null-version")
a.put_bucket_versioning(Bucket=V, VersioningConfiguration={"Status": "Enabled"})
assert versioning(b, V) == "Enabled"
assert code(a.put_bucket_versioning, Bucket=V,
            VersioningConfiguration={"Status": "Bogus"}) == ("MalformedXML", 400)

# Three versions over the null one, written through A, read through B.
ids = []
for i in range(3):
    r = a.put_object(Bucket=V, Key="k", Body=f"v{i}".encode())
    ids.append(r["VersionId"])
assert len(set(ids)) == 3 and "null" not in ids, ids
assert body(b, V, "k") == b"v2"
for i, vid in enumerate(ids):
    assert body(b, V, "k", vid) == f"v{i}".encode()
    h = b.head_object(Bucket=V, Key="k", VersionId=vid)
    assert h["VersionId"] == vid and h["ContentLength"] == 2
assert body(b, V, "k", "null") == b"null-version"
listed = all_versions(b, V)
assert [(k, v, latest) for k, v, latest, _ in listed] == [
    ("k", ids[2], True), ("k", ids[1], False), ("k", ids[0], False), ("k", "null", False)
], listed
assert code(b.get_object, Bucket=V, Key="k", VersionId="0123456789abcdef") == ("NoSuchVersion", 404)
assert code(b.get_object, Bucket=V, Key="k", VersionId="not-a-version") == ("InvalidArgument", 400)

# A simple delete adds a marker; the key reads as absent, its versions stay.
r = a.delete_object(Bucket=V, Key="k")
assert r["DeleteMarker"] is True
marker = r["VersionId"]
try:
    b.head_object(Bucket=V, Key="k")
    raise AssertionError("HEAD of a deleted key succeeded")
except ClientError as e:
    hdrs = e.response["ResponseMetadata"]["HTTPHeaders"]
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert hdrs.get("x-amz-delete-marker") == "true" and hdrs.get("x-amz-version-id") == marker
assert code(b.get_object, Bucket=V, Key="k", VersionId=marker)[1] == 405
assert body(b, V, "k", ids[1]) == b"v1"
assert not b.list_objects_v2(Bucket=V).get("Contents")
# Deleting the marker brings the newest version back.
r = b.delete_object(Bucket=V, Key="k", VersionId=marker)
assert r["DeleteMarker"] is True and r["VersionId"] == marker
assert body(a, V, "k") == b"v2"
# Deleting the current version for good promotes the next.
a.delete_object(Bucket=V, Key="k", VersionId=ids[2])
assert body(b, V, "k") == b"v1"
ids.pop()

# Multipart completes and copies make versions too.
mp = a.create_multipart_upload(Bucket=V, Key="big")
p1 = a.upload_part(Bucket=V, Key="big", UploadId=mp["UploadId"], PartNumber=1, Body=b"x" * (5 * MIB))
p2 = a.upload_part(Bucket=V, Key="big", UploadId=mp["UploadId"], PartNumber=2, Body=b"tail")
done = a.complete_multipart_upload(
    Bucket=V, Key="big", UploadId=mp["UploadId"],
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
big_vid = done["VersionId"]
assert b.head_object(Bucket=V, Key="big", VersionId=big_vid)["ContentLength"] == 5 * MIB + 4
cp = a.copy_object(Bucket=V, Key="copy-of-v0", CopySource={"Bucket": V, "Key": "k", "VersionId": ids[0]})
assert cp["CopySourceVersionId"] == ids[0] and cp["VersionId"]
assert body(b, V, "copy-of-v0") == b"v0"

# Paging through versions: 7 keys x 2 versions, 3 entries a page, through both markers.
P = f"page-{stamp}"
a.create_bucket(Bucket=P)
a.put_bucket_versioning(Bucket=P, VersioningConfiguration={"Status": "Enabled"})
for i in range(7):
    for j in range(2):
        a.put_object(Bucket=P, Key=f"d{i % 2}/k{i}", Body=f"{i}.{j}".encode())
paged = all_versions(b, P, page=3)
assert len(paged) == 14 and paged == all_versions(a, P), paged
assert sum(1 for e in paged if e[2]) == 7
prefixes = b.list_object_versions(Bucket=P, Delimiter="/")["CommonPrefixes"]
assert [p["Prefix"] for p in prefixes] == ["d0/", "d1/"]

# DeleteObjects with and without version ids.
first = [e for e in paged if e[0] == "d0/k0"]
r = b.delete_objects(Bucket=P, Delete={"Objects": [
    {"Key": "d0/k0", "VersionId": first[1][1]},
    {"Key": "d1/k1"},
]})
deleted = {d["Key"]: d for d in r["Deleted"]}
assert deleted["d0/k0"]["VersionId"] == first[1][1]
assert deleted["d1/k1"]["DeleteMarker"] is True and deleted["d1/k1"]["DeleteMarkerVersionId"]
assert len(all_versions(a, P)) == 14  # one version gone, one marker added

# Suspended: writes replace the null version and keep the others.
b.put_bucket_versioning(Bucket=V, VersioningConfiguration={"Status": "Suspended"})
assert versioning(a, V) == "Suspended"
r = a.put_object(Bucket=V, Key="k", Body=b"suspended-1")
assert r.get("VersionId", "null") == "null"
a.put_object(Bucket=V, Key="k", Body=b"suspended-2")
k_versions = [e for e in all_versions(b, V) if e[0] == "k"]
assert [v for _, v, _, _ in k_versions] == ["null"] + ids[::-1], k_versions
assert body(b, V, "k", "null") == b"suspended-2"
b.put_bucket_versioning(Bucket=V, VersioningConfiguration={"Status": "Enabled"})

# Object lock.
L = f"lock-{stamp}"
a.create_bucket(Bucket=L, ObjectLockEnabledForBucket=True)
assert versioning(b, L) == "Enabled"
assert code(a.put_bucket_versioning, Bucket=L,
            VersioningConfiguration={"Status": "Suspended"}) == ("InvalidBucketState", 409)
a.put_object_lock_configuration(Bucket=L, ObjectLockConfiguration={
    "ObjectLockEnabled": "Enabled",
    "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}}})
got = b.get_object_lock_configuration(Bucket=L)["ObjectLockConfiguration"]
assert got["Rule"]["DefaultRetention"] == {"Mode": "GOVERNANCE", "Days": 1}, got
gov = a.put_object(Bucket=L, Key="gov", Body=b"governed")["VersionId"]
h = b.head_object(Bucket=L, Key="gov")
assert h["ObjectLockMode"] == "GOVERNANCE", h
assert code(b.delete_object, Bucket=L, Key="gov", VersionId=gov) == ("AccessDenied", 403)
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
comp = a.put_object(Bucket=L, Key="comp", Body=b"complied", ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=until)["VersionId"]
assert code(b.delete_object, Bucket=L, Key="comp", VersionId=comp,
            BypassGovernanceRetention=True) == ("AccessDenied", 403)
assert code(a.put_object_retention, Bucket=L, Key="comp", VersionId=comp,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}) == ("AccessDenied", 403)
held = a.put_object(Bucket=L, Key="held", Body=b"held", ObjectLockLegalHoldStatus="ON")["VersionId"]
a.put_object_retention(Bucket=L, Key="held", VersionId=held, BypassGovernanceRetention=True,
                       Retention={})
assert b.get_object_legal_hold(Bucket=L, Key="held", VersionId=held)["LegalHold"]["Status"] == "ON"
assert code(b.delete_object, Bucket=L, Key="held", VersionId=held,
            BypassGovernanceRetention=True) == ("AccessDenied", 403)
# A simple delete of a locked object only adds a marker: allowed.
assert a.delete_object(Bucket=L, Key="gov")["DeleteMarker"] is True
assert code(a.put_object, Bucket=V, Key="x", Body=b"", ObjectLockLegalHoldStatus="ON")[0] == "InvalidArgument"

# Lifecycle configuration round trip.
rules = [{"ID": "logs", "Status": "Enabled", "Filter": {"Prefix": "logs/"},
          "Expiration": {"Days": 30},
          "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2},
          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]
a.put_bucket_lifecycle_configuration(Bucket=V, LifecycleConfiguration={"Rules": rules})
got = b.get_bucket_lifecycle_configuration(Bucket=V)["Rules"]
assert got[0]["ID"] == "logs" and got[0]["Expiration"] == {"Days": 30}, got
assert got[0]["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] == 2, got
b.delete_bucket_lifecycle(Bucket=V)
assert code(a.get_bucket_lifecycle_configuration, Bucket=V) == ("NoSuchLifecycleConfiguration", 404)

recorded = {
    "k": [(vid, f"v{i}".encode()) for i, vid in enumerate(ids)],
    "big": [(big_vid, None)],
}
before = {bucket: all_versions(a, bucket) for bucket in (V, P, L)}
print("phase 1 done")

# ---- the leader is killed here ---------------------------------------------------------------
if PHASE1 and FAILOVER:
    open(PHASE1, "w").write("1")
    deadline = time.time() + 240
    while not os.path.exists(FAILOVER):
        assert time.time() < deadline, "no failover signal"
        time.sleep(0.2)
    # The gateways find the new leader on their own; a request in flight at the election may
    # be refused with 503 (retried, as S3 clients do).
    a = client(A_URL, attempts=10)
    b = client(B_URL, attempts=10)

# ---- phase 2: everything acknowledged is there, and versioning goes on -----------------------
for c in (a, b):
    for bucket, want in before.items():
        assert all_versions(c, bucket) == want, (bucket, all_versions(c, bucket), want)
    for vid, data in recorded["k"]:
        assert body(c, V, "k", vid) == data
    assert c.head_object(Bucket=V, Key="big", VersionId=big_vid)["ContentLength"] == 5 * MIB + 4
new = b.put_object(Bucket=V, Key="k", Body=b"after-failover")["VersionId"]
assert body(a, V, "k") == b"after-failover" and body(a, V, "k", new) == b"after-failover"
m = a.delete_object(Bucket=V, Key="k")["VersionId"]
assert code(b.get_object, Bucket=V, Key="k")[1] == 404
b.delete_object(Bucket=V, Key="k", VersionId=m)
assert body(a, V, "k") == b"after-failover"
assert code(a.delete_object, Bucket=L, Key="comp", VersionId=comp,
            BypassGovernanceRetention=True) == ("AccessDenied", 403)
# Clean up what is not locked: every version of the versioned buckets.
for bucket in (V, P):
    objs = [{"Key": k, "VersionId": v} for k, v, _, _ in all_versions(a, bucket)]
    for i in range(0, len(objs), 1000):
        r = a.delete_objects(Bucket=bucket, Delete={"Objects": objs[i:i + 1000]})
        assert not r.get("Errors"), r
    assert all_versions(b, bucket) == []
    a.delete_bucket(Bucket=bucket)
assert code(a.delete_bucket, Bucket=L) == ("BucketNotEmpty", 409)
print("versions suite: ok")
