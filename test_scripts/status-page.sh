#!/usr/bin/env bash
# The master status page in a real browser, and the logs of real processes.
#
# Starts 3 masters, 4 chunkservers and a gateway (lib.sh, free loopback ports), writes an
# object, stops chunkserver-4 (SIGSTOP) until the leader calls it suspect, then:
# - headless Chromium renders http://LEADER_ADMIN/ (--dump-dom and --screenshot): the DOM must
#   name the leader and every chunkserver that `anode ctl status --json` names (not hard-coded),
#   show that chunkserver as suspect with an event about it; the PNG must be 1400x1800, larger
#   than a blank page's, and hold more than a few colours (decoded here; no Pillow needed);
# - /api/status of a follower names the leader and its admin address, and the follower's page
#   (in Chromium) links the leader's; every node's admin / names its role;
# - logs: every line a master wrote is JSON (stderr is a file); a chunkserver started with
#   `log-level = "warn"` in its --config file logs no info line until SIGHUP after the file
#   says "info,anode_common=debug": one line says so, and the chunk reads of a GET then log
#   the gateway's request id (the x-amz-request-id of that GET) in their span.
# Env: STATUS_PAGE_PNG (copy the screenshot there), CHROMIUM, AWS (binaries). About 25 s
# after the build; every wait is bounded.
source "$(dirname "$0")/lib.sh"
chaos_init status-page

# Tools, installed only when missing: chromium (Debian 12 has it) and an aws CLI.
CHROMIUM="${CHROMIUM:-chromium}"
AWS="${AWS:-$(command -v aws || true)}"
need=()
command -v "$CHROMIUM" >/dev/null 2>&1 || need+=(chromium)
[ -n "$AWS" ] || need+=(awscli)
if [ "${#need[@]}" -gt 0 ]; then
  log "installing ${need[*]}"
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
  AWS="${AWS:-/usr/bin/aws}"
fi

fail() { result FAIL "reason=$1"; exit 1; }

cluster_ports 3 4 1
admin_list=""
for i in 1 2 3; do admin_list="${admin_list:+$admin_list,}127.0.0.1:${M_ADMIN[$i]}"; done
printf 'log-level = "warn"\n' >"$CHAOS_DIR/chunkserver.toml"
CHUNKSERVER_FLAGS="--master-admin $admin_list --config $CHAOS_DIR/chunkserver.toml"
cluster_start 3 4 1

# An object of several chunks (and a bucket with usage on the page).
export AWS_ACCESS_KEY_ID="$ANODE_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ANODE_SECRET_KEY" AWS_DEFAULT_REGION=us-east-1
S3=("$AWS" --endpoint-url "http://127.0.0.1:${G_PORT[1]}" --cli-read-timeout 30 --cli-connect-timeout 5)
head -c $((20 << 20)) /dev/urandom >"$CHAOS_DIR/obj"
"${S3[@]}" s3 mb s3://status-page >/dev/null || fail mb
"${S3[@]}" s3 cp --quiet "$CHAOS_DIR/obj" s3://status-page/obj || fail put

# ---- the status JSON -------------------------------------------------------------------------
st="$(ctl_status)"
leader="$(jq -r '.leader_id' <<<"$st")"
[ "$leader" != 0 ] || fail no-leader
leader_admin="$(jq -r --argjson l "$leader" '.members[] | select(.id == $l) | .admin_addr' <<<"$st")"
[ "$leader_admin" = "127.0.0.1:${M_ADMIN[$leader]}" ] || fail "ctl-admin-addr-$leader_admin"
cs_ids="$(jq -r '[.chunkservers[].id] | sort | join(" ")' <<<"$st")"
[ "$(wc -w <<<"$cs_ids")" = 4 ] || fail "ctl-chunkservers-$cs_ids"
# Ids come from registration order: the process stopped below is found by its address.
victim="$(jq -r --arg a "127.0.0.1:${C_PORT[4]}" '.chunkservers[] | select(.addr == $a) | .id' <<<"$st")"
[ -n "$victim" ] || fail no-victim-id
log "leader $leader (admin $leader_admin), chunkservers $cs_ids; chunkserver-4 has id $victim"

api="$(curl -fsS --max-time 5 "http://$leader_admin/api/status")" || fail api
jq -e --argjson l "$leader" '.id == $l and .is_leader and .role == "leader" and (.members | length) == 3
  and (.chunkservers | length) == 4 and (.buckets | map(.name) | index("status-page")) != null
  and ([.events[] | select(.kind == "leader")] | length) >= 1' <<<"$api" >/dev/null || fail api-content
