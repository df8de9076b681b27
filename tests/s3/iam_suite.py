"""Users, bucket ownership and quotas (issue 19 part A), driven by boto3 against two gateways
($S3_ENDPOINT, $S3_ENDPOINT_2) of a real multi-process cluster. Users and keys are made with
`anode ctl` ($ANODE_BIN, with $ANODE_CTL_ARGS: the masters and the admin certificates).

Run by `tests/s3_iam.rs`. Prints "iam suite: ok" and exits 0 only if every check passed.
The matrix it checks is printed as it goes (operation x principal -> status).
"""
import json
import os
import subprocess
import sys
import threading
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINTS = [os.environ["S3_ENDPOINT"], os.environ["S3_ENDPOINT_2"]]
ADMIN_KEY = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
ANODE = os.environ["ANODE_BIN"]
CTL_ARGS = json.loads(os.environ["ANODE_CTL_ARGS"])
MIB = 1024 * 1024


def ctl(*args):
    out = subprocess.run(
        [ANODE, "ctl", *CTL_ARGS, "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, f"anode ctl {args}: {out.stderr}"
    return json.loads(out.stdout)


def client(key, endpoint=ENDPOINTS[0]):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version="s3v4",
            connect_timeout=10,
            read_timeout=60,
        ),
    )


def new_key(user, *extra):
    k = ctl("keys", "create", "--user", user, *extra)
    assert k["user"] == user, k
    return (k["access_key"], k["secret_key"])


def status_of(fn):
    """The HTTP status of a boto3 call (200 family on success) and the error code."""
    try:
        fn()
        return 200, ""
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


MATRIX = []


def expect(who, op, fn, status, code=None):
    got, got_code = status_of(fn)
    MATRIX.append((op, who, got, got_code))
    print(f"  {op:<28} {who:<6} -> {got} {got_code}")
    assert got == status, f"{who} {op}: {got} {got_code}, want {status}"
    if code is not None:
        assert got_code == code, f"{who} {op}: {got_code}, want {code}"


