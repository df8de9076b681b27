"""Stored checksums, GetObjectAttributes, conditional writes and deletes, repeated
CompleteMultipartUpload and partNumber reads (issue 15), driven by boto3 against a real cluster.

Run by `tests/s3_checksums.rs`. By hand:
  S3_ENDPOINT=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  python3 tests/s3/checksums_suite.py
Prints "checksums suite: ok" and exits 0 only if every check passed.
"""
import base64
import datetime
import hashlib
import os
import zlib

from botocore.exceptions import ClientError

from common import s3_client

URL = os.environ["S3_ENDPOINT"]
MIB = 1024 * 1024

s3 = s3_client(URL)


def code(fn, **kw):
    """(S3 error code, HTTP status) of a call expected to fail."""
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} {kw} did not fail")


def b64(b):
    return base64.b64encode(b).decode()


def crc_reflected(data, poly, width):
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return (crc ^ mask).to_bytes(width // 8, "big")


def digest(alg, data):
    if alg == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    if alg == "CRC32C":
        return crc_reflected(data, 0x82F63B78, 32)
    if alg == "CRC64NVME":
        return crc_reflected(data, 0x9A6C9329AC4BC9B5, 64)
    if alg == "SHA1":
        return hashlib.sha1(data).digest()
    return hashlib.sha256(data).digest()


assert digest("CRC32C", b"123456789").hex() == "e3069283"
assert digest("CRC64NVME", b"123456789").hex() == "ae8b14860a799888"

BUCKET = "checksums-suite"
VBUCKET = "checksums-suite-versioned"
s3.create_bucket(Bucket=BUCKET)
s3.create_bucket(Bucket=VBUCKET)
s3.put_bucket_versioning(Bucket=VBUCKET, VersioningConfiguration={"Status": "Enabled"})


def check_single_put_checksums():
    body = b"checksummed body " * 1000
    # boto3 computes CRC32/SHA1/SHA256 itself (header or aws-chunked trailer).
    for alg in ["CRC32", "SHA1", "SHA256"]:
        key = f"single-{alg}"
        want = b64(digest(alg, body))
        r = s3.put_object(Bucket=BUCKET, Key=key, Body=body, ChecksumAlgorithm=alg)
        assert r[f"Checksum{alg}"] == want, (alg, r)
        for fn in (s3.head_object, s3.get_object):
            r = fn(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
            assert r[f"Checksum{alg}"] == want, (alg, fn.__name__)
            assert r["ChecksumType"] == "FULL_OBJECT"
        r = s3.head_object(Bucket=BUCKET, Key=key)
        assert f"Checksum{alg}" not in r, "no checksum without x-amz-checksum-mode"
    # CRC32C and CRC64NVME need awscrt in boto3: send the values computed here.
    for alg in ["CRC32C", "CRC64NVME"]:
        key = f"single-{alg}"
        want = b64(digest(alg, body))
        r = s3.put_object(Bucket=BUCKET, Key=key, Body=body, **{f"Checksum{alg}": want})
        assert r[f"Checksum{alg}"] == want, (alg, r)
        r = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert r[f"Checksum{alg}"] == want, alg
        bad = b64(digest(alg, body + b"x"))
        assert code(s3.put_object, Bucket=BUCKET, Key=key + "-bad", Body=body,
                    **{f"Checksum{alg}": bad}) == ("BadDigest", 400), alg
        assert code(s3.head_object, Bucket=BUCKET, Key=key + "-bad")[1] == 404
    # A wrong declared SHA256 fails the upload and stores nothing.
    assert code(s3.put_object, Bucket=BUCKET, Key="bad-sha", Body=body,
                ChecksumSHA256=b64(digest("SHA256", b"other"))) == ("BadDigest", 400)
    # A range read has no checksum; the whole object does.
    r = s3.get_object(Bucket=BUCKET, Key="single-SHA256", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert "ChecksumSHA256" not in r


def upload(key, alg, kind, parts, bucket=BUCKET, send_alg=True):
    kw = {}
    if alg:
        kw["ChecksumAlgorithm"] = alg
    if kind:
        kw["ChecksumType"] = kind
    r = s3.create_multipart_upload(Bucket=bucket, Key=key, **kw)
    uid = r["UploadId"]
    if alg:
        assert r["ChecksumAlgorithm"] == alg, r
    done = []
    for n, data in enumerate(parts, 1):
        value = b64(digest(alg, data)) if alg else None
        pkw = {}
        if alg and send_alg and alg in ("CRC32", "SHA1", "SHA256"):
            pkw["ChecksumAlgorithm"] = alg
        elif alg:
            pkw[f"Checksum{alg}"] = value
        r = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data, **pkw)
        p = {"PartNumber": n, "ETag": r["ETag"]}
        if alg:
            assert r[f"Checksum{alg}"] == value, (alg, n)
            p[f"Checksum{alg}"] = value
        done.append(p)
    return uid, done


PART1 = b"a" * (5 * MIB)
PART2 = b"tail of the object"


def check_multipart_checksums():
    # COMPOSITE: the checksum of the part checksums, "-N".
    for alg in ["SHA256", "SHA1", "CRC32", "CRC32C"]:
        key = f"mp-composite-{alg}"
        uid, parts = upload(key, alg, None, [PART1, PART2])
        want = b64(digest(alg, digest(alg, PART1) + digest(alg, PART2))) + "-2"
        r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})
        assert r[f"Checksum{alg}"] == want, (alg, r)
        assert r["ChecksumType"] == "COMPOSITE"
        h = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert h[f"Checksum{alg}"] == want and h["ChecksumType"] == "COMPOSITE"
        # partNumber reads answer the part's own checksum (boto3 validates it).
        g = s3.get_object(Bucket=BUCKET, Key=key, PartNumber=2, ChecksumMode="ENABLED")
        assert g["Body"].read() == PART2
        assert g[f"Checksum{alg}"] == b64(digest(alg, PART2))
    # FULL_OBJECT: the CRC of the whole body, combined from the parts.
    for alg in ["CRC32", "CRC32C", "CRC64NVME"]:
        key = f"mp-full-{alg}"
        uid, parts = upload(key, alg, "FULL_OBJECT", [PART1, PART2])
        want = b64(digest(alg, PART1 + PART2))
        r = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts},
                                         ChecksumType="FULL_OBJECT",
                                         **{f"Checksum{alg}": want})
        assert r[f"Checksum{alg}"] == want, (alg, r)
        assert r["ChecksumType"] == "FULL_OBJECT"
        g = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert g[f"Checksum{alg}"] == want and g["Body"].read() == PART1 + PART2
    # A wrong whole-object checksum with Complete, or a part checksum that is not the
    # stored one, fails and keeps the upload.
    uid, parts = upload("mp-bad", "CRC32", "FULL_OBJECT", [PART1, PART2])
    assert code(s3.complete_multipart_upload, Bucket=BUCKET, Key="mp-bad", UploadId=uid,
                MultipartUpload={"Parts": parts},
                ChecksumCRC32=b64(digest("CRC32", PART1))) == ("BadDigest", 400)
    wrong = [dict(parts[0]), dict(parts[1])]
    wrong[1]["ChecksumCRC32"] = b64(digest("CRC32", b"not it"))
    assert code(s3.complete_multipart_upload, Bucket=BUCKET, Key="mp-bad", UploadId=uid,
                MultipartUpload={"Parts": wrong}) == ("InvalidPart", 400)
    s3.complete_multipart_upload(Bucket=BUCKET, Key="mp-bad", UploadId=uid,
                                 MultipartUpload={"Parts": parts})
    # Types the algorithm does not allow.
    assert code(s3.create_multipart_upload, Bucket=BUCKET, Key="x", ChecksumAlgorithm="SHA256",
                ChecksumType="FULL_OBJECT") == ("InvalidRequest", 400)
    assert code(s3.create_multipart_upload, Bucket=BUCKET, Key="x", ChecksumAlgorithm="CRC64NVME",
                ChecksumType="COMPOSITE") == ("InvalidRequest", 400)
    r = s3.create_multipart_upload(Bucket=BUCKET, Key="x", ChecksumAlgorithm="CRC64NVME")
    assert r["ChecksumType"] == "FULL_OBJECT"
    s3.abort_multipart_upload(Bucket=BUCKET, Key="x", UploadId=r["UploadId"])
    # UploadPartCopy into an upload with an algorithm: the copied range's checksum is computed
    # (CopyPartResult carries it) and the object gets its composite checksum.
    s3.put_object(Bucket=BUCKET, Key="copy-src", Body=PART1 + PART2)
    r = s3.create_multipart_upload(Bucket=BUCKET, Key="mp-copied", ChecksumAlgorithm="CRC32")
    uid = r["UploadId"]
    c = s3.upload_part_copy(Bucket=BUCKET, Key="mp-copied", UploadId=uid, PartNumber=1,
                            CopySource={"Bucket": BUCKET, "Key": "copy-src"},
                            CopySourceRange=f"bytes=0-{len(PART1) - 1}")["CopyPartResult"]
    assert c["ChecksumCRC32"] == b64(digest("CRC32", PART1)), c
    r2 = s3.upload_part(Bucket=BUCKET, Key="mp-copied", UploadId=uid, PartNumber=2, Body=PART2,
                        ChecksumAlgorithm="CRC32")
    parts = [{"PartNumber": 1, "ETag": c["ETag"], "ChecksumCRC32": c["ChecksumCRC32"]},
             {"PartNumber": 2, "ETag": r2["ETag"], "ChecksumCRC32": r2["ChecksumCRC32"]}]
    r = s3.complete_multipart_upload(Bucket=BUCKET, Key="mp-copied", UploadId=uid,
                                     MultipartUpload={"Parts": parts})
    want = b64(digest("CRC32", digest("CRC32", PART1) + digest("CRC32", PART2))) + "-2"
    assert r["ChecksumCRC32"] == want, r


