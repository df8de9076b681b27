"""S3 CORS (issue 15), driven by boto3, raw HTTP and headless Chromium against two gateways
($S3_ENDPOINT and $S3_ENDPOINT_2) of a real cluster.

- Put/Get/DeleteBucketCors through one gateway, read through the other; S3's errors for bad
  configurations.
- Preflight OPTIONS (no signature): 400 without Origin or Access-Control-Request-Method, 403
  without rules or without a matching rule (origin, method, requested headers), 200 with the
  rule's headers otherwise; on both gateways.
- CORS headers on actual responses with an Origin: signed, presigned, anonymous, errors.
- A real browser: Chromium loads a page from another origin (a local HTTP server on its own
  port) that PUTs through a presigned URL, GETs it back reading an exposed header, and fails
  to read from an origin the rules do not allow.

Run by `tests/s3_cors.rs`. Prints "cors suite: ok" and exits 0 only if every check passed.
Needs boto3 and Chromium ($CHROMIUM, default `chromium`).
"""
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

from botocore.exceptions import ClientError

from common import s3_client

A_URL = os.environ["S3_ENDPOINT"]
B_URL = os.environ.get("S3_ENDPOINT_2", A_URL)
CHROMIUM = os.environ.get("CHROMIUM", "chromium")


def client(endpoint):
    return s3_client(endpoint)


a = client(A_URL)
b = client(B_URL)


def code(fn, **kw):
    try:
        fn(**kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} {kw} did not fail")


def raw(method, url, headers=None, data=None):
    """(status, headers as a lower-cased dict, body) of one plain HTTP request."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def until(what, fn, timeout=15.0):
    """Wait until fn() returns a true value (the bucket cache of the other gateway: 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Pages(http.server.BaseHTTPRequestHandler):
    """Serves the test pages (another origin than the gateways)."""

    pages = {}

    def do_GET(self):
        page = self.pages.get(self.path)
        if page is None:
            self.send_response(404)
            self.end_headers()
            return
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


PAGE = """<!doctype html><html><body><pre id="out">running</pre><script>
async function run() {
  const out = {};
  try {
    const put = await fetch(PUT_URL, {method: 'PUT', body: 'from-the-browser',
                                      headers: {'Content-Type': 'text/plain'}});
    out.put_status = put.status;
    const get = await fetch(GET_URL);
    out.get_status = get.status;
    out.get_body = await get.text();
    out.get_etag = get.headers.get('ETag');
    out.get_color = get.headers.get('x-amz-meta-color');
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById('out').textContent = 'RESULT' + JSON.stringify(out) + 'END';
}
run();
</script></body></html>"""


def browser(url):
    """What the page at `url` wrote, run in headless Chromium."""
    prof = tempfile.mkdtemp(prefix="anode-cors-chrome-")
    try:
        r = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={prof}", "--virtual-time-budget=20000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(prof, ignore_errors=True)
    dom = r.stdout
    if "RESULT" not in dom:
        raise AssertionError(f"chromium gave no result: rc {r.returncode}\n{dom[-2000:]}\n{r.stderr[-2000:]}")
    text = dom.split("RESULT", 1)[1].split("END", 1)[0]
    return json.loads(text.replace("&amp;", "&").replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">"))


