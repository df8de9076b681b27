"""SigV2 (header and presigned query), presigned expiry edge cases and POST Object (browser
form uploads) of issue 15, driven by boto3, s3cmd and urllib against a real gateway.

Run by `tests/s3_auth.rs` against a real multi-process cluster. By hand:
  S3_ENDPOINT=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... \
  python3 tests/s3/auth_suite.py
Prints "auth suite: ok" and exits 0 only if every check passed.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from common import s3_client

EP = os.environ["S3_ENDPOINT"].rstrip("/")
AK = os.environ["AWS_ACCESS_KEY_ID"]
SK = os.environ["AWS_SECRET_ACCESS_KEY"]
S3CMD = os.environ.get("S3CMD", "/usr/bin/s3cmd")

failures = []
checks = 0


def check(name, cond, detail=""):
    global checks
    checks += 1
    if cond:
        print(f"PASS {name}")
    else:
        print(f"FAIL {name} {detail}")
        failures.append(name)


def client(sig, secret=SK):
    return s3_client(EP, access_key=AK, secret_key=secret, signature=sig)


v4 = client("s3v4")
v2 = client("s3")


def code(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def http(method, url, data=None, headers=None):
    """(status, body, headers) of a plain HTTP request (no redirects followed)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}


def error_code(body):
    s = body.decode(errors="replace")
    if "<Code>" not in s:
        return None
    return s.split("<Code>", 1)[1].split("</Code>", 1)[0]