def check_attributes():
    every = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
    r = s3.get_object_attributes(Bucket=BUCKET, Key="mp-composite-SHA256", ObjectAttributes=every)
    head = s3.head_object(Bucket=BUCKET, Key="mp-composite-SHA256")
    assert r["ETag"] == head["ETag"].strip('"')
    assert r["ObjectSize"] == len(PART1) + len(PART2)
    assert r["StorageClass"] == "STANDARD"
    assert r["Checksum"]["ChecksumSHA256"].endswith("-2")
    assert r["Checksum"]["ChecksumType"] == "COMPOSITE"
    parts = r["ObjectParts"]
    assert parts["TotalPartsCount"] == 2 and not parts["IsTruncated"]
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2]
    assert parts["Parts"][1]["Size"] == len(PART2)
    assert parts["Parts"][0]["ChecksumSHA256"] == b64(digest("SHA256", PART1))
    r = s3.get_object_attributes(Bucket=BUCKET, Key="mp-composite-SHA256", ObjectAttributes=every,
                                 MaxParts=1)
    p = r["ObjectParts"]
    assert p["IsTruncated"] and p["NextPartNumberMarker"] == 1 and len(p["Parts"]) == 1
    r = s3.get_object_attributes(Bucket=BUCKET, Key="mp-composite-SHA256", ObjectAttributes=every,
                                 MaxParts=1, PartNumberMarker=1)
    assert [q["PartNumber"] for q in r["ObjectParts"]["Parts"]] == [2]
    assert not r["ObjectParts"]["IsTruncated"]
    r = s3.get_object_attributes(Bucket=BUCKET, Key="single-SHA256", ObjectAttributes=every)
    assert "ObjectParts" not in r
    assert r["Checksum"]["ChecksumSHA256"] == b64(digest("SHA256", b"checksummed body " * 1000))
    r = s3.get_object_attributes(Bucket=BUCKET, Key="single-SHA256", ObjectAttributes=["ObjectSize"])
    assert "ETag" not in r and r["ObjectSize"] == 17000
    assert code(s3.get_object_attributes, Bucket=BUCKET, Key="nope",
                ObjectAttributes=["ETag"]) == ("NoSuchKey", 404)
    # Versions and delete markers.
    v1 = s3.put_object(Bucket=VBUCKET, Key="attr", Body=b"one")["VersionId"]
    s3.put_object(Bucket=VBUCKET, Key="attr", Body=b"three")
    r = s3.get_object_attributes(Bucket=VBUCKET, Key="attr", VersionId=v1, ObjectAttributes=every)
    assert r["ObjectSize"] == 3 and r["VersionId"] == v1
    s3.delete_object(Bucket=VBUCKET, Key="attr")
    e = code(s3.get_object_attributes, Bucket=VBUCKET, Key="attr", ObjectAttributes=every)
    assert e == ("NoSuchKey", 404), e