def main():
    for name, admin in [("alice", False), ("bob", False), ("root", True)]:
        args = ["users", "create", name] + (["--admin"] if admin else [])
        assert ctl(*args)["created"] == name
    users = {u["name"]: u for u in ctl("users", "list")}
    assert users["root"]["admin"] and not users["alice"]["admin"], users
    alice_key, bob_key, root_key = new_key("alice"), new_key("bob"), new_key("root")
    alice, bob, root, admin = (client(k) for k in (alice_key, bob_key, root_key, ADMIN_KEY))

    # Alice's bucket with an object, an open multipart upload; Bob's bucket with an object.
    alice.create_bucket(Bucket="alice-data")
    alice.put_object(Bucket="alice-data", Key="k", Body=b"alice's")
    upload = alice.create_multipart_upload(Bucket="alice-data", Key="big")["UploadId"]
    alice.upload_part(Bucket="alice-data", Key="big", UploadId=upload, PartNumber=1, Body=b"p" * 10)
    bob.create_bucket(Bucket="bob-data")
    bob.put_object(Bucket="bob-data", Key="k", Body=b"bob's")
    admin.create_bucket(Bucket="admin-data")

    print("matrix: operation x principal -> status")
    ops = {
        "GetObject": lambda c: c.get_object(Bucket="alice-data", Key="k")["Body"].read(),
        "HeadObject": lambda c: c.head_object(Bucket="alice-data", Key="k"),
        "PutObject": lambda c: c.put_object(Bucket="alice-data", Key="new", Body=b"x"),
        "ListObjectsV2": lambda c: c.list_objects_v2(Bucket="alice-data"),
        "ListObjects": lambda c: c.list_objects(Bucket="alice-data"),
        "HeadBucket": lambda c: c.head_bucket(Bucket="alice-data"),
        "ListMultipartUploads": lambda c: c.list_multipart_uploads(Bucket="alice-data"),
        "CreateMultipartUpload": lambda c: c.create_multipart_upload(Bucket="alice-data", Key="m2"),
        "UploadPart": lambda c: c.upload_part(
            Bucket="alice-data", Key="big", UploadId=upload, PartNumber=2, Body=b"q"
        ),
        "ListParts": lambda c: c.list_parts(Bucket="alice-data", Key="big", UploadId=upload),
        "CopyObject(from A)": lambda c: c.copy_object(
            Bucket="bob-data", Key="stolen", CopySource={"Bucket": "alice-data", "Key": "k"}
        ),
        "CopyObject(into A)": lambda c: c.copy_object(
            Bucket="alice-data", Key="planted", CopySource={"Bucket": "bob-data", "Key": "k"}
        ),
        "DeleteObjects": lambda c: c.delete_objects(
            Bucket="alice-data", Delete={"Objects": [{"Key": "k"}]}
        ),
        "DeleteObject": lambda c: c.delete_object(Bucket="alice-data", Key="k"),
        "CompleteMultipartUpload": lambda c: c.complete_multipart_upload(
            Bucket="alice-data",
            Key="big",
            UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
        ),
        "AbortMultipartUpload": lambda c: c.abort_multipart_upload(
            Bucket="alice-data", Key="big", UploadId=upload
        ),
        "DeleteBucket": lambda c: c.delete_bucket(Bucket="alice-data"),
    }
    # Bob, on both gateways: 403 for every operation (HEAD has no body, so no code).
    for i, endpoint in enumerate(ENDPOINTS):
        b = client(bob_key, endpoint)
        for op, fn in ops.items():
            code = None if op.startswith("Head") else "AccessDenied"
            expect(f"bob@{i + 1}", op, lambda: fn(b), 403, code)
    # Nothing Bob tried happened.
    assert alice.get_object(Bucket="alice-data", Key="k")["Body"].read() == b"alice's"
    expect("bob", "HeadObject(bob-data/stolen)", lambda: bob.head_object(Bucket="bob-data", Key="stolen"), 404)
    assert [p["PartNumber"] for p in alice.list_parts(Bucket="alice-data", Key="big", UploadId=upload)["Parts"]] == [1]
    # The admin user and the administrator key reach Alice's bucket; Alice reaches it.
    for who, c in [("root", root), ("admin", admin), ("alice", alice)]:
        for op in ["GetObject", "HeadObject", "ListObjectsV2", "ListParts", "HeadBucket"]:
            expect(who, op, lambda: ops[op](c), 200)
    expect("root", "CopyObject(into A)", lambda: ops["CopyObject(into A)"](root), 200)
    # Bob cannot reach the administrators' bucket either; root can.
    expect("bob", "ListObjectsV2(admin)", lambda: bob.list_objects_v2(Bucket="admin-data"), 403)
    expect("root", "ListObjectsV2(admin)", lambda: root.list_objects_v2(Bucket="admin-data"), 200)

    # ListBuckets: one's own (all for admins), with the caller as owner.
    def names(c):
        r = c.list_buckets()
        return sorted(b["Name"] for b in r["Buckets"]), r["Owner"]["ID"]

    assert names(alice) == (["alice-data"], "alice"), names(alice)
    assert names(bob) == (["bob-data"], "bob"), names(bob)
    for c in (root, admin):
        assert names(c)[0] == ["admin-data", "alice-data", "bob-data"], names(c)
    # Creating an existing bucket.
    expect("bob", "CreateBucket(A's)", lambda: bob.create_bucket(Bucket="alice-data"), 409, "BucketAlreadyExists")
    expect("alice", "CreateBucket(own)", lambda: alice.create_bucket(Bucket="alice-data"), 409, "BucketAlreadyOwnedByYou")
    # Presigned URLs act as their signing key.
    import urllib.request, urllib.error

    url = bob.generate_presigned_url("get_object", Params={"Bucket": "alice-data", "Key": "k"}, ExpiresIn=60)
    try:
        urllib.request.urlopen(url, timeout=10)
        raise AssertionError("bob's presigned URL read alice's object")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    url = alice.generate_presigned_url("get_object", Params={"Bucket": "alice-data", "Key": "k"}, ExpiresIn=60)
    assert urllib.request.urlopen(url, timeout=10).read() == b"alice's"

    # Users owning things cannot be deleted.
    out = subprocess.run([ANODE, "ctl", *CTL_ARGS, "users", "delete", "alice"], capture_output=True, text=True)
    assert out.returncode != 0 and "UserNotEmpty" in out.stderr, out.stderr

    # Keys: disabled keys are refused (a key the gateway never cached: at once); expired keys.
    spare = new_key("alice")
    ctl("keys", "disable", spare[0])
    expect("alice*", "ListBuckets(disabled key)", lambda: client(spare).list_buckets(), 403, "InvalidAccessKeyId")
    ctl("keys", "enable", spare[0])
    # Enabled again: within the key cache lifetime (10 s) at the latest.
    deadline = time.time() + 15
    while status_of(lambda: client(spare).list_buckets())[0] != 200:
        assert time.time() < deadline, "re-enabled key still refused after 15 s"
        time.sleep(0.2)
    short = new_key("alice", "--expires-in", "2s")
    deadline = time.time() + 15
    while status_of(lambda: client(short).list_buckets())[0] != 403:
        assert time.time() < deadline, "expired key still accepted"
        time.sleep(0.2)

    quotas(alice, bob)
    print(f"{len(MATRIX)} checks")
    print("iam suite: ok")


