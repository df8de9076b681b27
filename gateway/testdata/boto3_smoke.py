"""S3 compatibility smoke test with boto3 against a gateway at $S3_ENDPOINT.

Run by the ignored unit test `server_tests::boto3_smoke` (in-memory backend), or by hand
against a real cluster: S3_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... \
AWS_SECRET_ACCESS_KEY=... python3 gateway/testdata/boto3_smoke.py
"""
import io
import os
import urllib.request

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["S3_ENDPOINT"]
style = os.environ.get("S3_ADDRESSING", "path")
if style == "virtual":
    # <bucket>.localhost may not resolve here: send it to loopback.
    import socket

    _resolve = socket.getaddrinfo

    def _loopback(host, *a, **kw):
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return _resolve(host, *a, **kw)

    socket.getaddrinfo = _loopback
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(
        s3={"addressing_style": style},
        retries={"max_attempts": 1},
        # Presigned URLs default to Signature V2 in botocore; Anode speaks only V4.
        signature_version="s3v4",
    ),
)
B = os.environ.get("S3_BUCKET", "smoke-bucket")


def code(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


s3.create_bucket(Bucket=B)
assert code(s3.create_bucket, Bucket=B) == "BucketAlreadyOwnedByYou"
assert B in [b["Name"] for b in s3.list_buckets()["Buckets"]]
s3.head_bucket(Bucket=B)

key = "dir/a b+c&d.txt"
s3.put_object(Bucket=B, Key=key, Body=b"hello world", ContentType="text/plain", Metadata={"color": "blue"})
r = s3.get_object(Bucket=B, Key=key)
assert r["Body"].read() == b"hello world"
assert r["ContentType"] == "text/plain" and r["Metadata"] == {"color": "blue"}, r
assert s3.get_object(Bucket=B, Key=key, Range="bytes=6-")["Body"].read() == b"world"
h = s3.head_object(Bucket=B, Key=key)
assert h["ContentLength"] == 11
assert code(s3.get_object, Bucket=B, Key=key, IfNoneMatch=h["ETag"]) == "304"
assert code(s3.get_object, Bucket=B, Key="missing") == "NoSuchKey"
assert code(s3.head_object, Bucket=B, Key="missing") == "404"

# Listings: v2 with delimiter and paging, v1, encoding.
for i in range(7):
    s3.put_object(Bucket=B, Key=f"list/{i:02d}", Body=b"x")
s3.put_object(Bucket=B, Key="list/sub/deep", Body=b"x")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=B, Prefix="list/", Delimiter="/", PaginationConfig={"PageSize": 3})
keys, prefixes = [], []
for p in pages:
    keys += [o["Key"] for o in p.get("Contents", [])]
    prefixes += [c["Prefix"] for c in p.get("CommonPrefixes", [])]
assert keys == [f"list/{i:02d}" for i in range(7)], keys
assert prefixes == ["list/sub/"], prefixes
v1 = [o["Key"] for p in s3.get_paginator("list_objects").paginate(Bucket=B, PaginationConfig={"PageSize": 4}) for o in p.get("Contents", [])]
assert key in v1 and len(v1) == 9, v1

# Multipart through the transfer manager (2 parts), then a copy.
big = os.urandom(6 * 1024 * 1024 + 123)
cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
s3.upload_fileobj(io.BytesIO(big), B, "big.bin", Config=cfg)
got = s3.get_object(Bucket=B, Key="big.bin")
assert got["Body"].read() == big
assert got["ETag"].endswith('-2"'), got["ETag"]
s3.copy_object(Bucket=B, Key="copy.bin", CopySource={"Bucket": B, "Key": "big.bin"})
assert s3.head_object(Bucket=B, Key="copy.bin")["ContentLength"] == len(big)
mpu = s3.create_multipart_upload(Bucket=B, Key="aborted")
assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=B).get("Uploads", [])] == [mpu["UploadId"]]
s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=mpu["UploadId"])

# Presigned GET.
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": key}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == b"hello world"

# Cleanup with DeleteObjects.
assert code(s3.delete_bucket, Bucket=B) == "BucketNotEmpty"
all_keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket=B) for o in p.get("Contents", [])]
resp = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": k} for k in all_keys]})
assert len(resp.get("Deleted", [])) == len(all_keys) and not resp.get("Errors"), resp
s3.delete_bucket(Bucket=B)
print("boto3 smoke: ok")
