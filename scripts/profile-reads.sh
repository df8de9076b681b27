#!/usr/bin/env bash
# Where a GET spends its time: one build, one scripts/local-cluster.sh cluster, `bench s3`
# PUT then GET of SIZE-byte objects (default 1024; e.g. SIZE=16777216 for large GETs) at CONC
# in flight (default 64, each phase SECONDS, default 10).
#   [SIZE=BYTES] scripts/profile-reads.sh ANODE ANODE_TOOLS [CONC] [SECONDS]
# During the GET phase only it records the CPU time (user + system, from /proc) of every
# process of the cluster and of the load tool, per GET and per GB read, and the minor page
# faults per MB read; with PERF=1 also a `perf record` profile of the leader master and the
# gateway (top symbols printed, full reports in OUT).
# OUT (default a temp dir) keeps the JSON lines and perf reports.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 ANODE ANODE_TOOLS [CONC] [SECONDS]" >&2; exit 2; }
anode="$1"; tools="$2"; conc="${3:-64}"; secs="${4:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-1400}"
out="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/anode-profile-reads.XXXXXX")}"
dir="$out/cluster"
trap 'ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
ANODE_BIN="$anode" ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
# shellcheck disable=SC1091
set -a; source "$dir/credentials"; set +a
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
leader="$(ANODE_CERTS_DIR="$dir/certs/admin-1" "$anode" ctl --masters "$masters" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_id"])')"
python3 - "$dir" "$leader" "$tools" "$conc" "$secs" "$off" "$out" "${PERF:-0}" "${SIZE:-1024}" <<'PY'
import os, subprocess, sys, time, json
d, leader, tools, conc, secs, off, out, perf, size = sys.argv[1:]
tick = os.sysconf("SC_CLK_TCK")
pids = {}
for f in sorted(os.listdir(d)):
    if f.endswith(".pid"):
        pids[f[:-4]] = int(open(os.path.join(d, f)).read().split()[0])
def stat(pid):
    """(CPU seconds, minor faults) of `pid` so far."""
    try:
        st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return ((int(st[11]) + int(st[12])) / tick, int(st[7]))
    except FileNotFoundError:
        return (0.0, 0)
env = dict(os.environ)
cmd = [tools, "bench", "s3", "--endpoint", f"http://127.0.0.1:{9000 + int(off)}",
       "--access-key", env["ANODE_ACCESS_KEY"], "--secret-key", env["ANODE_SECRET_KEY"],
       "--size", size, "--concurrency", conc, "--duration", secs, "--bucket", "prof"]
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
lines = []
before = None
perf_p = None
for line in p.stdout:
    lines.append(json.loads(line))
    if lines[-1].get("op") == "put":
        pids["load"] = p.pid
        before = {k: stat(v) for k, v in pids.items()}
        t0 = time.time()
        if perf == "1":
            targets = ",".join(str(pids[k]) for k in (f"master-{leader}", "gateway-1"))
            perf_p = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", targets, "-o",
                                       os.path.join(out, "perf.data"), "--", "sleep", str(int(secs) - 1)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
after = {k: stat(v) for k, v in pids.items()}
p.wait()
if perf_p:
    perf_p.wait()
get = [l for l in lines if l.get("op") == "get"][0]
n = get["ops"]
print(json.dumps(get))
print(f"GET phase: {n} GETs, {get['ops_per_sec']} /s, p50 {get['p50_ms']} ms, p99 {get['p99_ms']} ms; leader is master-{leader}")
gb = max(n, 1) * int(size) / 1e9
print(f"{'process':<16} {'cpu s':>7} {'us/GET':>8} {'cpu s/GB':>9} {'faults/MB':>10}")
tot = 0.0
for k in sorted(before):
    c = after.get(k, before[k])[0] - before[k][0]
    f = after.get(k, before[k])[1] - before[k][1]
    tot += c
    print(f"{k:<16} {c:>7.2f} {1e6 * c / max(n, 1):>8.1f} {c / gb:>9.2f} {f / (gb * 1000):>10.1f}")
print(f"{'total':<16} {tot:>7.2f} {1e6 * tot / max(n, 1):>8.1f} {tot / gb:>9.2f}")
PY
if [ "${PERF:-0}" = 1 ]; then
  perf report -i "$out/perf.data" --no-children --sort comm,dso,sym --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40 > "$out/perf-top.txt" || true
  perf report -i "$out/perf.data" --no-children --sort comm,dso --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -30 > "$out/perf-dso.txt" || true
  echo "--- by thread/library ($out/perf-dso.txt)"; cat "$out/perf-dso.txt"
  echo "--- top symbols ($out/perf-top.txt)"; cat "$out/perf-top.txt"
fi
echo "results in $out"
