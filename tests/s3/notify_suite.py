"""S3 event notifications (issue 15), driven by boto3 and minio-py against two gateways
($S3_ENDPOINT and $S3_ENDPOINT_2) of a real cluster of three masters.

- Put/GetBucketNotificationConfiguration through one gateway, read through the other, and
  S3's errors: an unknown event name, a bad ARN, a target that does not exist, a repeated
  prefix rule (InvalidArgument), EventBridge (NotImplemented).
- A webhook receiver (an http.server thread on 127.0.0.1, made here) registered with
  `anode ctl notify target-add`: put, copy, POST Object, multipart complete, tagging put and
  delete, delete, bulk delete, and a delete marker in a versioned bucket make the right event names, with
  the rules' prefix/suffix filters applied and keys encoded as S3 does; ids are unique,
  increasing, and the same in the header, `eventId` and `sequencer`.
- Retries: while the receiver answers 500 nothing is lost.
- A leader failover: with events queued and undelivered (the receiver failing), the test
  (tests/s3_notify.rs) kill -9s the raft leader when $PHASE1_FILE appears and writes
  $FAILOVER_FILE once a new leader is elected; then every event arrives, possibly twice, but
  each with one id.
- ListenBucketNotification with minio-py: events arrive live, with a prefix filter.

Run by `tests/s3_notify.rs`. Prints "notify suite: ok" and exits 0 only if every check passed.
Needs boto3 and minio (scripts/test-tools.sh).
"""
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from botocore.exceptions import ClientError

from common import s3_client

A_URL = os.environ["S3_ENDPOINT"]
B_URL = os.environ.get("S3_ENDPOINT_2", A_URL)
ANODE = os.environ["ANODE_BIN"]
CTL = json.loads(os.environ["ANODE_CTL_ARGS"])
PHASE1_FILE = os.environ.get("PHASE1_FILE")
FAILOVER_FILE = os.environ.get("FAILOVER_FILE")


def client(endpoint):
    return s3_client(endpoint, attempts=5)


a = client(A_URL)
b = client(B_URL)


def code(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} {kw} did not fail")