grep -qiE 'secret|"access_key"' <<<"$api" && fail api-leaks
# Followers name the leader and, once they asked it, link its page.
follower_links() {
  curl -fsS --max-time 2 "http://127.0.0.1:${M_ADMIN[$1]}/api/status" | jq -e --argjson l "$leader" \
    --arg a "$leader_admin" '.is_leader == false and .leader_id == $l and (.leader_addr | length) > 0
      and .leader_admin_addr == $a'
}
for i in 1 2 3; do
  [ "$i" = "$leader" ] && continue
  follower="$i"
  wait_until 15 "master-$i links the leader's page" follower_links "$i" || fail "follower-view-$i"
done
curl -fsS --max-time 5 "http://127.0.0.1:${C_ADMIN[1]}/" | grep -q "http://$leader_admin/" || fail chunkserver-page
curl -fsS --max-time 5 "http://127.0.0.1:${G_ADMIN[1]}/" | grep -q 'id="role">gateway<' || fail gateway-page

# ---- a fault to show: chunkserver-4 stopped until suspect ------------------------------------
kill -STOP "$(pid_of chunkserver-4)"
suspect4() { ctl_status | jq -e --argjson v "$victim" '.chunkservers[] | select(.id == $v and .state == "suspect")'; }
wait_until 30 "chunkserver $victim suspect" suspect4 || fail no-suspect
# The event loop samples once a second.
has_event() { curl -fsS --max-time 2 "http://$leader_admin/api/status" | jq -e --arg m "chunkserver $victim: alive -> suspect" '[.events[] | select(.message == $m)] | length > 0'; }
wait_until 10 "the suspect event" has_event || fail no-suspect-event

# ---- headless Chromium -------------------------------------------------------------------------
chrome() {
  timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$CHAOS_DIR/chrome" --window-size=1400,1800 --virtual-time-budget=8000 "$@" \
    2>>"$CHAOS_DIR/chromium.err"
}
chrome --dump-dom "http://$leader_admin/" >"$CHAOS_DIR/dom.html" || fail chromium-dom
chrome --screenshot="$CHAOS_DIR/status.png" "http://$leader_admin/" >/dev/null || fail chromium-shot
chrome --screenshot="$CHAOS_DIR/blank.png" "about:blank" >/dev/null || fail chromium-blank
chrome --dump-dom "http://127.0.0.1:${M_ADMIN[$follower]}/" >"$CHAOS_DIR/follower.html" || fail chromium-follower
grep -q "id=\"leader-link\" href=\"http://$leader_admin/\"" "$CHAOS_DIR/follower.html" \
  || grep -q "href=\"http://$leader_admin/\" id=\"leader-link\"" "$CHAOS_DIR/follower.html" \
  || fail follower-page-no-leader-link
kill -CONT "$(pid_of chunkserver-4)"

check="$(python3 - "$CHAOS_DIR/dom.html" "$leader" "$cs_ids" "$CHAOS_DIR/status.png" "$CHAOS_DIR/blank.png" "$victim" <<'EOF'
import html.parser, struct, sys, zlib

dom_path, leader, cs_ids, png, blank, victim = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4], sys.argv[5], sys.argv[6]

class Dom(html.parser.HTMLParser):
    """Text by element id, and the cells of each table's body rows."""
    def __init__(self):
        super().__init__()
        self.stack, self.text, self.tables, self.table, self.row = [], {}, {}, None, None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.stack.append(a.get("id"))
        if tag == "table":
            self.table = a.get("id")
            self.tables.setdefault(self.table, [])
        elif tag == "tr" and self.table:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.row.append("")
    def handle_endtag(self, tag):
        if self.stack:
            self.stack.pop()
        if tag == "tr" and self.row is not None:
            if self.row:
                self.tables[self.table].append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
    def handle_data(self, data):
        for i in self.stack:
            if i:
                self.text[i] = self.text.get(i, "") + data
        if self.row:
            self.row[-1] += data

d = Dom()
d.feed(open(dom_path, encoding="utf-8").read())
problems = []
if d.text.get("leader", "").strip() != leader:
    problems.append(f"leader shown {d.text.get('leader')!r}, ctl says {leader}")
rows = d.tables.get("chunkservers", [])
shown = sorted(r[0].strip() for r in rows)
if shown != sorted(cs_ids):
    problems.append(f"chunkservers shown {shown}, ctl says {cs_ids}")
if not any(r[0].strip() == victim and "suspect" in r[3] for r in rows):
    problems.append(f"chunkserver {victim} not suspect on the page: {rows}")
