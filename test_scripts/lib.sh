# Shared helpers of the chaos scenarios (sourced, not run).
#
# Each scenario starts its own multi-process cluster on free loopback ports in a temp dir
# (CHAOS_DIR), records pids of everything it starts in CHAOS_DIR/*.pid and stops only those.
# Binaries: ANODE_BIN, ANODE_TOOLS_BIN (`anode-tools`, for chaos-load), ANODE_TOXIPROXY_BIN,
# ANODE_LINCHECK_BIN, else $CARGO_TARGET_DIR/{debug,release}/... (CHAOS_PROFILE, default
# debug), built when missing.
# Results: one `PASS name ...` / `FAIL name ...` line on stdout, and a JSON line in
# $CHAOS_RESULTS (if set) for test_scripts/run-all.sh.

set -euo pipefail

CHAOS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAOS_PROFILE="${CHAOS_PROFILE:-debug}"
: "${CARGO_TARGET_DIR:=$HOME/.cache/anode-target}"

chaos_bins() {
  local tdir="$CARGO_TARGET_DIR/$CHAOS_PROFILE"
  ANODE="${ANODE_BIN:-$tdir/anode}"
  TOOLS="${ANODE_TOOLS_BIN:-$tdir/anode-tools}"
  TOXI="${ANODE_TOXIPROXY_BIN:-$tdir/anode-toxiproxy}"
  LINCHECK="${ANODE_LINCHECK_BIN:-$tdir/anode-lincheck}"
  if [ ! -x "$ANODE" ] || [ ! -x "$TOOLS" ] || [ ! -x "$TOXI" ] || [ ! -x "$LINCHECK" ]; then
    local rel=()
    [ "$CHAOS_PROFILE" = release ] && rel=(--release)
    (cd "$CHAOS_ROOT" && cargo build "${rel[@]}" -p anode -p anode-tools -p anode-toxiproxy -p anode-lincheck >&2)
  fi
}

log() { echo "[$(date +%H:%M:%S)] $SCENARIO: $*" >&2; }

now_ms() { date +%s%3N; }