def until(what, fn, timeout=60.0, every=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def ctl(*args):
    out = subprocess.run([ANODE, *CTL, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"anode ctl {args}: {out.stderr}"
    return out.stdout


# ---- the webhook receiver -----------------------------------------------------------------


class Receiver:
    """Records every POST it answered 200; answers 500 while `failing`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = []  # (header id, record)
        self.failing = False
        self.refused = 0
        me = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                with me.lock:
                    failing = me.failing
                    if failing:
                        me.refused += 1
                    else:
                        doc = json.loads(body)
                        assert self.headers.get("content-type", "").startswith("application/json")
                        assert len(doc["Records"]) == 1, doc
                        me.got.append((self.headers.get("x-anode-event-id"), doc["Records"][0]))
                self.send_response(500 if failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def records(self):
        with self.lock:
            return list(self.got)

    def set_failing(self, on):
        with self.lock:
            self.failing = on

    def refusals(self):
        with self.lock:
            return self.refused


rx = Receiver()


def seen(bucket=None):
    """(decoded key, event name) of every record received for `bucket`, in arrival order."""
    out = []
    for _, r in rx.records():
        if bucket is None or r["s3"]["bucket"]["name"] == bucket:
            key = urllib.parse.unquote_plus(r["s3"]["object"]["key"])
            out.append((key, r["eventName"]))
    return out


def wait_events(bucket, want, timeout=60.0):
    """Wait until exactly `want` (a list of (key, event name)) arrived for `bucket`, in order."""
    until(f"{want} on {bucket}", lambda: len(seen(bucket)) >= len(want), timeout)
    time.sleep(0.5)  # nothing more may come
    got = seen(bucket)
    assert got == want, f"{bucket}: got {got}, want {want}"


# ---- configuration -------------------------------------------------------------------------

BUCKET = "notify-" + uuid.uuid4().hex[:8]
VBUCKET = BUCKET + "-v"
a.create_bucket(Bucket=BUCKET)
a.create_bucket(Bucket=VBUCKET)
a.put_bucket_versioning(Bucket=VBUCKET, VersioningConfiguration={"Status": "Enabled"})

cfg = a.get_bucket_notification_configuration(Bucket=BUCKET)
for k in ("QueueConfigurations", "TopicConfigurations", "LambdaFunctionConfigurations"):
    assert not cfg.get(k), cfg


def queue(arn, events, prefix=None, suffix=None, id=None):
    q = {"QueueArn": arn, "Events": events}
    rules = []
    if prefix is not None:
        rules.append({"Name": "prefix", "Value": prefix})
    if suffix is not None:
        rules.append({"Name": "suffix", "Value": suffix})
    if rules:
        q["Filter"] = {"Key": {"FilterRules": rules}}
    if id:
        q["Id"] = id
    return q


def put_cfg(bucket, **cfg):
    return a.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=cfg)


# The target does not exist yet: the master refuses.
assert code(
    put_cfg, bucket=BUCKET, QueueConfigurations=[queue("arn:anode:sqs::hooks", ["s3:ObjectCreated:*"])]
) == ("InvalidArgument", 400)
ctl("notify", "target-add", "hooks", rx.url)
assert "hooks" in ctl("notify", "targets")

for bad in [
    {"QueueConfigurations": [queue("arn:anode:sqs::hooks", ["s3:ObjectRestore:Post"])]},
    {"QueueConfigurations": [queue("arn:anode:sqs::hooks", ["s3:NoSuchEvent:*"])]},
    {"QueueConfigurations": [queue("arn:aws:s3:::a-bucket", ["s3:ObjectCreated:*"])]},
    {"QueueConfigurations": [queue("not-an-arn", ["s3:ObjectCreated:*"])]},
    {"QueueConfigurations": [queue("arn:anode:sqs::nope", ["s3:ObjectCreated:*"])]},
    {
        "QueueConfigurations": [
            {
                "QueueArn": "arn:anode:sqs::hooks",
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "a"}, {"Name": "Prefix", "Value": "b"}]}},
            }
        ]
    },
    # Overlapping rules (a common event type, filters one key can match).
    {
        "QueueConfigurations": [
            queue("arn:anode:sqs::hooks", ["s3:ObjectCreated:*"], prefix="x/"),
            queue("arn:anode:sqs::hooks", ["s3:ObjectCreated:Put"], prefix="x/y"),
        ]
    },
]:
    assert code(put_cfg, bucket=BUCKET, **bad) == ("InvalidArgument", 400), bad
assert code(put_cfg, bucket=BUCKET, EventBridgeConfiguration={}) == ("NotImplemented", 501)

put_cfg(
    BUCKET,
    QueueConfigurations=[queue("arn:anode:sqs::hooks", ["s3:ObjectCreated:*"], prefix="in/", id="created")],
    TopicConfigurations=[
        {
            "Id": "changed",
            "TopicArn": "arn:minio:sqs::1:hooks",
            "Events": ["s3:ObjectRemoved:*", "s3:ObjectTagging:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".txt"}]}},
        }
    ],
)
put_cfg(VBUCKET, QueueConfigurations=[queue("arn:aws:sqs:us-east-1:123456789012:hooks", ["s3:ObjectRemoved:*"])])


def check_cfg(c):
    got = c.get_bucket_notification_configuration(Bucket=BUCKET)
    q, t = got["QueueConfigurations"], got["TopicConfigurations"]
    assert len(q) == 1 and len(t) == 1, got
    assert q[0]["Id"] == "created" and q[0]["QueueArn"] == "arn:anode:sqs::hooks", q
    assert q[0]["Events"] == ["s3:ObjectCreated:*"], q
    assert q[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "Prefix", "Value": "in/"}], q
    assert t[0]["Id"] == "changed" and t[0]["TopicArn"] == "arn:minio:sqs::1:hooks", t
    assert t[0]["Events"] == ["s3:ObjectRemoved:*", "s3:ObjectTagging:*"], t
    rules = {r["Name"]: r["Value"] for r in t[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"Prefix": "in/", "Suffix": ".txt"}, t
    v = c.get_bucket_notification_configuration(Bucket=VBUCKET)["QueueConfigurations"]
    assert len(v) == 1 and v[0]["Id"], v  # an id made up for a rule without one
    return True


check_cfg(a)
check_cfg(b)
print("config: put/get and errors ok")

# ---- events to the webhook -----------------------------------------------------------------

a.put_object(Bucket=BUCKET, Key="in/a.txt", Body=b"hello")
a.put_object(Bucket=BUCKET, Key="out/ignored.txt", Body=b"x")
odd = "in/sp ace+é&?.txt"
b.put_object(Bucket=BUCKET, Key=odd, Body=b"odd")
a.copy_object(Bucket=BUCKET, Key="in/b.txt", CopySource={"Bucket": BUCKET, "Key": "in/a.txt"})
up = a.create_multipart_upload(Bucket=BUCKET, Key="in/m.bin")
part = a.upload_part(Bucket=BUCKET, Key="in/m.bin", UploadId=up["UploadId"], PartNumber=1, Body=b"m" * 1000)
a.complete_multipart_upload(
    Bucket=BUCKET,
    Key="in/m.bin",
    UploadId=up["UploadId"],
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
)
# POST Object (a browser form upload).
post = a.generate_presigned_post(BUCKET, "in/posted.txt", ExpiresIn=600)
boundary = uuid.uuid4().hex
form = b""
for k, v in post["fields"].items():
    form += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
form += f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.txt"\r\n\r\nposted\r\n--{boundary}--\r\n'.encode()
req = urllib.request.Request(
    post["url"], data=form, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
)
with urllib.request.urlopen(req, timeout=30) as r:
    assert r.status in (200, 204), r.status
a.put_object_tagging(Bucket=BUCKET, Key="in/a.txt", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
a.put_object_tagging(Bucket=BUCKET, Key="in/m.bin", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})  # suffix: none
a.delete_object_tagging(Bucket=BUCKET, Key="in/a.txt")
a.delete_object(Bucket=BUCKET, Key="in/b.txt")
a.delete_object(Bucket=BUCKET, Key="out/ignored.txt")
a.delete_object(Bucket=BUCKET, Key="in/m.bin")  # suffix: none
a.put_object(Bucket=BUCKET, Key="in/c.txt", Body=b"c")
a.put_object(Bucket=BUCKET, Key="in/d.txt", Body=b"d")
a.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "in/c.txt"}, {"Key": "in/d.txt"}]})
wait_events(
    BUCKET,
    [
        ("in/a.txt", "ObjectCreated:Put"),
        (odd, "ObjectCreated:Put"),
        ("in/b.txt", "ObjectCreated:Copy"),
        ("in/m.bin", "ObjectCreated:CompleteMultipartUpload"),
        ("in/posted.txt", "ObjectCreated:Post"),
        ("in/a.txt", "ObjectTagging:Put"),
        ("in/a.txt", "ObjectTagging:Delete"),
        ("in/b.txt", "ObjectRemoved:Delete"),
        ("in/c.txt", "ObjectCreated:Put"),
        ("in/d.txt", "ObjectCreated:Put"),
        ("in/c.txt", "ObjectRemoved:Delete"),
        ("in/d.txt", "ObjectRemoved:Delete"),
    ],
)
records = [r for _, r in rx.records() if r["s3"]["bucket"]["name"] == BUCKET]
by_key = {urllib.parse.unquote_plus(r["s3"]["object"]["key"]): r for r in records}
assert by_key[odd]["s3"]["object"]["key"] == "in/sp+ace%2B%C3%A9%26%3F.txt", by_key[odd]["s3"]["object"]
created = records[0]
assert created["s3"]["object"]["size"] == 5 and created["s3"]["object"]["eTag"], created
assert created["s3"]["configurationId"] == "created", created
assert records[5]["s3"]["configurationId"] == "changed", records[5]
assert created["eventSource"] == "aws:s3" and created["awsRegion"] == "us-east-1", created

put = a.put_object(Bucket=VBUCKET, Key="doc", Body=b"v1")
a.delete_object(Bucket=VBUCKET, Key="doc")  # a delete marker
a.delete_object(Bucket=VBUCKET, Key="doc", VersionId=put["VersionId"])
wait_events(VBUCKET, [("doc", "ObjectRemoved:DeleteMarkerCreated"), ("doc", "ObjectRemoved:Delete")])
vrec = [r for _, r in rx.records() if r["s3"]["bucket"]["name"] == VBUCKET]
assert vrec[0]["s3"]["object"].get("versionId"), vrec[0]
assert vrec[1]["s3"]["object"]["versionId"] == put["VersionId"], vrec[1]

# Ids: unique, increasing in delivery order, the same in the header, eventId and sequencer.
ids = [h for h, _ in rx.records()]
assert len(set(ids)) == len(ids), ids
assert ids == sorted(ids), ids
for h, r in rx.records():
    assert h == r["eventId"] == r["s3"]["object"]["sequencer"], (h, r)
print(f"webhook: {len(ids)} events with their names, filters and keys ok")

# ---- retries -------------------------------------------------------------------------------

rx.set_failing(True)
before = rx.refusals()
for i in range(3):
    a.put_object(Bucket=BUCKET, Key=f"in/retry-{i}", Body=b"r")
until("the receiver refused twice", lambda: rx.refusals() >= before + 2, 60)
rx.set_failing(False)
until("the retried events", lambda: all(any(k == f"in/retry-{i}" for k, _ in seen(BUCKET)) for i in range(3)), 90)
print("retries: every event arrived after the endpoint recovered")

# ---- a leader failover with events queued --------------------------------------------------

if PHASE1_FILE:
    rx.set_failing(True)
    before = rx.refusals()
    keys = [f"in/failover-{i:02}" for i in range(10)]
    for k in keys:
        a.put_object(Bucket=BUCKET, Key=k, Body=b"f")
    until("a refused delivery", lambda: rx.refusals() > before, 60)
    with open(PHASE1_FILE, "w") as f:
        f.write("1")
    until("the failover", lambda: os.path.exists(FAILOVER_FILE), 180, 0.5)
    # The receiver keeps failing a moment under the new leader too, then recovers.
    time.sleep(1)
    rx.set_failing(False)

    def arrived():
        got = {}
        for h, r in rx.records():
            k = urllib.parse.unquote_plus(r["s3"]["object"]["key"])
            if k in keys:
                got.setdefault(k, set()).add(h)
        return got if len(got) == len(keys) else None

    got = until("every queued event after the failover", arrived, 120, 0.5)
    for k, hs in got.items():
        assert len(hs) == 1, f"{k} arrived with ids {hs}"
    # Writes and deliveries go on under the new leader.
    a.put_object(Bucket=BUCKET, Key="in/after", Body=b"a")
    until("an event after the failover", lambda: any(k == "in/after" for k, _ in seen(BUCKET)), 60)
    dups = len([1 for h, r in rx.records() if urllib.parse.unquote_plus(r["s3"]["object"]["key"]) in keys]) - len(keys)
    print(f"failover: every queued event arrived with one id each ({dups} redeliveries)")

# ---- ListenBucketNotification with minio-py -----------------------------------------------

from minio import Minio  # noqa: E402

host = urllib.parse.urlparse(A_URL).netloc
mc = Minio(
    host,
    access_key=os.environ["AWS_ACCESS_KEY_ID"],
    secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    secure=False,
    region="us-east-1",
)
heard = []
done = threading.Event()
failed = []


def listen():
    try:
        with mc.listen_bucket_notification(
            BUCKET, prefix="live/", events=["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        ) as events:
            for ev in events:
                for r in ev["Records"]:
                    heard.append((urllib.parse.unquote_plus(r["s3"]["object"]["key"]), r["eventName"]))
                if any(k == "live/final" for k, _ in heard):
                    break
    except Exception as e:  # reported by the main thread
        failed.append(repr(e))
    finally:
        done.set()


t = threading.Thread(target=listen, daemon=True)
t.start()
# The listener is live once a put is heard (puts before it subscribed are not replayed).
n = 0


def probe():
    global n
    if failed:
        raise AssertionError(f"listen failed: {failed}")
    a.put_object(Bucket=BUCKET, Key=f"live/probe-{n}", Body=b"p")
    n += 1
    return heard


until("the listener hears a put", probe, 60, 0.5)
a.put_object(Bucket=BUCKET, Key="other/not-heard", Body=b"x")
a.delete_object(Bucket=BUCKET, Key="live/probe-0")
a.put_object(Bucket=BUCKET, Key="live/final", Body=b"x")
assert done.wait(60), f"the listener did not hear live/final: {heard}"
assert not failed, failed
assert ("live/probe-0", "ObjectRemoved:Delete") in heard, heard
assert ("live/final", "ObjectCreated:Put") in heard, heard
assert all(k.startswith("live/") for k, _ in heard), heard
print(f"listen: minio-py heard {len(heard)} events live with the prefix filter")

# A configuration without rules removes them all.
put_cfg(BUCKET)
got = a.get_bucket_notification_configuration(Bucket=BUCKET)
assert not got.get("QueueConfigurations") and not got.get("TopicConfigurations"), got
print("notify suite: ok")
