"""S3 tagging (issue 15), driven by boto3 against two gateways ($S3_ENDPOINT writes,
$S3_ENDPOINT_2 reads): object tags (Put/Get/DeleteObjectTagging, by version too), S3's limits
and error codes, x-amz-tagging on PUT, CreateMultipartUpload and CopyObject with the tagging
directive, x-amz-tagging-count on GET/HEAD, bucket tags, and a lifecycle rule with a tag
filter that expires only the tagged objects (the cluster runs with a short lifecycle day,
ANODE_LIFECYCLE_DAY_SECS).

Run by `tests/s3_tagging.rs` against a real multi-process cluster. By hand:
  S3_ENDPOINT=... S3_ENDPOINT_2=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  python3 tests/s3/tagging_suite.py
Prints "tagging suite: ok" and exits 0 only if every check passed.
"""
import hashlib
import os
import time
import urllib.error
import urllib.request

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from common import s3_client

A_URL = os.environ["S3_ENDPOINT"]
B_URL = os.environ.get("S3_ENDPOINT_2", A_URL)
KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]
SECRET = os.environ["AWS_SECRET_ACCESS_KEY"]
MIB = 1024 * 1024


def client(endpoint):
    return s3_client(endpoint, access_key=KEY_ID, secret_key=SECRET)


a = client(A_URL)
b = client(B_URL)


def code(fn, *args, **kw):
    """The S3 error code and HTTP status of a call expected to fail."""
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} {kw} did not fail")


def raw(method, path, body=b""):
    """A SigV4-signed request with a body boto3 would not send (malformed XML): status, body."""
    req = AWSRequest(method=method, url=f"{A_URL}{path}", data=body,
                     headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", "us-east-1").add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body or None, method=method,
                               headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def tagset(n, prefix=""):
    return {"TagSet": [{"Key": f"{prefix}{i}", "Value": f"{i}"} for i in range(n)]}


def tags_of(c, bucket, key, vid=None):
    kw = {"VersionId": vid} if vid else {}
    return c.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]


def count_header(resp):
    return resp["ResponseMetadata"]["HTTPHeaders"].get("x-amz-tagging-count")


stamp = str(int(time.time()))
T = f"tag-{stamp}"
a.create_bucket(Bucket=T)

# ---- x-amz-tagging on PUT, GET/HEAD count, Put/Get/DeleteObjectTagging ----------------------
a.put_object(Bucket=T, Key="k", Body=b"data", Tagging="foo=bar&bar")
assert tags_of(b, T, "k") == [{"Key": "bar", "Value": ""}, {"Key": "foo", "Value": "bar"}]
h = b.head_object(Bucket=T, Key="k")
assert count_header(h) == "2", h["ResponseMetadata"]["HTTPHeaders"]
g = b.get_object(Bucket=T, Key="k")
assert g["TagCount"] == 2 and g["Body"].read() == b"data"
etag, mtime = h["ETag"], h["LastModified"]

r = a.put_object_tagging(Bucket=T, Key="k", Tagging=tagset(2))
assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
assert tags_of(b, T, "k") == tagset(2)["TagSet"]
h = b.head_object(Bucket=T, Key="k")
assert (h["ETag"], h["LastModified"]) == (etag, mtime), "tagging changed ETag or mtime"
a.put_object_tagging(Bucket=T, Key="k", Tagging={"TagSet": [{"Key": "key3", "Value": "val3"}]})
assert tags_of(b, T, "k") == [{"Key": "key3", "Value": "val3"}]
r = a.delete_object_tagging(Bucket=T, Key="k")
assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
assert tags_of(b, T, "k") == []
assert count_header(b.head_object(Bucket=T, Key="k")) is None
assert code(b.get_object_tagging, Bucket=T, Key="missing") == ("NoSuchKey", 404)
assert code(a.put_object_tagging, Bucket=T, Key="missing", Tagging=tagset(1)) == ("NoSuchKey", 404)