def mp_complete(key, bucket=BUCKET, body=b"abc", **kw):
    uid, parts = upload(key, None, None, [body], bucket=bucket)
    return uid, parts, (lambda: s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}, **kw))


def check_conditional_writes():
    for bucket in (BUCKET, VBUCKET):
        key = "cond-put"
        assert code(s3.put_object, Bucket=bucket, Key=key, Body=b"1", IfMatch="*") == ("NoSuchKey", 404)
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")["ETag"]
        assert code(s3.put_object, Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*") == ("PreconditionFailed", 412)
        assert code(s3.put_object, Bucket=bucket, Key=key, Body=b"2", IfMatch="bad") == ("PreconditionFailed", 412)
        etag = s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfMatch=etag)["ETag"]
        s3.put_object(Bucket=bucket, Key=key, Body=b"3", IfMatch="*")
        s3.delete_object(Bucket=bucket, Key=key)
        assert code(s3.put_object, Bucket=bucket, Key=key, Body=b"4", IfMatch="*") == ("NoSuchKey", 404)
        s3.put_object(Bucket=bucket, Key=key, Body=b"4", IfNoneMatch="*")
        # CompleteMultipartUpload, the upload staying open when the condition fails.
        key = "cond-mp"
        uid, parts, done = mp_complete(key, bucket, IfMatch="bad")
        assert code(done) == ("NoSuchKey", 404)
        _, _, done = mp_complete(key, bucket, IfNoneMatch="*")
        etag = done()["ETag"]
        uid, parts, done = mp_complete(key, bucket, IfNoneMatch="*")
        assert code(done) == ("PreconditionFailed", 412)
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=uid,
                                     MultipartUpload={"Parts": parts}, IfMatch=etag)
        _, _, done = mp_complete(key, bucket, IfMatch="bad")
        assert code(done) == ("PreconditionFailed", 412)
        # CopyObject guards its destination.
        assert code(s3.copy_object, Bucket=bucket, Key=key, IfNoneMatch="*",
                    CopySource={"Bucket": bucket, "Key": "cond-put"}) == ("PreconditionFailed", 412)
        assert code(s3.copy_object, Bucket=bucket, Key=key, IfMatch="bad",
                    CopySource={"Bucket": bucket, "Key": "cond-put"}) == ("PreconditionFailed", 412)
        cur = s3.head_object(Bucket=bucket, Key=key)["ETag"]
        s3.copy_object(Bucket=bucket, Key=key, IfMatch=cur,
                       CopySource={"Bucket": bucket, "Key": "cond-put"})
        s3.copy_object(Bucket=bucket, Key="cond-copy-new", IfNoneMatch="*",
                       CopySource={"Bucket": bucket, "Key": "cond-put"})
    # CopyObject with a checksum algorithm computes it over the copy.
    r = s3.copy_object(Bucket=BUCKET, Key="copied-sha1", ChecksumAlgorithm="SHA1",
                       CopySource={"Bucket": BUCKET, "Key": "single-CRC32"})
    h = s3.head_object(Bucket=BUCKET, Key="copied-sha1", ChecksumMode="ENABLED")
    assert h["ChecksumSHA1"] == b64(digest("SHA1", b"checksummed body " * 1000)), h
    # Without one, the copy keeps the source's.
    s3.copy_object(Bucket=BUCKET, Key="copied-same", CopySource={"Bucket": BUCKET, "Key": "single-CRC32"})
    h = s3.head_object(Bucket=BUCKET, Key="copied-same", ChecksumMode="ENABLED")
    assert h["ChecksumCRC32"] == b64(digest("CRC32", b"checksummed body " * 1000))