def sigv2():
    b = f"auth-v2-{uuid.uuid4().hex[:8]}"
    v2.create_bucket(Bucket=b)
    v2.put_object(Bucket=b, Key="dir/a b+c.txt", Body=b"hello v2", ContentType="text/plain",
                  Metadata={"m": "1"})
    r = v2.get_object(Bucket=b, Key="dir/a b+c.txt")
    check("SigV2 header: put and get", r["Body"].read() == b"hello v2")
    check("SigV2 header: metadata", r["Metadata"].get("m") == "1")
    keys = [o["Key"] for o in v2.list_objects(Bucket=b, Prefix="dir/")["Contents"]]
    check("SigV2 header: list", keys == ["dir/a b+c.txt"], keys)
    acl = v2.get_bucket_acl(Bucket=b)
    check("SigV2 header: ?acl sub-resource", "Grants" in acl)
    # Multipart (uploadId / partNumber are signed sub-resources).
    up = v2.create_multipart_upload(Bucket=b, Key="mp")
    p1 = v2.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                        Body=b"x" * (5 * 1024 * 1024))
    p2 = v2.upload_part(Bucket=b, Key="mp", UploadId=up["UploadId"], PartNumber=2, Body=b"y")
    v2.complete_multipart_upload(Bucket=b, Key="mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["ETag"]}]})
    check("SigV2 header: multipart", v2.head_object(Bucket=b, Key="mp")["ContentLength"] == 5 * 1024 * 1024 + 1)
    # Wrong secret, unknown key.
    bad = client("s3", secret="wrong" + SK)
    check("SigV2 header: wrong secret", code(bad.get_object, Bucket=b, Key="mp") == ("SignatureDoesNotMatch", 403))
    unknown = boto3.client("s3", endpoint_url=EP, region_name="us-east-1",
                           aws_access_key_id="AKUNKNOWN0000000000X", aws_secret_access_key=SK,
                           config=Config(s3={"addressing_style": "path"}, signature_version="s3",
                                         retries={"max_attempts": 1}))
    check("SigV2 header: unknown key", code(unknown.list_objects, Bucket=b) == ("InvalidAccessKeyId", 403))
    # A Date 20 minutes off: RequestTimeTooSkewed.
    date = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)).strftime(
        "%a, %d %b %Y %H:%M:%S GMT")
    path = f"/{b}/mp"
    sts = f"GET\n\n\n{date}\n{path}"
    sig = base64.b64encode(hmac.new(SK.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    st, body, _ = http("GET", EP + path, headers={"Date": date, "Authorization": f"AWS {AK}:{sig}"})
    check("SigV2 header: skewed date", (st, error_code(body)) == (403, "RequestTimeTooSkewed"), (st, body))
    # The same by hand with a current date works (our string to sign matches S3's).
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
    sts = f"GET\n\n\n{date}\n{path}"
    sig = base64.b64encode(hmac.new(SK.encode(), sts.encode(), hashlib.sha1).digest()).decode()
    st, _, _ = http("GET", EP + path, headers={"Date": date, "Authorization": f"AWS {AK}:{sig}"})
    check("SigV2 header: hand-signed", st == 200, st)

    # Presigned SigV2 URLs.
    url = v2.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "dir/a b+c.txt"}, ExpiresIn=300)
    check("SigV2 presigned: is SigV2", "AWSAccessKeyId=" in url and "X-Amz-" not in url, url)
    st, body, _ = http("GET", url)
    check("SigV2 presigned GET", (st, body) == (200, b"hello v2"), (st, body))
    url = v2.generate_presigned_url("get_object", Params={
        "Bucket": b, "Key": "dir/a b+c.txt", "ResponseContentType": "application/x-test"}, ExpiresIn=300)
    st, body, hdrs = http("GET", url)
    check("SigV2 presigned GET with response-content-type", st == 200 and hdrs.get("content-type") == "application/x-test", (st, hdrs))
    # The Content-Type is signed by SigV2 (urllib would add its own form type otherwise).
    ct = {"Content-Type": "application/octet-stream"}
    url = v2.generate_presigned_url("put_object", Params={
        "Bucket": b, "Key": "put-by-url", "ContentType": ct["Content-Type"]}, ExpiresIn=300)
    st, body, _ = http("PUT", url, data=b"via url", headers=ct)
    check("SigV2 presigned PUT", st == 200, (st, body))
    check("SigV2 presigned PUT stored", v4.get_object(Bucket=b, Key="put-by-url")["Body"].read() == b"via url")
    tampered = url.replace("put-by-url", "put-by-urx")
    st, body, _ = http("PUT", tampered, data=b"x", headers=ct)
    check("SigV2 presigned: tampered path", (st, error_code(body)) == (403, "SignatureDoesNotMatch"), (st, body))
    expired = v2.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "mp"}, ExpiresIn=-10)
    st, body, _ = http("GET", expired)
    check("SigV2 presigned: expired", (st, error_code(body)) == (403, "AccessDenied"), (st, body))
    badsecret = client("s3", secret="wrong" + SK).generate_presigned_url(
        "get_object", Params={"Bucket": b, "Key": "mp"}, ExpiresIn=300)
    st, body, _ = http("GET", badsecret)
    check("SigV2 presigned: wrong secret", (st, error_code(body)) == (403, "SignatureDoesNotMatch"), (st, body))

    # s3cmd signurl (SigV2 only).
    host = urllib.parse.urlparse(EP).netloc
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "s3cmd.conf")
        with open(conf, "w") as f:
            f.write(f"[default]\naccess_key = {AK}\nsecret_key = {SK}\nhost_base = {host}\n"
                    f"host_bucket = {host}\nbucket_location = us-east-1\nuse_https = False\n"
                    "signature_v2 = True\nprogress_meter = False\n")
        out = subprocess.run([S3CMD, "-c", conf, "signurl", f"s3://{b}/put-by-url", "+300"],
                             capture_output=True, text=True, timeout=60)
        url = out.stdout.strip()
        check("s3cmd signurl ran", out.returncode == 0 and url.startswith("http"), (out.returncode, out.stdout, out.stderr))
        if url.startswith("http"):
            st, body, _ = http("GET", url)
            check("s3cmd signurl fetched", (st, body) == (200, b"via url"), (st, body, url))
        out = subprocess.run([S3CMD, "-c", conf, "ls", f"s3://{b}/dir/"], capture_output=True,
                             text=True, timeout=60)
        check("s3cmd with signature_v2 lists", out.returncode == 0 and "a b+c.txt" in out.stdout, (out.stdout, out.stderr))
    return b


def presigned_v4_expiry(b):
    url = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "mp"}, ExpiresIn=300)
    st, _, _ = http("GET", url)
    check("SigV4 presigned: valid", st == 200, st)
    for bad in ["0", "-7", "604801", "soon"]:
        u = url.replace("X-Amz-Expires=300", f"X-Amz-Expires={bad}")
        st, body, _ = http("GET", u)
        check(f"SigV4 presigned: X-Amz-Expires={bad}",
              (st, error_code(body)) == (400, "AuthorizationQueryParametersError"), (st, body))
    expired = v4.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "mp"}, ExpiresIn=1)
    time.sleep(2.5)
    st, body, _ = http("GET", expired)
    check("SigV4 presigned: expired", (st, error_code(body)) == (403, "AccessDenied"), (st, body))


def multipart_body(fields, file_name="file.txt", file_data=b"", after=None):
    boundary = "----anode" + uuid.uuid4().hex
    out = b""
    for k, v in fields:
        v = v if isinstance(v, bytes) else str(v).encode()
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n").encode() + v + b"\r\n"
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + file_data + b"\r\n"
    for k, v in after or []:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def post(url, fields, data=b"data", file_name="file.txt", after=None):
    body, ct = multipart_body(fields, file_name, data, after)
    return http("POST", url, data=body, headers={"Content-Type": ct})


