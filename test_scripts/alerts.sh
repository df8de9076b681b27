#!/usr/bin/env bash
# A real alert on a real fault: a multi-process cluster on loopback (3 masters, 4 chunkservers,
# 1 gateway), a real Prometheus (Debian's `prometheus`, installed when missing) scraping every
# admin port each second with deploy/prometheus/alerts.yml, then `kill -9` of one chunkserver
# (by the pid its launch recorded) and a bounded wait until Prometheus's /api/v1/alerts shows
# AnodeChunkserverDead firing for that server; then the server is started again and the alert
# must resolve. Also: every metric the alert rules name is on the live /metrics.
#
# Shortened for the test (said here, and in the log):
#   - the rules are a copy of alerts.yml with every `for:` set to ALERT_FOR (default 3s), so
#     the alert fires seconds after the condition holds, not after its production minute;
#   - masters run with --lease-ms 1000 --dead-after-ms 4000 (production: 3 s and 30 s), so the
#     leader declares the killed server dead after 4 s instead of 30 s.
# Prints `PASS alerts ...` or `FAIL alerts ...`; stops only what it started.
source "$(dirname "$0")/lib.sh"

ALERT_FOR="${ALERT_FOR:-3s}"
WAIT_SECS="${ALERT_WAIT_SECS:-90}"

SCENARIO=alerts
ANODE="${ANODE_BIN:-$CARGO_TARGET_DIR/$CHAOS_PROFILE/anode}"
if [ ! -x "$ANODE" ]; then
  rel=(); [ "$CHAOS_PROFILE" = release ] && rel=(--release)
  (cd "$CHAOS_ROOT" && cargo build "${rel[@]}" --bin anode >&2)
fi
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  log "installing prometheus (Debian)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --user pyyaml 2>/dev/null ||
  python3 -m pip install --quiet --user --break-system-packages pyyaml
CHAOS_DIR="$(mktemp -d "${TMPDIR:-/tmp}/anode-chaos-$SCENARIO.XXXXXX")"
CHAOS_T0="$(now_ms)"
trap chaos_cleanup EXIT
log "dir $CHAOS_DIR"

fail() { echo "FAIL alerts $*"; exit 1; }

MASTER_FLAGS="--lease-ms 1000 --dead-after-ms 4000"
cluster_ports 3 4 1
PROM_PORT="$(free_port)"
cluster_start 3 4 1 || fail "cluster did not start"

# ---- Prometheus: scrape config and the rules with short `for:` ------------------------------
python3 - "$CHAOS_ROOT/deploy/prometheus/alerts.yml" "$CHAOS_DIR/alerts.yml" "$ALERT_FOR" <<'PY'
import sys, yaml
src, dst, short = sys.argv[1:]
doc = yaml.safe_load(open(src))
n = 0
for g in doc["groups"]:
    g["interval"] = "1s"
    for r in g["rules"]:
        if "for" in r:
            r["for"] = short
            n += 1
yaml.safe_dump(doc, open(dst, "w"), sort_keys=False)
print(f"alerts.yml copied with for: {short} in {n} rules, evaluated every 1s", file=sys.stderr)
PY
targets() { local -n ports=$1; local out="" i; for i in "${!ports[@]}"; do out="${out:+$out, }\"127.0.0.1:${ports[$i]}\""; done; echo "[$out]"; }
cat >"$CHAOS_DIR/prometheus.yml" <<EOF
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: ["$CHAOS_DIR/alerts.yml"]
scrape_configs:
  - job_name: anode-master
    static_configs: [{targets: $(targets M_ADMIN)}]
  - job_name: anode-chunkserver
    static_configs: [{targets: $(targets C_ADMIN)}]
  - job_name: anode-gateway
    static_configs: [{targets: $(targets G_ADMIN)}]
EOF
promtool check config "$CHAOS_DIR/prometheus.yml" >"$CHAOS_DIR/promtool.log" 2>&1 || fail "promtool: $(cat "$CHAOS_DIR/promtool.log")"
launch prometheus prometheus --config.file="$CHAOS_DIR/prometheus.yml" \
  --storage.tsdb.path="$CHAOS_DIR/prometheus" --web.listen-address="127.0.0.1:$PROM_PORT"