def quotas(alice, bob):
    # Bucket quota on objects, crossed from both gateways at once: exactly the quota commits.
    alice.create_bucket(Bucket="alice-quota")
    limit = 12
    ctl("buckets", "quota", "alice-quota", "--max-objects", str(limit))
    results = {"ok": 0, "quota": 0, "other": []}
    lock = threading.Lock()
    alice_key = (alice._request_signer._credentials.access_key, alice._request_signer._credentials.secret_key)

    def writer(endpoint, tag):
        c = client(alice_key, endpoint)
        for i in range(limit):
            st, code = status_of(lambda: c.put_object(Bucket="alice-quota", Key=f"{tag}-{i}", Body=b"x" * 100))
            with lock:
                if st == 200:
                    results["ok"] += 1
                elif st == 403 and code == "QuotaExceeded":
                    results["quota"] += 1
                else:
                    results["other"].append((st, code))

    threads = [
        threading.Thread(target=writer, args=(ENDPOINTS[i % 2], f"w{i}")) for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(f"  quota race: {results}")
    assert results["other"] == [], results
    assert (results["ok"], results["quota"]) == (limit, 3 * limit), results
    keys = alice.list_objects_v2(Bucket="alice-quota")["KeyCount"]
    assert keys == limit, keys
    listed = {b["name"]: b for b in ctl("buckets", "list")}
    assert listed["alice-quota"]["usage"] == {"objects": limit, "bytes": 100 * limit}, listed
    # An overwrite within the quota works; a delete frees room.
    alice.put_object(Bucket="alice-quota", Key="w0-0", Body=b"y")
    expect("alice", "PutObject(over quota)", lambda: alice.put_object(Bucket="alice-quota", Key="more", Body=b"z"), 403, "QuotaExceeded")
    alice.delete_object(Bucket="alice-quota", Key="w0-0")
    alice.put_object(Bucket="alice-quota", Key="more", Body=b"z")

    # User quota on bytes, over all of Bob's buckets; multipart completion and copies count.
    ctl("users", "quota", "bob", "--max-bytes", str(6 * MIB))
    bob.create_bucket(Bucket="bob-two")
    bob.put_object(Bucket="bob-two", Key="a", Body=b"a" * (5 * MIB))
    expect("bob", "CopyObject(over quota)", lambda: bob.copy_object(Bucket="bob-data", Key="copy", CopySource={"Bucket": "bob-two", "Key": "a"}), 403, "QuotaExceeded")
    up = bob.create_multipart_upload(Bucket="bob-data", Key="mp")["UploadId"]
    etag = bob.upload_part(Bucket="bob-data", Key="mp", UploadId=up, PartNumber=1, Body=b"m" * (2 * MIB))["ETag"]
    expect("bob", "CompleteMultipart(over)", lambda: bob.complete_multipart_upload(Bucket="bob-data", Key="mp", UploadId=up, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}), 403, "QuotaExceeded")
    expect("bob", "HeadObject(not committed)", lambda: bob.head_object(Bucket="bob-data", Key="mp"), 404)
    users = {u["name"]: u for u in ctl("users", "list")}
    assert users["bob"]["usage"]["bytes"] == 5 * MIB + len(b"bob's"), users["bob"]
    status = ctl("status")
    assert any(u["name"] == "bob" for u in status["usage"]["users"]), status["usage"]


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 (print everything, fail)
        import traceback

        traceback.print_exc()
        print(f"iam suite: FAILED: {e}")
        sys.exit(1)