def check_conditional_deletes():
    old = datetime.datetime(2015, 1, 1)
    for bucket in (BUCKET, VBUCKET):
        r = s3.put_object(Bucket=bucket, Key="cd", Body=b"12345")
        etag = r["ETag"]
        mtime = s3.head_object(Bucket=bucket, Key="cd")["LastModified"]
        assert code(s3.delete_object, Bucket=bucket, Key="cd", IfMatch="bad") == ("PreconditionFailed", 412)
        assert code(s3.delete_object, Bucket=bucket, Key="cd", IfMatchSize=4) == ("PreconditionFailed", 412)
        assert code(s3.delete_object, Bucket=bucket, Key="cd",
                    IfMatchLastModifiedTime=old) == ("PreconditionFailed", 412)
        assert s3.head_object(Bucket=bucket, Key="cd")["ETag"] == etag
        r = s3.delete_object(Bucket=bucket, Key="cd", IfMatch=etag, IfMatchSize=5,
                             IfMatchLastModifiedTime=mtime)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
        assert code(s3.head_object, Bucket=bucket, Key="cd")[1] == 404
        if bucket == VBUCKET:
            assert r["DeleteMarker"]
            # The newest is a delete marker now: a stale etag no longer matches it.
            assert code(s3.delete_object, Bucket=bucket, Key="cd", IfMatch="bad") == ("PreconditionFailed", 412)
            v = s3.put_object(Bucket=bucket, Key="cdv", Body=b"x")["VersionId"]
            s3.put_object(Bucket=bucket, Key="cdv", Body=b"yy")
            assert code(s3.delete_object, Bucket=bucket, Key="cdv", VersionId=v,
                        IfMatchSize=2) == ("PreconditionFailed", 412)
            r = s3.delete_object(Bucket=bucket, Key="cdv", VersionId=v, IfMatchSize=1)
            assert r["VersionId"] == v
        else:
            # Nothing to delete: a no-op success.
            r = s3.delete_object(Bucket=bucket, Key="cd", IfMatch="bad")
            assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
        # DeleteObjects entries with conditions.
        etag = s3.put_object(Bucket=bucket, Key="cds", Body=b"abc")["ETag"]
        mtime = s3.head_object(Bucket=bucket, Key="cds")["LastModified"]
        for bad in ({"ETag": "bad"}, {"Size": 9999}, {"LastModifiedTime": old}):
            r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [dict(Key="cds", **bad)]})
            assert r["Errors"][0]["Code"] == "PreconditionFailed", (bad, r)
        r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
            {"Key": "cds", "ETag": etag, "Size": 3, "LastModifiedTime": mtime},
            {"Key": "plain-missing"},
        ]})
        assert sorted(d["Key"] for d in r["Deleted"]) == ["cds", "plain-missing"], r
        assert "Errors" not in r


