#!/usr/bin/env bash
# What event notifications cost and how fast they are delivered, on `anode dev`:
#
#   scripts/bench-notify.sh [--anode BIN] [--tools BIN] [--objects N] [--rounds R]
#
# Starts `anode dev` (temp dir, free loopback ports) and a webhook receiver (Python,
# 127.0.0.1) that answers 200 and counts events, registers it as a target, then alternates
# R rounds of `anode-tools bench s3` (N 1 KiB PUTs, then GETs; 16 workers) into a bucket
# without notification rules (A) and one whose rule takes every ObjectCreated event (B).
# Prints, per round, PUT ops/s of A and B and their ratio, B's PUT ops/s while the endpoint
# refuses (events only queue) and its ratio to A, and for B how long the leader
# took to deliver the round's events after the PUTs ended and the delivery rate over the
# whole round (events / (bench + drain)); then the delivery rate of a backlog of N events
# queued while the endpoint was down. Stops what it started (by pid).
set -euo pipefail
cd "$(dirname "$0")/.."
anode=target/debug/anode
tools=target/debug/anode-tools
objects=2000
rounds=2
while [ $# -gt 0 ]; do
  case "$1" in
    --anode) anode="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --objects) objects="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    *) echo "usage: $0 [--anode BIN] [--tools BIN] [--objects N] [--rounds R]" >&2; exit 2 ;;
  esac
done
dir=$(mktemp -d /tmp/anode-bench-notify.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
read -r base s3port hookport < <(python3 "$(dirname "$0")/dev-ports.py" 2500 2600)
rnd() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export ANODE_ACCESS_KEY="BENCHNOTIFY$(rnd 6 | tr a-f A-F)" ANODE_SECRET_KEY="$(rnd 20)"
ANODE_NOTIFY_RETRY_MAX_MS=200 "$anode" dev --data "$dir/data" --listen "127.0.0.1:$s3port" --base-port "$base" >"$dir/anode.log" 2>&1 &
pids+=($!)
# The receiver: counts POSTs (one event each) in $dir/count.
python3 - "$hookport" "$dir/count" >"$dir/hook.log" 2>&1 <<'EOF' &
import http.server, os, sys, threading
port, path = int(sys.argv[1]), sys.argv[2]
n = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global n
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if os.path.exists(path + ".down"):
            self.send_response(503); self.send_header("content-length", "0"); self.end_headers()
            return
        with lock:
            n += 1
            open(path + ".tmp", "w").write(str(n))
            os.replace(path + ".tmp", path)
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
pids+=($!)
ctl() { "$anode" ctl --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/admin-1" "$@"; }
for _ in $(seq 1 300); do
  [ "$(ctl status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length')" = 3 ] && break
  sleep 0.2
done
ctl notify target-add hooks "http://127.0.0.1:$hookport/" >/dev/null
ep="http://127.0.0.1:$s3port"
export AWS_ACCESS_KEY_ID="$ANODE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ANODE_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1
python3 - "$ep" <<'EOF'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1])
for b in ("bench-plain", "bench-notify"):
    s3.create_bucket(Bucket=b)
s3.put_bucket_notification_configuration(Bucket="bench-notify", NotificationConfiguration={
    "QueueConfigurations": [{"Id": "all", "QueueArn": "arn:anode:sqs::hooks",
                             "Events": ["s3:ObjectCreated:*"]}]})
EOF
count() { local c; c=$(cat "$dir/count" 2>/dev/null || true); echo "${c:-0}"; }
put_rate() { jq -r 'select(.op == "put") | .ops_per_sec' "$1"; }
echo "round  PUT/s without rules  PUT/s with rules  ratio  drain after bench  delivered/s  PUT/s rules, endpoint down  ratio"
for r in $(seq 1 "$rounds"); do
  "$tools" bench s3 --endpoint "$ep" --bucket bench-plain --size 1KiB --objects "$objects" >"$dir/a$r.txt" 2>&1
  before=$(count)
  start=$(date +%s.%N)
  "$tools" bench s3 --endpoint "$ep" --bucket bench-notify --size 1KiB --objects "$objects" >"$dir/b$r.txt" 2>&1
  puts_end=$(date +%s.%N)
  want=$((before + objects))
  for _ in $(seq 1 6000); do [ "$(count)" -ge "$want" ] && break; sleep 0.05; done
  done_at=$(date +%s.%N)
  # The same writes while the endpoint refuses them: what the queue costs without the
  # delivery (the events wait; they are delivered in the backlog phase below).
  touch "$dir/count.down"
  "$tools" bench s3 --endpoint "$ep" --bucket bench-notify --size 1KiB --objects "$objects" >"$dir/c$r.txt" 2>&1
  rm "$dir/count.down"
  for _ in $(seq 1 6000); do [ "$(count)" -ge "$((want + objects))" ] && break; sleep 0.05; done
  a=$(put_rate "$dir/a$r.txt"); b=$(put_rate "$dir/b$r.txt"); c=$(put_rate "$dir/c$r.txt")
  python3 - "$r" "$a" "$b" "$start" "$puts_end" "$done_at" "$objects" "$(count)" "$want" "$c" <<'EOF'
import sys
r, a, b, start, end, done, n, got, want, c = sys.argv[1:]
a, b, c, start, end, done, n = float(a), float(b), float(c), float(start), float(end), float(done), int(n)
ok = "" if int(got) >= int(want) else f"  (only {int(got) - int(want) + n} of {n} delivered)"
print(f"{r:>5}  {a:>19.1f}  {b:>16.1f}  {b / a:>5.2f}  {done - end:>15.2f} s  {n / (done - start):>11.1f}  {c:>26.1f}  {c / a:>5.2f}{ok}")
EOF
done
# A backlog: the endpoint is down while N events queue, then up; the time to deliver them all
# is the delivery rate alone (the worker retries every 200 ms at most while it is down).
touch "$dir/count.down"
before=$(count)
"$tools" bench s3 --endpoint "$ep" --bucket bench-notify --size 1KiB --objects "$objects" >"$dir/backlog.txt" 2>&1
want=$((before + objects))
up=$(date +%s.%N)
rm "$dir/count.down"
for _ in $(seq 1 6000); do [ "$(count)" -ge "$want" ] && break; sleep 0.02; done
done_at=$(date +%s.%N)
python3 -c "import sys; n, up, done = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]); print(f'backlog of {n} events delivered in {done - up:.2f} s ({n / (done - up):.0f} events/s)')" "$objects" "$up" "$done_at"
echo "(bench output and logs in $dir)"