api() { curl -fs --max-time 2 "http://127.0.0.1:$PROM_PORT/api/v1/$1"; }
all_up() { # every target scraped and up
  api targets | jq -e '[.data.activeTargets[] | select(.health == "up")] | length == 8' >/dev/null
}
wait_until 60 "Prometheus scraping all 8 targets" all_up || fail "targets: $(api targets | jq -c '[.data.activeTargets[] | {scrapeUrl, health, lastError}]')"
firing() { api alerts | jq -r '.data.alerts[] | select(.state == "firing") | "\(.labels.alertname) \(.labels.chunkserver // "")"'; }
# Before the fault: a leader, and nothing firing (but AnodeFrequentElections: the elections of
# the cluster's own start count in its 15-minute window).
quiet() {
  [ -z "$(firing | grep -v '^AnodeFrequentElections')" ] &&
    api 'query?query=max(anode_master_is_leader)' | jq -e '.data.result[0].value[1] == "1"' >/dev/null
}
wait_until 60 "a leader seen by Prometheus and no alert firing" quiet || fail "alerts firing before the fault: $(firing | tr '\n' ';')"

# ---- every metric the rules name is exported by the live processes --------------------------
: >"$CHAOS_DIR/metrics.txt"
for p in "${M_ADMIN[@]}" "${C_ADMIN[@]}" "${G_ADMIN[@]}"; do
  curl -fs --max-time 2 "http://127.0.0.1:$p/metrics" >>"$CHAOS_DIR/metrics.txt" || fail "no /metrics on $p"
done
python3 "$CHAOS_ROOT/scripts/check_deploy.py" metrics --source "$CHAOS_ROOT/master/src" \
  --source "$CHAOS_ROOT/chunkserver/src" --source "$CHAOS_ROOT/gateway/src" \
  --exported "$CHAOS_DIR/metrics.txt" "$CHAOS_ROOT/deploy/prometheus/alerts.yml" >"$CHAOS_DIR/live-metrics.log" 2>&1 ||
  fail "alert rules name metrics the live cluster does not export: $(tail -5 "$CHAOS_DIR/live-metrics.log" | tr '\n' ' ')"
log "$(tail -1 "$CHAOS_DIR/live-metrics.log" | cut -c1-120)..."

# ---- the fault -----------------------------------------------------------------------------
victim_addr="127.0.0.1:${C_PORT[4]}"
victim_id="$(ctl_status | jq -r --arg a "$victim_addr" '.chunkservers[] | select(.addr == $a) | .id')"
[ -n "$victim_id" ] || fail "no chunkserver registered at $victim_addr"
log "kill -9 chunkserver-4 (id $victim_id, pid $(pid_of chunkserver-4))"
t_kill="$(now_ms)"
kill_proc chunkserver-4 KILL || fail "could not kill chunkserver-4"
dead_firing() {
  api alerts | jq -e --arg id "$victim_id" \
    '[.data.alerts[] | select(.labels.alertname == "AnodeChunkserverDead" and .labels.chunkserver == $id and .state == "firing")] | length == 1' >/dev/null
}
wait_until "$WAIT_SECS" "AnodeChunkserverDead firing for chunkserver $victim_id" dead_firing ||
  fail "no AnodeChunkserverDead within ${WAIT_SECS}s; alerts: $(api alerts | jq -c '[.data.alerts[] | {n: .labels.alertname, s: .state, c: .labels.chunkserver}]')"
fire_ms=$(( $(now_ms) - t_kill ))
alert="$(api alerts | jq -c --arg id "$victim_id" '.data.alerts[] | select(.labels.alertname == "AnodeChunkserverDead" and .labels.chunkserver == $id) | .labels')"
log "firing after ${fire_ms} ms: $alert"
others="$(firing | grep '^AnodeChunkserverDead' | grep -v " $victim_id\$" || true)"
[ -z "$others" ] || fail "AnodeChunkserverDead fired for servers that run: $others"

# ---- the server comes back: the alert resolves ---------------------------------------------
start_chunkserver 4
t_back="$(now_ms)"
not_dead() { ! api alerts | jq -e '[.data.alerts[] | select(.labels.alertname == "AnodeChunkserverDead")] | length > 0' >/dev/null; }
wait_until "$WAIT_SECS" "AnodeChunkserverDead resolved" not_dead || fail "the alert did not resolve after chunkserver-4 came back"
resolve_ms=$(( $(now_ms) - t_back ))
echo "PASS alerts AnodeChunkserverDead fired ${fire_ms} ms after kill -9 of chunkserver $victim_id (dead-after 4 s, for: $ALERT_FOR, scrape/eval 1 s), resolved ${resolve_ms} ms after its restart"