# ---- limits and errors (s3-tests: test_put_max_tags, test_put_excess_*_tags) ---------------
a.put_object_tagging(Bucket=T, Key="k", Tagging=tagset(10))
assert tags_of(b, T, "k") == tagset(10)["TagSet"]
a.delete_object_tagging(Bucket=T, Key="k")
big = {"TagSet": [{"Key": f"{i}" + "k" * 127, "Value": "v" * 256} for i in range(10)]}
a.put_object_tagging(Bucket=T, Key="k", Tagging=big)
assert sorted(tags_of(b, T, "k"), key=lambda t: t["Key"]) == big["TagSet"]
a.delete_object_tagging(Bucket=T, Key="k")
bad = [
    tagset(11),
    {"TagSet": [{"Key": "k" * 129, "Value": "v"}]},
    {"TagSet": [{"Key": "k", "Value": "v" * 257}]},
    {"TagSet": [{"Key": "k", "Value": "1"}, {"Key": "k", "Value": "2"}]},
    {"TagSet": [{"Key": "aws:reserved", "Value": "1"}]},
]  # (an empty key: boto3 refuses it before sending; the gateway's unit tests cover it)
for t in bad:
    assert code(a.put_object_tagging, Bucket=T, Key="k", Tagging=t) == ("InvalidTag", 400), t
    assert tags_of(b, T, "k") == [], "a refused tag set changed the object"
# Characters, not bytes: 128 two-byte characters make a valid key.
a.put_object_tagging(Bucket=T, Key="k", Tagging={"TagSet": [{"Key": "é" * 128, "Value": "ü" * 256}]})
assert tags_of(b, T, "k") == [{"Key": "é" * 128, "Value": "ü" * 256}]
status, doc = raw("PUT", f"/{T}/k?tagging", b"<Tagging><TagSet><Tag><Key>x</Key>")
assert status == 400 and b"<Code>MalformedXML</Code>" in doc, (status, doc)
status, doc = raw("PUT", f"/{T}/k?tagging", b"<Tagging><TagSet><Tag><Key>x</Key></Tag></TagSet></Tagging>")
assert status == 400 and b"<Code>MalformedXML</Code>" in doc, (status, doc)
assert code(a.put_object, Bucket=T, Key="k2", Body=b"x",
            Tagging="&".join(f"{i}={i}" for i in range(11))) == ("InvalidTag", 400)
assert code(a.put_object, Bucket=T, Key="k2", Body=b"x", Tagging="a=1&a=2") == ("InvalidArgument", 400)
assert code(b.head_object, Bucket=T, Key="k2") == ("404", 404), "a refused put wrote the object"

# ---- versions: tags per version, id/ETag/mtime unchanged, x-amz-version-id ------------------
V = f"tagv-{stamp}"
a.create_bucket(Bucket=V)
a.put_bucket_versioning(Bucket=V, VersioningConfiguration={"Status": "Enabled"})
v1 = a.put_object(Bucket=V, Key="k", Body=b"one", Tagging="gen=1")["VersionId"]
v2 = a.put_object(Bucket=V, Key="k", Body=b"two")["VersionId"]
before = b.head_object(Bucket=V, Key="k", VersionId=v1)
r = a.put_object_tagging(Bucket=V, Key="k", VersionId=v1, Tagging={"TagSet": [{"Key": "old", "Value": "yes"}]})
assert r["VersionId"] == v1, r
assert tags_of(b, V, "k", v1) == [{"Key": "old", "Value": "yes"}]
assert tags_of(b, V, "k") == [] and tags_of(b, V, "k", v2) == []
r = b.get_object_tagging(Bucket=V, Key="k")
assert r["VersionId"] == v2, r
after = b.head_object(Bucket=V, Key="k", VersionId=v1)
assert count_header(after) == "1"
assert (after["VersionId"], after["ETag"], after["LastModified"]) == (
    before["VersionId"], before["ETag"], before["LastModified"]), (before, after)
versions = [v["VersionId"] for v in b.list_object_versions(Bucket=V)["Versions"]]
assert versions == [v2, v1], versions
r = a.delete_object_tagging(Bucket=V, Key="k", VersionId=v1)
assert r["VersionId"] == v1 and tags_of(b, V, "k", v1) == []
assert code(a.put_object_tagging, Bucket=V, Key="k", VersionId="0123456789abcdef",
            Tagging=tagset(1)) == ("NoSuchVersion", 404)

# ---- copies: the tagging directive ---------------------------------------------------------
a.put_object(Bucket=T, Key="src", Body=b"source", Tagging="color=blue&size=L")
src = {"Bucket": T, "Key": "src"}
a.copy_object(Bucket=T, Key="copy-default", CopySource=src)
assert tags_of(b, T, "copy-default") == [{"Key": "color", "Value": "blue"}, {"Key": "size", "Value": "L"}]
a.copy_object(Bucket=T, Key="copy-copy", CopySource=src, TaggingDirective="COPY", Tagging="x=1")
assert tags_of(b, T, "copy-copy") == [{"Key": "color", "Value": "blue"}, {"Key": "size", "Value": "L"}]
a.copy_object(Bucket=T, Key="copy-replace", CopySource=src, TaggingDirective="REPLACE", Tagging="new=tag")
assert tags_of(b, T, "copy-replace") == [{"Key": "new", "Value": "tag"}]
a.copy_object(Bucket=T, Key="copy-none", CopySource=src, TaggingDirective="REPLACE")
assert tags_of(b, T, "copy-none") == []
assert count_header(b.head_object(Bucket=T, Key="copy-none")) is None
# Metadata REPLACE keeps the source's tags unless the tagging directive says otherwise.
a.copy_object(Bucket=T, Key="copy-meta", CopySource=src, MetadataDirective="REPLACE",
              ContentType="text/plain")
