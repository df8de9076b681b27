"""Users, bucket ownership, quotas, bucket policies, ACLs, anonymous access, PublicAccessBlock,
Object Ownership and the audit log (issue 19), driven by boto3 against two gateways
($S3_ENDPOINT, $S3_ENDPOINT_2) of a real multi-process cluster. Users and keys are made with
`anode ctl` ($ANODE_BIN, with $ANODE_CTL_ARGS: the masters and the admin certificates).
Anonymous requests are boto3 without credentials (botocore.UNSIGNED) and curl.

Every checked request is then looked up in the gateways' audit logs ($AUDIT_LOGS) by its
request id: a record with the same status and principal must exist.

Run by `tests/s3_iam.rs`. Prints "iam suite: ok" and exits 0 only if every check passed.
The matrix it checks is printed as it goes (operation x principal -> status).
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

import boto3
from botocore import UNSIGNED
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


LAST_REQUEST_ID = [None]


def remember_request_id(http_response=None, **_):
    if http_response is not None:
        LAST_REQUEST_ID[0] = http_response.headers.get("x-amz-request-id")


def client(key, endpoint=ENDPOINTS[0]):
    """A boto3 client signing with `key`, or anonymous (unsigned) when `key` is None."""
    creds = {} if key is None else {"aws_access_key_id": key[0], "aws_secret_access_key": key[1]}
    c = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            signature_version=UNSIGNED if key is None else "s3v4",
            connect_timeout=10,
            read_timeout=60,
        ),
        **creds,
    )
    c.meta.events.register("after-call.s3", remember_request_id)
    c.meta.events.register("needs-retry.s3", remember_request_id)
    return c


def canonical_id(user):
    """A user's canonical id in ACLs and Owner elements (docs/security.md)."""
    return hashlib.sha256(b"anode-canonical-user:" + user.encode()).hexdigest()


def user_arn(user):
    return f"arn:aws:iam::anode:user/{user}"


def new_key(user, *extra):
    k = ctl("keys", "create", "--user", user, *extra)
    assert k["user"] == user, k
    return (k["access_key"], k["secret_key"])


def status_of(fn):
    """The HTTP status of a boto3 call and the error code (200 for a call whose answer is
    not a response dict, such as a body read)."""
    try:
        r = fn()
        if isinstance(r, dict) and "ResponseMetadata" in r:
            return r["ResponseMetadata"]["HTTPStatusCode"], ""
        return 200, ""
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


MATRIX = []


def expect(who, op, fn, status, code=None):
    LAST_REQUEST_ID[0] = None
    got, got_code = status_of(fn)
    MATRIX.append((op, who, got, got_code, LAST_REQUEST_ID[0]))
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

    assert names(alice) == (["alice-data"], canonical_id("alice")), names(alice)
    assert names(bob) == (["bob-data"], canonical_id("bob")), names(bob)
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
    policies(alice, bob, root, admin, bob_key)
    acls_and_anonymous(alice, bob, bob_key)
    public_access_block(alice)
    ownership_controls(alice, bob)
    audit_check({alice_key[0]: "alice", bob_key[0]: "bob", root_key[0]: "root", ADMIN_KEY[0]: f"admin-key:{ADMIN_KEY[0]}"})
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


def eventually(who, op, fn, status, code=None, within=10.0):
    """`expect`, after waiting for `status`: a change made through one gateway reaches the
    other within its bucket cache lifetime (2 s)."""
    deadline = time.time() + within
    while status_of(fn)[0] != status and time.time() < deadline:
        time.sleep(0.2)
    expect(who, op, fn, status, code)