def main():
    bucket = "cors-web"
    a.create_bucket(Bucket=bucket)
    a.put_object(Bucket=bucket, Key="hello.txt", Body=b"hi-cors", Metadata={"color": "blue"})
    obj = f"{A_URL}/{bucket}/hello.txt"

    # No configuration yet.
    assert code(a.get_bucket_cors, Bucket=bucket) == ("NoSuchCORSConfiguration", 404)
    st, _, _ = raw("OPTIONS", obj)
    assert st == 400, st
    st, h, _ = raw("OPTIONS", obj, {"Origin": "http://x.test", "Access-Control-Request-Method": "GET"})
    assert st == 403 and "access-control-allow-origin" not in h, (st, h)
    st, h, _ = raw("GET", obj, {"Origin": "http://x.test"})
    assert st == 403 and "access-control-allow-origin" not in h, (st, h)

    srv, origin = serve()
    srv2, other_origin = serve()
    rules = {
        "CORSRules": [
            {"ID": "page", "AllowedOrigins": [origin], "AllowedMethods": ["GET", "PUT", "HEAD"],
             "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag", "x-amz-meta-color"],
             "MaxAgeSeconds": 600},
            {"AllowedOrigins": ["*.suffix"], "AllowedMethods": ["GET"]},
        ]
    }
    # Bad configurations, as S3 answers them.
    bad_method = {"CORSRules": [{"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}]}
    assert code(a.put_bucket_cors, Bucket=bucket, CORSConfiguration=bad_method)[1] == 400
    two_wild = {"CORSRules": [{"AllowedOrigins": ["*a*"], "AllowedMethods": ["GET"]}]}
    assert code(a.put_bucket_cors, Bucket=bucket, CORSConfiguration=two_wild) == ("InvalidRequest", 400)
    assert code(a.get_bucket_cors, Bucket=bucket) == ("NoSuchCORSConfiguration", 404)

    a.put_bucket_cors(Bucket=bucket, CORSConfiguration=rules)
    got = a.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got[0]["AllowedOrigins"] == [origin] and got[0]["MaxAgeSeconds"] == 600, got
    assert got[0]["ExposeHeaders"] == ["ETag", "x-amz-meta-color"], got
    assert got[1]["AllowedMethods"] == ["GET"] and "ID" not in got[1], got
    # The other gateway sees the rules (its bucket cache: within 2 s).
    until("gateway B to read the rules", lambda: b.get_bucket_cors(Bucket=bucket)["CORSRules"] == got)

    for base in (A_URL, B_URL):
        url = f"{base}/{bucket}/hello.txt"

        def preflight_ok():
            st, h, _ = raw("OPTIONS", url, {"Origin": origin, "Access-Control-Request-Method": "PUT",
                                            "Access-Control-Request-Headers": "content-type, x-amz-date"})
            return (st, h) if st == 200 else None

        st, h = until(f"preflight through {base}", preflight_ok)
        assert h["access-control-allow-origin"] == origin, h
        assert h["access-control-allow-methods"] == "GET, PUT, HEAD", h
        assert h["access-control-allow-headers"] == "content-type, x-amz-date", h
        assert h["access-control-max-age"] == "600", h
        assert h["access-control-allow-credentials"] == "true", h
        assert h["access-control-expose-headers"] == "ETag, x-amz-meta-color", h
        # The wildcard rule allows GET only, and no requested headers.
        st, h, _ = raw("OPTIONS", url, {"Origin": "a.suffix", "Access-Control-Request-Method": "GET"})
        assert st == 200 and h["access-control-allow-origin"] == "a.suffix", (st, h)
        st, h, _ = raw("OPTIONS", url, {"Origin": "a.suffix", "Access-Control-Request-Method": "PUT"})
        assert st == 403 and "access-control-allow-origin" not in h, (st, h)
        st, _, body = raw("OPTIONS", url, {"Origin": "a.suffix", "Access-Control-Request-Method": "GET",
                                           "Access-Control-Request-Headers": "x-amz-meta-a"})
        assert st == 403 and b"AccessForbidden" in body, (st, body)
        st, _, body = raw("OPTIONS", url, {"Origin": origin})
        assert st == 400 and b"BadRequest" in body, (st, body)
        # A preflight of a bucket-level request.
        st, h, _ = raw("OPTIONS", f"{base}/{bucket}", {"Origin": origin, "Access-Control-Request-Method": "GET"})
        assert st == 200 and h["access-control-allow-origin"] == origin, (st, h)

    # Actual responses: presigned, anonymous (refused), missing key: headers whatever the status.
    signed_get = a.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "hello.txt"}, ExpiresIn=600)
    st, h, body = raw("GET", signed_get, {"Origin": origin})
    assert st == 200 and body == b"hi-cors", (st, body)
    assert h["access-control-allow-origin"] == origin and h["access-control-expose-headers"] == "ETag, x-amz-meta-color", h
    st, h, _ = raw("GET", signed_get, {"Origin": "http://evil.test"})
    assert st == 200 and "access-control-allow-origin" not in h, h
    st, h, _ = raw("GET", obj, {"Origin": "b.suffix"})
    assert st == 403 and h["access-control-allow-origin"] == "b.suffix", (st, h)
    st, h, _ = raw("PUT", obj, {"Origin": "b.suffix", "Content-Length": "0"}, data=b"")
    assert st == 403 and "access-control-allow-origin" not in h, (st, h)
    st, h, _ = raw("PUT", obj, {"Origin": "b.suffix", "Access-Control-Request-Method": "GET"}, data=b"")
    assert st == 403 and h["access-control-allow-origin"] == "b.suffix", (st, h)
    missing = a.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"}, ExpiresIn=600)
    st, h, _ = raw("GET", missing, {"Origin": origin})
    assert st == 404 and h["access-control-allow-origin"] == origin, (st, h)

    # A real browser on another origin.
    put_url = a.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "from-browser.txt",
                                                             "ContentType": "text/plain"}, ExpiresIn=600)
    get_url = a.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "hello.txt"}, ExpiresIn=600)
    page = PAGE.replace("PUT_URL", json.dumps(put_url)).replace("GET_URL", json.dumps(get_url))
    Pages.pages["/page.html"] = page
    res = browser(f"{origin}/page.html")
    assert res.get("put_status") == 200, res
    assert res.get("get_status") == 200 and res.get("get_body") == "hi-cors", res
    etag = a.head_object(Bucket=bucket, Key="hello.txt")["ETag"]
    assert res.get("get_etag") == etag and res.get("get_color") == "blue", (res, etag)
    assert a.get_object(Bucket=bucket, Key="from-browser.txt")["Body"].read() == b"from-the-browser"
    # The same page from an origin no rule allows: the browser refuses to read the answers.
    res = browser(f"{other_origin}/page.html")
    assert "error" in res and "put_status" not in res, res
    print("browser: cross-origin PUT + GET allowed from", origin, "and refused from", other_origin)

    # Deleting the rules: preflights are refused again, through both gateways.
    a.delete_bucket_cors(Bucket=bucket)
    a.delete_bucket_cors(Bucket=bucket)  # 204 again, as S3
    assert code(a.get_bucket_cors, Bucket=bucket) == ("NoSuchCORSConfiguration", 404)
    for base in (A_URL, B_URL):
        until(f"preflight refused through {base}", lambda: raw(
            "OPTIONS", f"{base}/{bucket}/hello.txt",
            {"Origin": origin, "Access-Control-Request-Method": "GET"})[0] == 403)
    srv.shutdown()
    srv2.shutdown()
    print("cors suite: ok")


main()