if not any(f"chunkserver {victim}: alive -> suspect" in " ".join(r) for r in d.tables.get("events", [])):
    problems.append("no suspect event on the page")
if sorted(r[0].strip() for r in d.tables.get("members", [])) != ["1", "2", "3"]:
    problems.append(f"members {d.tables.get('members')}")
if not any(r[0] == "status-page" for r in d.tables.get("buckets", [])):
    problems.append("bucket status-page not listed")

def png_info(path, rows_to_decode=500):
    """Width, height, and the distinct colours of the first rows (PNG decoded by hand)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype, _, _, interlace = ihdr
    assert depth == 8 and ctype in (2, 6) and interlace == 0, ihdr
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    colours = set()
    for y in range(min(h, rows_to_decode)):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            colours.add(bytes(line[x:x + bpp]))
        prev = line
    return w, h, len(colours), len(data)

w, h, colours, size = png_info(png)
_, _, blank_colours, blank_size = png_info(blank, 50)
if (w, h) != (1400, 1800):
    problems.append(f"screenshot is {w}x{h}")
if colours < 20:
    problems.append(f"screenshot has only {colours} colours in its top rows")
if size < 3 * blank_size:
    problems.append(f"screenshot {size} bytes, blank page {blank_size}")
print(f"dom leader={d.text.get('leader','').strip()} chunkservers={shown} png={w}x{h} {size}B colours={colours} blank={blank_size}B/{blank_colours}")
for p in problems:
    print("PROBLEM " + p)
sys.exit(1 if problems else 0)
EOF
)" || { log "$check"; fail page-check; }
log "$check"
[ -n "${STATUS_PAGE_PNG:-}" ] && cp "$CHAOS_DIR/status.png" "$STATUS_PAGE_PNG"

# ---- logs ---------------------------------------------------------------------------------------
python3 - "$CHAOS_DIR"/master-*.log <<'EOF' || fail master-logs-not-json
import json, sys
n = 0
for path in sys.argv[1:]:
    for line in open(path, encoding="utf-8"):
        if not line.strip():
            continue
        v = json.loads(line)  # every line is one JSON object
        assert {"timestamp", "level", "fields"} <= v.keys(), v
        n += 1
serving = [p for p in sys.argv[1:] if any('"master serving"' in l for l in open(p))]
assert len(serving) == 3, serving
assert "\x1b[" not in "".join(open(p).read() for p in sys.argv[1:]), "ANSI codes in a log file"
print(f"{n} JSON lines")
EOF
cs1="$CHAOS_DIR/chunkserver-1.log"
grep -q '"chunkserver serving"' "$cs1" && fail warn-level-not-applied
printf 'log-level = "info,anode_common=debug"\n' >"$CHAOS_DIR/chunkserver.toml"
for i in 1 2 3 4; do kill -HUP "$(pid_of "chunkserver-$i")"; done
reloaded() { grep -q 'SIGHUP: log filter reloaded' "$CHAOS_DIR/chunkserver-$1.log"; }
for i in 1 2 3 4; do wait_until 10 "chunkserver-$i reload line" reloaded "$i" || fail "no-reload-line-$i"; done
"${S3[@]}" --debug s3api get-object --bucket status-page --key obj "$CHAOS_DIR/obj.back" \
  >/dev/null 2>"$CHAOS_DIR/get.debug" || fail get
cmp -s "$CHAOS_DIR/obj" "$CHAOS_DIR/obj.back" || fail get-bytes
rid="$(grep -o "'x-amz-request-id': '[^']*'" "$CHAOS_DIR/get.debug" | tail -1 | cut -d"'" -f4)"
[ -n "$rid" ] || fail no-request-id
reads_with_id() {
  python3 - "$rid" "$CHAOS_DIR"/chunkserver-*.log <<'EOF'
import json, sys
rid, n = sys.argv[1], 0
for path in sys.argv[2:]:
    for line in open(path, encoding="utf-8"):
        try:
            v = json.loads(line)
        except ValueError:
            continue
        span = v.get("span") or {}
        if span.get("request_id") == rid and "GetChunk" in span.get("path", ""):
            n += 1
print(n)
sys.exit(0 if n >= 3 else 1)
EOF
}
wait_until 10 "chunk reads logged with request id $rid" reads_with_id || fail "chunk-reads-without-request-id"
n_reads="$(reads_with_id)"
log "GET $rid: $n_reads chunk reads logged with its id"
result PASS "leader=$leader" "chunkservers=$(tr ' ' , <<<"$cs_ids")" "chunk_reads_with_id=$n_reads"