assert len(tags_of(b, T, "copy-meta")) == 2
assert code(a.copy_object, Bucket=T, Key="copy-bad", CopySource=src,
            TaggingDirective="REPLACE", Tagging="aws:x=1") == ("InvalidTag", 400)

# ---- multipart: tags given at creation reach the object -------------------------------------
up = a.create_multipart_upload(Bucket=T, Key="mp", Tagging="Hello=World&foo=bar")["UploadId"]
parts = []
for n, data in [(1, b"a" * (5 * MIB)), (2, b"b" * 10)]:
    e = a.upload_part(Bucket=T, Key="mp", UploadId=up, PartNumber=n, Body=data)["ETag"]
    parts.append({"PartNumber": n, "ETag": e})
a.complete_multipart_upload(Bucket=T, Key="mp", UploadId=up, MultipartUpload={"Parts": parts})
assert tags_of(b, T, "mp") == [{"Key": "Hello", "Value": "World"}, {"Key": "foo", "Value": "bar"}]
assert count_header(b.head_object(Bucket=T, Key="mp")) == "2"
assert code(a.create_multipart_upload, Bucket=T, Key="mp2",
            Tagging="&".join(f"{i}=" for i in range(11))) == ("InvalidTag", 400)

# ---- bucket tags -----------------------------------------------------------------------------
assert code(b.get_bucket_tagging, Bucket=T) == ("NoSuchTagSet", 404)
a.put_bucket_tagging(Bucket=T, Tagging={"TagSet": [{"Key": "Hello", "Value": "World"}]})
assert b.get_bucket_tagging(Bucket=T)["TagSet"] == [{"Key": "Hello", "Value": "World"}]
a.put_bucket_tagging(Bucket=T, Tagging=tagset(50, "t"))
assert len(b.get_bucket_tagging(Bucket=T)["TagSet"]) == 50
assert code(a.put_bucket_tagging, Bucket=T, Tagging=tagset(51, "t")) == ("InvalidTag", 400)
assert len(b.get_bucket_tagging(Bucket=T)["TagSet"]) == 50
r = a.delete_bucket_tagging(Bucket=T)
assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
assert code(b.get_bucket_tagging, Bucket=T) == ("NoSuchTagSet", 404)
assert code(a.put_bucket_tagging, Bucket=f"nope-{stamp}", Tagging=tagset(1)) == ("NoSuchBucket", 404)

# ---- lifecycle: a tag filter expires only the tagged objects ---------------------------------
L = f"taglc-{stamp}"
a.create_bucket(Bucket=L)
a.put_object(Bucket=L, Key="tmp/tagged", Body=b"x", Tagging="class=tmp&other=1")
a.put_object(Bucket=L, Key="tmp/later", Body=b"x")
a.put_object_tagging(Bucket=L, Key="tmp/later", Tagging={"TagSet": [{"Key": "class", "Value": "tmp"}]})
a.put_object(Bucket=L, Key="tmp/other-value", Body=b"x", Tagging="class=keep")
a.put_object(Bucket=L, Key="tmp/untagged", Body=b"x")
a.put_object(Bucket=L, Key="keep/tagged", Body=b"x", Tagging="class=tmp")
a.put_bucket_lifecycle_configuration(Bucket=L, LifecycleConfiguration={"Rules": [{
    "ID": "tmp-tagged",
    "Status": "Enabled",
    "Filter": {"And": {"Prefix": "tmp/", "Tags": [{"Key": "class", "Value": "tmp"}]}},
    "Expiration": {"Days": 1},
}]})


def keys(bucket):
    return sorted(o["Key"] for o in b.list_objects_v2(Bucket=bucket).get("Contents", []))


deadline = time.time() + 120
while time.time() < deadline:
    if "tmp/tagged" not in keys(L) and "tmp/later" not in keys(L):
        break
    time.sleep(1)
else:
    raise AssertionError(f"the tagged objects never expired: {keys(L)}")
# A few more passes: the others stay.
time.sleep(5)
assert keys(L) == ["keep/tagged", "tmp/other-value", "tmp/untagged"], keys(L)

print("tagging suite: ok")