def check_repeated_complete_and_parts():
    key = "repeat"
    uid, parts = upload(key, "SHA256", None, [PART1, PART2])
    first = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})
    again = s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})
    assert again["ETag"] == first["ETag"]
    assert again["ChecksumSHA256"] == first["ChecksumSHA256"]
    assert code(s3.complete_multipart_upload, Bucket=BUCKET, Key=key, UploadId=uid,
                MultipartUpload={"Parts": parts[:1]}) == ("NoSuchUpload", 404)
    # partNumber reads.
    for n, data in [(1, PART1), (2, PART2)]:
        for fn in (s3.head_object, s3.get_object):
            r = fn(Bucket=BUCKET, Key=key, PartNumber=n)
            assert r["PartsCount"] == 2 and r["ETag"] == first["ETag"]
            assert r["ContentLength"] == len(data)
        assert s3.get_object(Bucket=BUCKET, Key=key, PartNumber=n)["Body"].read() == data
    assert code(s3.get_object, Bucket=BUCKET, Key=key, PartNumber=3)[1] in (400, 416)
    etag = s3.put_object(Bucket=BUCKET, Key="plain", Body=b"body")["ETag"]
    r = s3.get_object(Bucket=BUCKET, Key="plain", PartNumber=1)
    assert r["ETag"] == etag and r["Body"].read() == b"body"
    assert code(s3.get_object, Bucket=BUCKET, Key="plain", PartNumber=2)[1] in (400, 416)


check_single_put_checksums()
check_multipart_checksums()
check_attributes()
check_conditional_writes()
check_conditional_deletes()
check_repeated_complete_and_parts()
print("checksums suite: ok")