def policy_doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def policies(alice, bob, root, admin, bob_key):
    print("bucket policies")
    alice.create_bucket(Bucket="shared")
    alice.put_object(Bucket="shared", Key="doc", Body=b"shared doc")
    alice.put_object(Bucket="shared", Key="secret/plan", Body=b"plan")
    expect("alice", "GetBucketPolicy(none)", lambda: alice.get_bucket_policy(Bucket="shared"), 404, "NoSuchBucketPolicy")
    expect("alice", "GetBucketPolicyStatus(none)", lambda: alice.get_bucket_policy_status(Bucket="shared"), 404, "NoSuchBucketPolicy")
    bob_reads = {
        "Sid": "BobReads",
        "Effect": "Allow",
        "Principal": {"AWS": [user_arn("bob")]},
        "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"],
    }
    no_secrets = {
        "Sid": "NoSecrets",
        "Effect": "Deny",
        "Principal": {"AWS": [user_arn("bob")]},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::shared/secret/*",
    }
    doc = policy_doc(bob_reads, no_secrets)
    expect("bob", "PutBucketPolicy(A's)", lambda: bob.put_bucket_policy(Bucket="shared", Policy=doc), 403, "AccessDenied")
    expect("alice", "PutBucketPolicy", lambda: alice.put_bucket_policy(Bucket="shared", Policy=doc), 204)
    got = alice.get_bucket_policy(Bucket="shared")["Policy"]
    assert json.loads(got) == json.loads(doc), got
    status = alice.get_bucket_policy_status(Bucket="shared")["PolicyStatus"]
    assert status == {"IsPublic": False}, status
    for i, endpoint in enumerate(ENDPOINTS):
        b = client(bob_key, endpoint)
        who = f"bob@{i + 1}"
        eventually(who, "GetObject(policy allows)", lambda: b.get_object(Bucket="shared", Key="doc")["Body"].read(), 200)
        expect(who, "HeadObject(policy allows)", lambda: b.head_object(Bucket="shared", Key="doc"), 200)
        expect(who, "ListObjectsV2(policy allows)", lambda: b.list_objects_v2(Bucket="shared"), 200)
        expect(who, "HeadObject(missing, may list)", lambda: b.head_object(Bucket="shared", Key="nope"), 404)
        expect(who, "GetObject(explicit deny)", lambda: b.get_object(Bucket="shared", Key="secret/plan"), 403, "AccessDenied")
        expect(who, "PutObject(read-only policy)", lambda: b.put_object(Bucket="shared", Key="x", Body=b"x"), 403, "AccessDenied")
        expect(who, "DeleteObject(read-only policy)", lambda: b.delete_object(Bucket="shared", Key="doc"), 403, "AccessDenied")
        expect(who, "DeleteObjects(read-only policy)", lambda: b.delete_objects(Bucket="shared", Delete={"Objects": [{"Key": "doc"}]}), 403, "AccessDenied")
        expect(who, "GetBucketPolicy(not granted)", lambda: b.get_bucket_policy(Bucket="shared"), 403, "AccessDenied")
        expect(who, "PutBucketAcl(not granted)", lambda: b.put_bucket_acl(Bucket="shared", ACL="public-read"), 403, "AccessDenied")
    assert alice.get_object(Bucket="shared", Key="doc")["Body"].read() == b"shared doc"
    # Without s3:ListBucket a missing key is 403, not 404 (bob on alice-data has nothing).
    expect("bob", "HeadObject(missing, may not list)", lambda: bob.head_object(Bucket="alice-data", Key="nope"), 403)
    # Policies that do not parse, name unknown actions or other buckets: MalformedPolicy, and
    # the stored policy is unchanged.
    bad = [
        "{not json",
        policy_doc({"Effect": "Allow", "Principal": "*", "Action": "s3:Frobnicate", "Resource": "arn:aws:s3:::shared/*"}),
        policy_doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}),
        policy_doc({"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::shared/*"}),
    ]
    for i, text in enumerate(bad):
        expect("alice", f"PutBucketPolicy(malformed {i})", lambda: alice.put_bucket_policy(Bucket="shared", Policy=text), 400, "MalformedPolicy")
    assert json.loads(alice.get_bucket_policy(Bucket="shared")["Policy"]) == json.loads(doc)
    # Admins reach the bucket through any policy that does not deny them.
    expect("root", "GetObject(admin)", lambda: root.get_object(Bucket="shared", Key="secret/plan"), 200)
    # An explicit deny binds everyone, the owner and admins included, except for managing the
    # policy itself (so the bucket cannot be locked for good).
    lock = policy_doc({"Sid": "Lock", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
                       "Resource": ["arn:aws:s3:::shared", "arn:aws:s3:::shared/*"]})
    alice.put_bucket_policy(Bucket="shared", Policy=lock)
    expect("alice", "GetObject(deny all)", lambda: alice.get_object(Bucket="shared", Key="doc"), 403, "AccessDenied")
    expect("admin", "GetObject(deny all)", lambda: admin.get_object(Bucket="shared", Key="doc"), 403, "AccessDenied")
    expect("alice", "DeleteBucketPolicy(deny all)", lambda: alice.delete_bucket_policy(Bucket="shared"), 204)
    expect("alice", "GetObject(policy deleted)", lambda: alice.get_object(Bucket="shared", Key="doc"), 200)
    eventually("bob@2", "GetObject(policy deleted)", lambda: client(bob_key, ENDPOINTS[1]).get_object(Bucket="shared", Key="doc"), 403, "AccessDenied")
    # A public policy with a condition: anonymous reads from 127.0.0.0/8 only over... any
    # transport; a SourceIp outside loopback allows nothing.
    anon = client(None)
    alice.put_object(Bucket="shared", Key="pub/a", Body=b"public a")
    far = policy_doc({"Sid": "FarAway", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                      "Resource": "arn:aws:s3:::shared/pub/*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    alice.put_bucket_policy(Bucket="shared", Policy=far)
    expect("anonymous", "GetObject(SourceIp 10/8)", lambda: anon.get_object(Bucket="shared", Key="pub/a"), 403, "AccessDenied")
    near = far.replace("10.0.0.0/8", "127.0.0.0/8")
    alice.put_bucket_policy(Bucket="shared", Policy=near)
    assert alice.get_bucket_policy_status(Bucket="shared")["PolicyStatus"] == {"IsPublic": False}
    expect("anonymous", "GetObject(SourceIp 127/8)", lambda: anon.get_object(Bucket="shared", Key="pub/a")["Body"].read(), 200)
    expect("anonymous", "GetObject(outside pub/)", lambda: anon.get_object(Bucket="shared", Key="doc"), 403, "AccessDenied")
    open_policy = policy_doc({"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                              "Resource": "arn:aws:s3:::shared/pub/*"})
    alice.put_bucket_policy(Bucket="shared", Policy=open_policy)
    assert alice.get_bucket_policy_status(Bucket="shared")["PolicyStatus"] == {"IsPublic": True}
    alice.delete_bucket_policy(Bucket="shared")


def curl(method, url):
    """Status and request id of an unsigned request made with curl."""
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", "20", url]
        + (["-I"] if method == "HEAD" else ["-X", method]),
        capture_output=True, text=True, timeout=30,
    )
    lines = out.stdout.splitlines()
    status = int(lines[0].split()[1])
    rid = next((l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("x-amz-request-id:")), None)
    return status, rid


def expect_curl(op, method, url, status):
    got, rid = curl(method, url)
    MATRIX.append((op, "anonymous(curl)", got, "", rid))
    print(f"  {op:<28} curl   -> {got}")
    assert got == status, f"curl {method} {url}: {got}, want {status}"


def acls_and_anonymous(alice, bob, bob_key):
    print("ACLs and anonymous access")
    ep = ENDPOINTS[0]
    anon = client(None)
    alice.create_bucket(Bucket="site", ACL="public-read")
    alice.put_object(Bucket="site", Key="index.html", Body=b"<h1>hi</h1>", ACL="public-read")
    alice.put_object(Bucket="site", Key="draft.html", Body=b"draft")
    # A public-read bucket: anyone lists it; objects are readable where their ACL says so.
    expect_curl("GetObject(public-read obj)", "GET", f"{ep}/site/index.html", 200)
    expect_curl("HeadObject(public-read obj)", "HEAD", f"{ep}/site/index.html", 200)
    expect_curl("ListObjects(public-read bkt)", "GET", f"{ep}/site", 200)
    expect_curl("GetObject(private obj)", "GET", f"{ep}/site/draft.html", 403)
    expect_curl("GetObject(missing, may list)", "GET", f"{ep}/site/none.html", 404)
    expect_curl("PutObject(anonymous)", "PUT", f"{ep}/site/evil.html", 403)
    expect_curl("DeleteObject(anonymous)", "DELETE", f"{ep}/site/index.html", 403)
    expect_curl("ListBuckets(anonymous)", "GET", f"{ep}/", 403)
    expect_curl("GetObject(private bucket)", "GET", f"{ep}/alice-data/k", 403)
    expect_curl("GetObject(private, missing)", "GET", f"{ep}/alice-data/none", 403)
    expect_curl("ListObjects(private bucket)", "GET", f"{ep}/alice-data", 403)
    expect("anonymous", "GetObject(public-read obj)", lambda: anon.get_object(Bucket="site", Key="index.html")["Body"].read(), 200)
    expect("anonymous", "CreateBucket(anonymous)", lambda: anon.create_bucket(Bucket="anon-bucket"), 403, "AccessDenied")
    # The ACL documents.
    acl = alice.get_bucket_acl(Bucket="site")
    assert acl["Owner"]["ID"] == canonical_id("alice"), acl
    grants = {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"]) for g in acl["Grants"]}
    assert grants == {(canonical_id("alice"), "FULL_CONTROL"), ("http://acs.amazonaws.com/groups/global/AllUsers", "READ")}, grants
    oacl = alice.get_object_acl(Bucket="site", Key="index.html")
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ" for g in oacl["Grants"]), oacl
    expect("bob", "GetObjectAcl(not granted)", lambda: bob.get_object_acl(Bucket="site", Key="draft.html"), 403, "AccessDenied")
    # PutObjectAcl: make the draft public, then private again.
    expect("alice", "PutObjectAcl(public-read)", lambda: alice.put_object_acl(Bucket="site", Key="draft.html", ACL="public-read"), 200)
    expect_curl("GetObject(now public)", "GET", f"{ep}/site/draft.html", 200)
    alice.put_object_acl(Bucket="site", Key="draft.html", ACL="private")
    expect_curl("GetObject(private again)", "GET", f"{ep}/site/draft.html", 403)
    # Grants to a user by canonical id: Bob may write into the drop box, not read it.
    alice.create_bucket(Bucket="dropbox")
    alice.put_bucket_acl(
        Bucket="dropbox",
        AccessControlPolicy={
            "Owner": {"ID": canonical_id("alice")},
            "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": canonical_id("alice")}, "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "CanonicalUser", "ID": canonical_id("bob")}, "Permission": "WRITE"},
            ],
        },
    )
    expect("bob", "PutObject(WRITE grant)", lambda: bob.put_object(Bucket="dropbox", Key="from-bob", Body=b"hello"), 200)
    expect("bob", "ListObjectsV2(no READ)", lambda: bob.list_objects_v2(Bucket="dropbox"), 403, "AccessDenied")
    # The writer owns what it wrote (ObjectWriter): Bob reads his own object back.
    expect("bob", "GetObject(own object)", lambda: bob.get_object(Bucket="dropbox", Key="from-bob")["Body"].read(), 200)
    expect("bob", "GetBucketAcl(no READ_ACP)", lambda: bob.get_bucket_acl(Bucket="dropbox"), 403, "AccessDenied")
    # Grants by e-mail are not supported; bad canned ACL names are refused.
    expect("alice", "PutBucketAcl(bad canned)", lambda: alice.put_bucket_acl(Bucket="dropbox", ACL="everyone-please"), 400)


def public_access_block(alice):
    print("PublicAccessBlock")
    ep = ENDPOINTS[0]
    expect("alice", "GetPublicAccessBlock(none)", lambda: alice.get_public_access_block(Bucket="site"), 404, "NoSuchPublicAccessBlockConfiguration")
    all_on = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
    alice.put_public_access_block(Bucket="site", PublicAccessBlockConfiguration=all_on)
    got = alice.get_public_access_block(Bucket="site")["PublicAccessBlockConfiguration"]
    assert got == all_on, got
    expect_curl("GetObject(IgnorePublicAcls)", "GET", f"{ep}/site/index.html", 403)
    expect("alice", "PutBucketAcl(BlockPublicAcls)", lambda: alice.put_bucket_acl(Bucket="site", ACL="public-read-write"), 403, "AccessDenied")
    expect("alice", "PutObject(public ACL blocked)", lambda: alice.put_object(Bucket="site", Key="p", Body=b"p", ACL="public-read"), 403, "AccessDenied")
    public = policy_doc({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"})
    expect("alice", "PutBucketPolicy(BlockPublicPolicy)", lambda: alice.put_bucket_policy(Bucket="site", Policy=public), 403, "AccessDenied")
    expect("alice", "DeletePublicAccessBlock", lambda: alice.delete_public_access_block(Bucket="site"), 204)
    expect_curl("GetObject(unblocked)", "GET", f"{ep}/site/index.html", 200)


def ownership_controls(alice, bob):
    print("Object Ownership")
    got = alice.get_bucket_ownership_controls(Bucket="dropbox")["OwnershipControls"]["Rules"]
    assert got == [{"ObjectOwnership": "ObjectWriter"}], got
    enforced = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    expect("bob", "PutBucketOwnershipControls(A's)", lambda: bob.put_bucket_ownership_controls(Bucket="dropbox", OwnershipControls=enforced), 403, "AccessDenied")
    # Not while the bucket ACL grants bob WRITE (S3's rule).
    expect("alice", "PutBucketOwnershipControls(grant)", lambda: alice.put_bucket_ownership_controls(Bucket="dropbox", OwnershipControls=enforced), 400, "InvalidBucketAclWithObjectOwnership")
    alice.put_object(Bucket="dropbox", Key="pub", Body=b"public", ACL="public-read")
    expect_curl("GetObject(ObjectWriter, public obj)", "GET", f"{ENDPOINTS[0]}/dropbox/pub", 200)
    alice.put_bucket_acl(Bucket="dropbox", ACL="private")
    alice.put_bucket_ownership_controls(Bucket="dropbox", OwnershipControls=enforced)
    expect_curl("GetObject(ACLs disabled)", "GET", f"{ENDPOINTS[0]}/dropbox/pub", 403)
    got = alice.get_bucket_ownership_controls(Bucket="dropbox")["OwnershipControls"]["Rules"]
    assert got == [{"ObjectOwnership": "BucketOwnerEnforced"}], got
    # ACLs disabled: ACLs other than the owner's full control are refused.
    expect("bob", "PutObject(no grant)", lambda: bob.put_object(Bucket="dropbox", Key="again", Body=b"x"), 403, "AccessDenied")
    expect("alice", "PutObject(ACL, enforced)", lambda: alice.put_object(Bucket="dropbox", Key="a", Body=b"a", ACL="public-read"), 400, "AccessControlListNotSupported")
    expect("alice", "PutObject(owner full control)", lambda: alice.put_object(Bucket="dropbox", Key="a", Body=b"a", ACL="bucket-owner-full-control"), 200)
    expect("alice", "PutBucketAcl(enforced)", lambda: alice.put_bucket_acl(Bucket="dropbox", ACL="public-read"), 400, "AccessControlListNotSupported")
    alice.delete_bucket_ownership_controls(Bucket="dropbox")
    got = alice.get_bucket_ownership_controls(Bucket="dropbox")["OwnershipControls"]["Rules"]
    assert got == [{"ObjectOwnership": "ObjectWriter"}], got


def audit_check(principals):
    """Every checked request with a request id has its audit record, with the same status
    and the principal that made it."""
    paths = json.loads(os.environ.get("AUDIT_LOGS", "[]"))
    assert paths, "no audit logs given"
    want = [m for m in MATRIX if m[4]]
    deadline = time.time() + 20
    while True:
        records = {}
        for p in paths:
            for name in sorted(os.listdir(os.path.dirname(p))):
                if name.startswith(os.path.basename(p)):
                    with open(os.path.join(os.path.dirname(p), name)) as f:
                        for line in f:
                            r = json.loads(line)
                            records[r["request_id"]] = r
        missing = [m for m in want if m[4] not in records]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.5)
    assert not missing, f"{len(missing)} requests without an audit record: {missing[:5]}"
    for op, who, status, code, rid in want:
        r = records[rid]
        assert r["status"] == status, (op, who, status, r)
        if who.startswith("anonymous"):
            assert r["principal"] == "anonymous", (op, who, r)
        for name in ("alice", "bob", "root"):
            if who.startswith(name) and r["principal"] is None:
                # Refused before a principal existed: a disabled or expired key.
                assert r["reason"].startswith("authentication"), (op, who, r)
            elif who.startswith(name):
                assert r["principal"] == name, (op, who, r)
        if who == "admin":
            assert r["principal"] == principals[ADMIN_KEY[0]], (op, who, r)
        if status == 403 and code == "AccessDenied":
            assert r["decision"] == "deny" and r["reason"], (op, who, r)
        if status < 300:
            assert r["decision"] == "allow" and r["reason"].startswith("allow"), (op, who, r)
    print(f"  audit: {len(want)} checked requests each have their record")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 (print everything, fail)
        import traceback

        traceback.print_exc()
        print(f"iam suite: FAILED: {e}")
        sys.exit(1)