# A free loopback TCP port not handed out before in this run (remembered in a file, since
# callers run this in a command substitution subshell).
free_port() {
  local p used="$CHAOS_DIR/ports-used"
  while :; do
    # Below the kernel's ephemeral range (32768+ by default), so no outgoing connection can
    # hold the port of a server while it restarts.
    p="$(python3 -c '
import random, socket
while True:
    p = random.randrange(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()
')"
    grep -qx "$p" "$used" 2>/dev/null && continue
    echo "$p" >>"$used"
    echo "$p"; return
  done
}

# chaos_init NAME: temp dir, binaries, cleanup trap.
chaos_init() {
  SCENARIO="$1"
  chaos_bins
  CHAOS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/anode-chaos-$SCENARIO.XXXXXX")"
  CHAOS_T0="$(now_ms)"
  trap chaos_cleanup EXIT
  log "dir $CHAOS_DIR"
}

chaos_cleanup() {
  local rc=$?
  local f pid
  for f in "$CHAOS_DIR"/*.pid; do
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    kill -CONT "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  done
  if [ "$rc" -eq 0 ] && [ -z "${CHAOS_KEEP:-}" ]; then
    rm -rf "$CHAOS_DIR"
  else
    echo "$SCENARIO: kept $CHAOS_DIR (logs, histories)" >&2
  fi
}

alive() { [ -f "$CHAOS_DIR/$1.pid" ] && kill -0 "$(cat "$CHAOS_DIR/$1.pid")" 2>/dev/null; }
pid_of() { cat "$CHAOS_DIR/$1.pid"; }

launch() { # name args...
  local name="$1"; shift
  mkdir -p "$CHAOS_DIR/$name"
  nohup "$@" >>"$CHAOS_DIR/$name.log" 2>&1 &
  echo $! >"$CHAOS_DIR/$name.pid"
  disown $!
}

# kill_proc NAME SIGNAL: signal a process we started; for KILL/TERM wait until it is gone.
kill_proc() {
  local name="$1" sig="$2" pid
  pid="$(pid_of "$name")"
  kill "-$sig" "$pid" 2>/dev/null || true
  if [ "$sig" = KILL ] || [ "$sig" = TERM ]; then
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { log "$name did not exit on $sig"; return 1; }
    rm -f "$CHAOS_DIR/$name.pid"
  fi
  return 0
}

# ---- the cluster ----------------------------------------------------------------------------

# cluster_ports NMASTERS NCHUNK NGW: allocate ports (M_PORT[i], M_ADMIN[i], C_PORT, C_ADMIN,
# G_PORT, G_ADMIN).
cluster_ports() {
  NM="$1"; NC="$2"; NG="$3"
  declare -g -A M_PORT M_ADMIN C_PORT C_ADMIN G_PORT G_ADMIN M_PEERS
  local i
  for i in $(seq 1 "$NM"); do M_PORT[$i]="$(free_port)"; M_ADMIN[$i]="$(free_port)"; done
  for i in $(seq 1 "$NC"); do C_PORT[$i]="$(free_port)"; C_ADMIN[$i]="$(free_port)"; done
  for i in $(seq 1 "$NG"); do G_PORT[$i]="$(free_port)"; G_ADMIN[$i]="$(free_port)"; done
  MASTERS=""
  local peers=""
  for i in $(seq 1 "$NM"); do
    MASTERS="${MASTERS:+$MASTERS,}127.0.0.1:${M_PORT[$i]}"
    peers="${peers:+$peers,}$i=127.0.0.1:${M_PORT[$i]}"
  done
  for i in $(seq 1 "$NM"); do M_PEERS[$i]="$peers"; done
  ENDPOINTS=""
  for i in $(seq 1 "$NG"); do ENDPOINTS="${ENDPOINTS:+$ENDPOINTS,}http://127.0.0.1:${G_PORT[$i]}"; done
  chaos_credentials
}

# chaos_credentials: the scenario's S3 key (random, kept in CHAOS_DIR/credentials) exported as
# ANODE_ACCESS_KEY / ANODE_SECRET_KEY.
chaos_credentials() {
  if [ ! -f "$CHAOS_DIR/credentials" ]; then
    printf 'ANODE_ACCESS_KEY=AK%s\nANODE_SECRET_KEY=%s\n' \
      "$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)" \
      "$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$CHAOS_DIR/credentials"
  fi
  # shellcheck disable=SC1091
  source "$CHAOS_DIR/credentials"
  export ANODE_ACCESS_KEY ANODE_SECRET_KEY
}

# certs ROLE ID: `--certs-dir DIR` for process ROLE-ID, signed by the scenario's CA in
# $CHAOS_DIR/certs/ca (both made on first use). Every gRPC port speaks mutual TLS; clients
# check a server's role by name, so toxiproxy in the path changes nothing.
certs() {
  local c="$CHAOS_DIR/certs"
  [ -f "$c/ca/ca.key" ] || "$ANODE" ctl certs init "$c/ca" >/dev/null
  [ -f "$c/$1-$2/node.crt" ] || "$ANODE" ctl certs issue --ca "$c/ca" --role "$1" --id "$2" --out "$c/$1-$2" >/dev/null
  echo "--certs-dir $c/$1-$2"
}

start_master() { # i [extra flags]
  local i="$1"; shift
  launch "master-$i" "$ANODE" master --id "$i" --data "$CHAOS_DIR/master-$i" \
    --listen "127.0.0.1:${M_PORT[$i]}" --admin-listen "127.0.0.1:${M_ADMIN[$i]}" \
    --peers "${M_PEERS[$i]}" $(certs master "$i") ${MASTER_FLAGS:-} "$@"
}
start_chunkserver() { # i [extra flags]
  local i="$1"
  launch "chunkserver-$i" "$ANODE" chunkserver --data "$CHAOS_DIR/chunkserver-$i" \
    --listen "127.0.0.1:${C_PORT[$i]}" --admin-listen "127.0.0.1:${C_ADMIN[$i]}" \
    --masters "$MASTERS" --rack "rack-$i" $(certs chunkserver "$i") ${CHUNKSERVER_FLAGS:-} "${@:2}"
}
start_gateway() { # i
  local i="$1"
  launch "gateway-$i" "$ANODE" gateway --listen "127.0.0.1:${G_PORT[$i]}" \
    --admin-listen "127.0.0.1:${G_ADMIN[$i]}" --masters "$MASTERS" $(certs gateway "$i")
}

# anode ctl as the operator (admin-1).
ctl() { "$ANODE" ctl $(certs admin 1) "$@"; }

healthy() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$1/health"; }

wait_until() { # seconds what command...
  local secs="$1" what="$2"; shift 2
  local end=$(( $(date +%s) + secs ))
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then log "timed out after ${secs}s waiting for $what"; return 1; fi
    sleep 0.2
  done
}

ctl_status() { ctl --masters "${1:-$MASTERS}" status --json 2>/dev/null; }

leader_id() { ctl_status "${1:-}" | jq -r '.leader_id // 0'; }

has_leader() { [ "$(leader_id "${1:-}")" != 0 ]; }

chunkservers_alive() { # n
  [ "$(ctl_status | jq '[.chunkservers[] | select(.state=="alive")] | length')" -ge "$1" ]
}

s3_answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

# cluster_start NM NC NG: ports (unless allocated), then every process, the key, and waits.
cluster_start() {
  [ -n "${MASTERS:-}" ] || cluster_ports "$1" "$2" "$3"
  local i
  for i in $(seq 1 "$NM"); do start_master "$i"; done
  for i in $(seq 1 "$NC"); do start_chunkserver "$i"; done
  wait_until 60 "a raft leader" has_leader
  local ok=""
  for _ in $(seq 1 150); do
    if ctl --masters "$MASTERS" keys create --name default \
      --access-key "$ANODE_ACCESS_KEY" --secret-key "$ANODE_SECRET_KEY" >/dev/null 2>"$CHAOS_DIR/ctl.err" \
      || grep -q AccessKeyExists "$CHAOS_DIR/ctl.err"; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { log "could not create the access key: $(cat "$CHAOS_DIR/ctl.err")"; return 1; }
  for i in $(seq 1 "$NG"); do start_gateway "$i"; done
  for i in $(seq 1 "$NG"); do wait_until 60 "gateway-$i" s3_answers "${G_PORT[$i]}"; done
  wait_until 60 "$NC live chunkservers" chunkservers_alive "$NC"
  log "cluster up: masters $MASTERS, S3 $ENDPOINTS"
}

# The process name (master-N) of the current leader, or empty.
leader_name() { local id; id="$(leader_id)"; [ "$id" != 0 ] && echo "master-$id"; }

# ---- the workload and its checks ------------------------------------------------------------

# chaos_load NAME args...: run `anode-tools chaos-load` (history NAME.jsonl, summary NAME.json).
chaos_load() {
  local name="$1"; shift
  "$TOOLS" chaos-load --endpoints "$ENDPOINTS" --bucket chaos \
    --history "$CHAOS_DIR/$name.jsonl" --summary "$CHAOS_DIR/$name.json" "$@" \
    >"$CHAOS_DIR/$name.out" 2>"$CHAOS_DIR/$name.err"
}

# chaos_load_bg NAME args...: the same in the background; pid in CHAOS_DIR/load-NAME.pid.
chaos_load_bg() {
  local name="$1"; shift
  "$TOOLS" chaos-load --endpoints "$ENDPOINTS" --bucket chaos \
    --history "$CHAOS_DIR/$name.jsonl" --summary "$CHAOS_DIR/$name.json" "$@" \
    >"$CHAOS_DIR/$name.out" 2>"$CHAOS_DIR/$name.err" &
  echo $! >"$CHAOS_DIR/load-$name.pid"
}

wait_load() { # NAME: wait for a background load; fail if it failed
  local name="$1" pid rc=0
  pid="$(cat "$CHAOS_DIR/load-$name.pid")"
  wait "$pid" || rc=$?
  rm -f "$CHAOS_DIR/load-$name.pid"
  [ "$rc" -eq 0 ] || { log "chaos-load $name exited $rc: $(tail -3 "$CHAOS_DIR/$name.err")"; return 1; }
}

# ok_between NAME FROM_MS TO_MS: ok operations of NAME.jsonl completed in that wall-clock window.
ok_between() {
  python3 - "$CHAOS_DIR/$1.jsonl" "$(summary "$1" start_unix_ms)" "$2" "$3" <<'PY'
import json, sys
path, start, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
n = 0
for line in open(path):
    e = json.loads(line)
    t = start + e["time_ns"] // 1_000_000
    if e["type"] == "ok" and a <= t <= b:
        n += 1
print(n)
PY
}

# summary NAME FIELD
summary() { jq -r ".$2" "$CHAOS_DIR/$1.json"; }

# lincheck NAME: check NAME.jsonl; sets LIN_RC (0 ok, 1 violation, 2 unknown, 3 unreadable) and
# LIN_OUT. Also proves the checker sees this history: a copy in which one read returns a value
# no put wrote must be rejected (LIN_MUTANT_RC must be 1).
lincheck() {
  local name="$1" h="$CHAOS_DIR/$1.jsonl"
  [ -s "$h" ] || { LIN_RC=3; LIN_OUT="empty history $h"; LIN_MUTANT_RC=x; return 0; }
  LIN_RC=0; LIN_OUT="$("$LINCHECK" "$h" 2>&1)" || LIN_RC=$?
  python3 - "$h" "$CHAOS_DIR/$name.mutant.jsonl" <<'EOF'
import json, sys
src, dst = sys.argv[1], sys.argv[2]
events = [json.loads(l) for l in open(src) if l.strip()]
invokes = {e["op_id"]: e for e in events if e["type"] == "invoke"}
done = False
for e in events:
    if not done and e["type"] == "ok" and e["f"] == "get" and e["value"] is not None:
        e["value"] = "never-written-" + e["value"]
        done = True
if not done:  # no read returned a value: turn the first ok read into one of a phantom
    for e in events:
        if e["type"] == "ok" and e["f"] == "get":
            e["value"] = "never-written"; done = True; break
with open(dst, "w") as f:
    for e in events:
        f.write(json.dumps(e) + "\n")
sys.exit(0 if done else 1)
EOF
  LIN_MUTANT_RC=0; "$LINCHECK" "$CHAOS_DIR/$name.mutant.jsonl" >/dev/null 2>&1 || LIN_MUTANT_RC=$?
  local n; n="$(wc -l <"$h")"
  log "lincheck $name ($n events): rc $LIN_RC ($(echo "$LIN_OUT" | head -1)); broken copy rc $LIN_MUTANT_RC"
}

lin_ok() { [ "$LIN_RC" = 0 ] && [ "$LIN_MUTANT_RC" = 1 ]; }

# Linearizability anomalies for the report: 0 when linearizable, 1 when a violation was found,
# "?" when the checker could not decide.
lin_anomalies() { case "$LIN_RC" in 0) echo 0 ;; 1) echo 1 ;; *) echo "?" ;; esac; }

# verify NAME: check NAME.writes through every endpoint (VERIFY_RC, NAME.verify.json).
verify_writes() {
  local name="$1"
  VERIFY_RC=0
  "$TOOLS" chaos-load --endpoints "$ENDPOINTS" --bucket chaos --key-prefix "${2:-}" \
    --verify "$CHAOS_DIR/$name.writes" --summary "$CHAOS_DIR/$name.verify.json" \
    >"$CHAOS_DIR/$name.verify.out" 2>"$CHAOS_DIR/$name.verify.err" || VERIFY_RC=$?
  log "verify $name: rc $VERIFY_RC $(cat "$CHAOS_DIR/$name.verify.out" 2>/dev/null | head -c 600)"
  [ -s "$CHAOS_DIR/$name.verify.json" ] || echo '{}' >"$CHAOS_DIR/$name.verify.json"
}
vsum() { jq -r ".$2 // \"?\"" "$CHAOS_DIR/$1.verify.json"; }

# result VERDICT key=value...: print the PASS/FAIL line and append a JSON record to $CHAOS_RESULTS.
result() {
  local verdict="$1"; shift
  local secs=$(( ($(now_ms) - CHAOS_T0) / 1000 ))
  echo "$verdict $SCENARIO $* run_s=$secs"
  if [ -n "${CHAOS_RESULTS:-}" ]; then
    local args=(--arg scenario "$SCENARIO" --arg verdict "$verdict" --arg run_s "$secs")
    local kv
    for kv in "$@"; do args+=(--arg "${kv%%=*}" "${kv#*=}"); done
    jq -cn "${args[@]}" '$ARGS.named' >>"$CHAOS_RESULTS"
  fi
  [ "$verdict" = PASS ]
}

# ---- toxiproxy ------------------------------------------------------------------------------

toxi_start() {
  TOXI_PORT="$(free_port)"
  launch toxiproxy "$TOXI" --host 127.0.0.1 --port "$TOXI_PORT"
  wait_until 20 "toxiproxy" curl -fs "http://127.0.0.1:$TOXI_PORT/version"
}
toxi() { # METHOD PATH [JSON]
  curl -fsS -X "$1" "http://127.0.0.1:$TOXI_PORT$2" ${3:+-H 'Content-Type: application/json' -d "$3"} >/dev/null
}
toxi_proxy() { # name listen_port upstream_port
  toxi POST /proxies "{\"name\":\"$1\",\"listen\":\"127.0.0.1:$2\",\"upstream\":\"127.0.0.1:$3\",\"enabled\":true}"
}
toxi_enable() { toxi POST "/proxies/$1" "{\"enabled\":$2}"; }

# proxied_masters: route every master->master raft link i->j through its own proxy
# mI_to_J (listen Q[i,j], upstream master j's real port). Member i's --peers names the
# proxies for the others and its real address for itself (also its --advertise), so clients,
# chunkservers and gateways still reach every master directly.
proxied_masters() {
  declare -g -A Q
  local i j peers
  for i in $(seq 1 "$NM"); do
    peers="$i=127.0.0.1:${M_PORT[$i]}"
    for j in $(seq 1 "$NM"); do
      [ "$i" = "$j" ] && continue
      Q[$i,$j]="$(free_port)"
      toxi_proxy "m${i}_to_$j" "${Q[$i,$j]}" "${M_PORT[$j]}"
      peers="$peers,$j=127.0.0.1:${Q[$i,$j]}"
    done
    M_PEERS[$i]="$peers"
  done
}

# isolate I true|false: cut (false) or restore (true) every raft link to and from master I.
links_of() {
  local i="$1" j
  for j in $(seq 1 "$NM"); do [ "$j" = "$i" ] || echo "m${i}_to_$j m${j}_to_$i"; done
}
set_isolated() {
  local l enabled=true
  [ "$2" = yes ] && enabled=false
  for l in $(links_of "$1"); do toxi_enable "$l" "$enabled"; done
}

# ---- raft observations ------------------------------------------------------------------------

# metric ADMIN_PORT NAME: a gauge of one master (empty when unreachable).
metric() {
  curl -fs --max-time 1 "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v n="$2" '$1==n {print $2}'
}

# sample_raft_bg: every 300 ms, each master's (term, is_leader, commit) into raft-samples.txt
# until CHAOS_DIR/stop-sampler exists.
sample_raft_bg() {
  (
    while [ ! -e "$CHAOS_DIR/stop-sampler" ]; do
      for i in $(seq 1 "$NM"); do
        m="$(curl -fs --max-time 1 "http://127.0.0.1:${M_ADMIN[$i]}/metrics" 2>/dev/null || true)"
        [ -n "$m" ] || continue
        echo "$(now_ms) $i $(echo "$m" | awk '$1=="anode_master_raft_term"{t=$2} $1=="anode_master_is_leader"{l=$2} $1=="anode_master_raft_commit_index"{c=$2} END{print t, l, c}')"
      done >>"$CHAOS_DIR/raft-samples.txt"
      sleep 0.3
    done
  ) &
  echo $! >"$CHAOS_DIR/sampler.pid"
}
stop_sampler() { touch "$CHAOS_DIR/stop-sampler"; wait "$(cat "$CHAOS_DIR/sampler.pid")" 2>/dev/null || true; rm -f "$CHAOS_DIR/sampler.pid"; }

# split_brain: terms with more than one leader, from every master's "became leader at term T"
# log lines and from the sampled metrics. Prints offending "term: ids"; empty = none.
split_brain() {
  {
    for f in "$CHAOS_DIR"/master-*.log; do
      sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -o 'became leader at term [0-9]* .*raft_id=[0-9]*' \
        | sed -E 's/became leader at term ([0-9]+) .*raft_id=([0-9]+)/\1 \2/'
    done
    [ -f "$CHAOS_DIR/raft-samples.txt" ] && awk '$4==1 {print $3, $2}' "$CHAOS_DIR/raft-samples.txt"
  } | sort -u | awk '{ids[$1]=ids[$1] " " $2; n[$1]++} END {for (t in n) if (n[t]>1) print t ":" ids[t]}'
}
# elected_after T_MS: ms from T_MS to the first "became leader" logged by any master after it
# (the election time, free of ctl's own timeouts); empty when none.
elected_after() {
  cat "$CHAOS_DIR"/master-*.log | sed 's/\x1b\[[0-9;]*m//g' | grep 'became leader at term' \
    | python3 -c '
import datetime, json, sys
t0 = int(sys.argv[1])
best = None
for line in sys.stdin:
    # JSON lines (the default when stderr is a file) or text lines (--log-format text).
    ts = json.loads(line)["timestamp"] if line.startswith("{") else line.split()[0]
    d = datetime.datetime.strptime(ts[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    ms = int(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
    if ms > t0 and (best is None or ms < best):
        best = ms
print("" if best is None else best - t0)
' "$1"
}
leader_terms() { # how many distinct leader elections the logs show
  cat "$CHAOS_DIR"/master-*.log | sed 's/\x1b\[[0-9;]*m//g' | grep -c 'became leader at term' || true
}