def v2_policy(doc):
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    sig = base64.b64encode(hmac.new(SK.encode(), policy.encode(), hashlib.sha1).digest()).decode()
    return policy, sig


def post_object():
    b = f"auth-post-{uuid.uuid4().hex[:8]}"
    v4.create_bucket(Bucket=b)
    url = f"{EP}/{b}"
    # boto3's generate_presigned_post: SigV4 form fields.
    p = v4.generate_presigned_post(b, "uploads/${filename}", Fields={"Content-Type": "text/plain"},
                                   Conditions=[["starts-with", "$key", "uploads/"],
                                               {"Content-Type": "text/plain"},
                                               ["content-length-range", 1, 100]], ExpiresIn=300)
    check("POST: boto3 fields are SigV4", "x-amz-signature" in p["fields"], p["fields"])
    st, body, hdrs = post(p["url"], list(p["fields"].items()), b"hello form", file_name="f1.txt")
    check("POST SigV4: 204", st == 204, (st, body))
    o = v4.get_object(Bucket=b, Key="uploads/f1.txt")
    check("POST SigV4: stored with ${filename} and Content-Type",
          o["Body"].read() == b"hello form" and o["ContentType"] == "text/plain", o["ContentType"])
    check("POST SigV4: ETag header", hdrs.get("etag") == o["ETag"], (hdrs, o["ETag"]))
    # A tagging field (a <Tagging> document) tags the object, as x-amz-tagging does.
    tagging = ("<Tagging><TagSet><Tag><Key>team</Key><Value>data eng</Value></Tag>"
               "<Tag><Key>k&amp;2</Key><Value>a/b</Value></Tag></TagSet></Tagging>")
    pt = v4.generate_presigned_post(b, "tagged.txt", Fields={"tagging": tagging},
                                    Conditions=[{"tagging": tagging}], ExpiresIn=300)
    st, body, _ = post(pt["url"], list(pt["fields"].items()), b"tagged", file_name="t.txt")
    tags = v4.get_object_tagging(Bucket=b, Key="tagged.txt")["TagSet"] if st == 204 else []
    check("POST: tagging field stores the tags",
          sorted((t["Key"], t["Value"]) for t in tags) == [("k&2", "a/b"), ("team", "data eng")],
          (st, body, tags))
    pt = v4.generate_presigned_post(b, "badtag.txt", Fields={"tagging": "<Tagging>"},
                                    Conditions=[{"tagging": "<Tagging>"}], ExpiresIn=300)
    st, body, _ = post(pt["url"], list(pt["fields"].items()), b"x", file_name="t.txt")
    check("POST: malformed tagging field", (st, error_code(body)) == (400, "MalformedXML"), (st, body))
    # Fields after the file are ignored.
    st, _, _ = post(p["url"], list(p["fields"].items()), b"x", file_name="f2.txt", after=[("key", "elsewhere")])
    check("POST: fields after file ignored", st == 204 and code(v4.head_object, Bucket=b, Key="elsewhere")[1] == 404)
    # Size limits.
    st, body, _ = post(p["url"], list(p["fields"].items()), b"x" * 101, file_name="big.txt")
    check("POST: EntityTooLarge", (st, error_code(body)) == (400, "EntityTooLarge"), (st, body))
    st, body, _ = post(p["url"], list(p["fields"].items()), b"", file_name="empty.txt")
    check("POST: EntityTooSmall", (st, error_code(body)) == (400, "EntityTooSmall"), (st, body))
    check("POST: nothing stored past limits", code(v4.head_object, Bucket=b, Key="uploads/big.txt")[1] == 404)
    # Policy violations.
    fields = dict(p["fields"])
    fields["key"] = "other/x"
    st, body, _ = post(p["url"], list(fields.items()))
    check("POST: key outside starts-with", (st, error_code(body)) == (403, "AccessDenied"), (st, body))
    fields = dict(p["fields"])
    fields["x-amz-meta-extra"] = "1"
    st, body, _ = post(p["url"], list(fields.items()))
    check("POST: field not in policy", (st, error_code(body)) == (403, "AccessDenied"), (st, body))
    fields = dict(p["fields"])
    fields["x-ignore-this"] = "1"
    st, body, _ = post(p["url"], list(fields.items()), file_name="ign.txt")
    check("POST: x-ignore-* exempt", st == 204, (st, body))
    fields = dict(p["fields"])
    fields["x-amz-signature"] = "0" * 64
    st, body, _ = post(p["url"], list(fields.items()))
    check("POST: bad SigV4 signature", (st, error_code(body)) == (403, "SignatureDoesNotMatch"), (st, body))
    st, body, _ = post(f"{EP}/{b}-nope", list(p["fields"].items()))
    check("POST: other bucket than the policy's", st in (403, 404), (st, body))
    # SigV2 fields, success_action_status and redirect.
    exp = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {"expiration": exp, "conditions": [{"bucket": b}, ["starts-with", "$key", "v2/"],
                                             ["starts-with", "$success_action_status", ""],
                                             ["starts-with", "$success_action_redirect", ""],
                                             ["starts-with", "$x-amz-meta-who", ""],
                                             ["content-length-range", 0, 1024]]}
    policy, sig = v2_policy(doc)
    base = [("key", "v2/a"), ("AWSAccessKeyId", AK), ("policy", policy), ("signature", sig),
            ("x-amz-meta-who", "form")]
    st, body, hdrs = post(url, base + [("success_action_status", "201")], b"v2 data")
    check("POST SigV2: 201 PostResponse", st == 201 and b"<PostResponse>" in body and b"<Key>v2/a</Key>" in body, (st, body))
    o = v4.get_object(Bucket=b, Key="v2/a")
    check("POST SigV2: stored with metadata", o["Body"].read() == b"v2 data" and o["Metadata"].get("who") == "form")
    st, body, _ = post(url, [(k, v if k != "key" else "v2/b") for k, v in base] + [("success_action_status", "200")])
    check("POST: success_action_status 200", (st, body) == (200, b""), (st, body))
    st, body, _ = post(url, [(k, v if k != "key" else "v2/c") for k, v in base] + [("success_action_status", "404")])
    check("POST: other success_action_status is 204", st == 204, (st, body))
    st, body, hdrs = post(url, [(k, v if k != "key" else "v2/d") for k, v in base] +
                          [("success_action_redirect", "http://app.example/done")])
    etag = v4.head_object(Bucket=b, Key="v2/d")["ETag"]
    want = f"http://app.example/done?bucket={b}&key=v2%2Fd&etag={urllib.parse.quote(etag, safe='')}"
    check("POST: redirect 303", st == 303 and hdrs.get("location") == want, (st, hdrs.get("location"), want))
    policy_bad, _ = v2_policy(doc)
    st, body, _ = post(url, [("key", "v2/e"), ("AWSAccessKeyId", AK), ("policy", policy_bad), ("signature", "AAAA")])
    check("POST SigV2: bad signature", (st, error_code(body)) == (403, "SignatureDoesNotMatch"), (st, body))
    expired_doc = dict(doc, expiration="2001-01-01T00:00:00Z")
    policy_e, sig_e = v2_policy(expired_doc)
    st, body, _ = post(url, [("key", "v2/e"), ("AWSAccessKeyId", AK), ("policy", policy_e), ("signature", sig_e)])
    check("POST: expired policy", (st, error_code(body)) == (403, "AccessDenied"), (st, body))
    policy_n, sig_n = v2_policy({"expiration": exp})
    st, body, _ = post(url, [("key", "v2/e"), ("AWSAccessKeyId", AK), ("policy", policy_n), ("signature", sig_n)])
    check("POST: policy without conditions", (st, error_code(body)) == (400, "InvalidPolicyDocument"), (st, body))
    st, body, _ = post(url, [("AWSAccessKeyId", AK), ("policy", policy), ("signature", sig)])
    check("POST: no key field", (st, error_code(body)) == (400, "InvalidArgument"), (st, body))
    # Anonymous: refused on a private bucket, allowed on a public-write one.
    st, body, _ = post(url, [("key", "anon.txt")])
    check("POST anonymous on private bucket", (st, error_code(body)) == (403, "AccessDenied"), (st, body))
    pub = f"auth-pub-{uuid.uuid4().hex[:8]}"
    v4.create_bucket(Bucket=pub, ACL="public-read-write")
    st, body, _ = post(f"{EP}/{pub}", [("key", "anon.txt"), ("Content-Type", "text/plain")], b"anon")
    check("POST anonymous on public-write bucket", st == 204, (st, body))
    check("POST anonymous: stored", v4.get_object(Bucket=pub, Key="anon.txt")["Body"].read() == b"anon")
    # A larger file streams through (4 MiB with content-length-range).
    big = os.urandom(4 * 1024 * 1024 + 17)
    p = v4.generate_presigned_post(b, "big.bin", Conditions=[["content-length-range", 0, 8 * 1024 * 1024]])
    st, body, _ = post(p["url"], list(p["fields"].items()), big)
    got = v4.get_object(Bucket=b, Key="big.bin")["Body"].read()
    check("POST: 4 MiB file", st == 204 and got == big, (st, body))


b = sigv2()
presigned_v4_expiry(b)
post_object()
print(f"{checks} checks, {len(failures)} failed")
if failures:
    print("FAILED: " + ", ".join(failures))
    raise SystemExit(1)
print("auth suite: ok")
