#!/usr/bin/env bash
# Offline checks of deploy/ (CI runs this from scripts/test.sh; no cluster, no network):
#  1. Kubernetes: render the base and every overlay with `kubectl kustomize`, validate every
#     manifest against the Kubernetes JSON schemas of each version in ANODE_K8S_VERSIONS
#     (kubernetes-validate 1.37.0 from PyPI, strict: unknown fields are errors). The ServiceMonitor is
#     a CRD with no schema in that bundle: it is left out of the schema run and checked by
#     scripts/check_deploy.py instead (apiVersion, selector, port), with the cross-object checks
#     (MASTER_COUNT = master replicas, probes on /health, Secrets and keys that
#     make-secrets.sh makes). The wrapper scripts run with the real `anode` parsing the flags
#     they build. A broken manifest must fail the validator (negative check).
#  2. systemd: `systemd-analyze verify` of the units (any warning fails), and the keys of the
#     example TOML files are flags of `anode ROLE`. Skipped with a message without systemd.
#  3. Prometheus: `promtool check rules` and `check config`, `promtool test rules`.
#  4. Alerts and the Grafana dashboard name only metrics the binaries register; the dashboard's
#     expressions parse; a copy with a misspelt metric must fail.
# Needs: kubectl (with kustomize), python3; installs kubernetes-validate (pip) and promtool
# (Debian's prometheus) when missing. ANODE_BIN: the anode binary (default: the debug build in
# $CARGO_TARGET_DIR, built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
versions="${ANODE_K8S_VERSIONS:-1.29.0 1.32.0 1.35.0}"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-check-deploy.XXXXXX")"
trap 'rm -rf "$work"' EXIT
say() { echo "== check-deploy: $*"; }
die() { echo "check-deploy: FAIL: $*" >&2; exit 1; }

# ---- tools ------------------------------------------------------------------------------------
export PATH="$HOME/.local/bin:$PATH"
command -v kubectl >/dev/null || die "kubectl (with kustomize) is needed"
if ! command -v kubernetes-validate >/dev/null; then
  say "installing kubernetes-validate (PyPI)"
  python3 -m pip install --quiet --user "kubernetes-validate==1.37.0" 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages "kubernetes-validate==1.37.0"
fi
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --user pyyaml 2>/dev/null ||
  python3 -m pip install --quiet --user --break-system-packages pyyaml
if ! command -v promtool >/dev/null; then
  say "installing promtool (Debian package prometheus)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if [ -z "${ANODE_BIN:-}" ]; then
  : "${CARGO_TARGET_DIR:=$HOME/.cache/anode-target}"
  ANODE_BIN="$CARGO_TARGET_DIR/debug/anode"
  [ -x "$ANODE_BIN" ] || cargo build --bin anode >&2
fi
[ -x "$ANODE_BIN" ] || die "no anode binary at $ANODE_BIN"

# ---- 1. Kubernetes ------------------------------------------------------------------------------
k8s=deploy/kubernetes
say "make-secrets.sh (real certificates from a throwaway CA)"
ANODE_BIN="$ANODE_BIN" bash "$k8s/make-secrets.sh" --ca "$work/ca" "$work/secrets.yaml" 2>"$work/secrets.log" ||
  { cat "$work/secrets.log" >&2; die "make-secrets.sh"; }

# validate FILE: every document against every version; no kind may lack a schema.
validate() {
  local f="$1" v out
  for v in $versions; do
    if ! out="$(kubernetes-validate --strict --quiet -k "$v" "$f" 2>&1)"; then
      echo "$out" >&2; return 1
    fi
    if [ -n "$out" ]; then echo "$out" >&2; return 1; fi # e.g. "Couldn't find schema"
  done
}

for target in base overlays/small overlays/production; do
  name="${target//\//-}"
  kubectl kustomize "$k8s/$target" >"$work/$name.yaml" || die "kustomize $target"
  # The CRD objects (ServiceMonitor) have no schema in the bundle: split them off.
  python3 - "$work/$name.yaml" "$work/$name.core.yaml" "$work/$name.crd.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core = [d for d in docs if d["kind"] != "ServiceMonitor"]
crd = [d for d in docs if d["kind"] == "ServiceMonitor"]
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
yaml.safe_dump_all(crd, open(sys.argv[3], "w"))
print(f"  {sys.argv[1]}: {len(core)} objects, {len(crd)} ServiceMonitor")
PY
  validate "$work/$name.core.yaml" || die "$target does not validate"
  python3 scripts/check_deploy.py k8s "$work/$name.yaml" "$work/secrets.yaml" || die "$target cross-object checks"
  say "$target: valid for Kubernetes $versions (ServiceMonitor: checked by check_deploy.py, no schema)"
done
validate "$work/secrets.yaml" || die "the Secrets of make-secrets.sh do not validate"

say "negative check: a broken StatefulSet must fail the validator"
sed -e 's/^  replicas: 3$/  replicas: "three"/' "$work/base.core.yaml" >"$work/broken.yaml"
grep -q 'replicas: "three"' "$work/broken.yaml" || die "could not make the broken copy"
if kubernetes-validate --strict --quiet -k 1.32.0 "$work/broken.yaml" >/dev/null 2>&1; then
  die "the validator accepted a StatefulSet with replicas: \"three\""
fi
python3 - "$work/base.core.yaml" "$work/typo.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
for d in docs:
    if d["kind"] == "Deployment":
        d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {"path": "/health"}
yaml.safe_dump_all(docs, open(sys.argv[2], "w"))
PY
if kubernetes-validate --strict --quiet -k 1.32.0 "$work/typo.yaml" >/dev/null 2>&1; then
  die "the strict validator accepted an unknown field (httpGett)"
fi
say "negative check: MASTER_COUNT out of step with the master replicas must fail"
sed -e 's/^  MASTER_COUNT: "5"$/  MASTER_COUNT: "3"/' "$work/overlays-production.yaml" >"$work/skew.yaml"
if python3 scripts/check_deploy.py k8s "$work/skew.yaml" >/dev/null 2>&1; then
  die "check_deploy.py accepted 5 masters with MASTER_COUNT=3"
fi

say "wrapper scripts: the flags they build, parsed by the real anode"
stub="$work/stub"; mkdir -p "$stub"
# `anode` in the wrappers' PATH: print the command line, then let the real binary parse it
# (`--help` at the end exits 0 only when every flag before it is known and its value valid).
cat >"$stub/anode" <<EOF
#!/bin/sh
echo "anode \$*" >>"$work/commands"
exec "$ANODE_BIN" "\$@" --help >/dev/null
EOF
printf '#!/bin/sh\necho zone-b\n' >"$stub/kubectl"
chmod +x "$stub/anode" "$stub/kubectl"
scripts="$k8s/base/scripts"
cluster=(MASTER_COUNT=3 MASTER_STATEFULSET=anode-master MASTER_SERVICE=anode-master MASTER_PORT=7001
  CHUNKSERVER_SERVICE=anode-chunkserver CHUNKSERVER_PORT=7101 S3_PORT=9000)
run() { env -i PATH="$stub:/usr/bin:/bin" "${cluster[@]}" "$@" 2>>"$work/wrappers.log"; }
: >"$work/commands"
run POD_NAME=anode-master-2 ADMIN_PORT=7081 sh "$scripts/master.sh" || die "master.sh (member 3)"
run POD_NAME=anode-master-3 ADMIN_PORT=7081 sh "$scripts/master.sh" || die "master.sh (member 4, --join)"
run NODE_NAME=node-a RACK_FILE="$work/rack" ZONE_LABEL_JSONPATH='topology\.kubernetes\.io/zone' sh "$scripts/rack.sh" || die "rack.sh"
run POD_NAME=anode-chunkserver-1 RACK_FILE="$work/rack" ADMIN_PORT=7181 sh "$scripts/chunkserver.sh" || die "chunkserver.sh"
run ADMIN_PORT=9001 sh "$scripts/gateway.sh" || die "gateway.sh"
peers="1=anode-master-0.anode-master:7001,2=anode-master-1.anode-master:7001,3=anode-master-2.anode-master:7001"
masters="anode-master-0.anode-master:7001,anode-master-1.anode-master:7001,anode-master-2.anode-master:7001"
expect() { grep -qF -- "$1" "$work/commands" || { cat "$work/commands" >&2; die "no command with: $1"; }; }
expect "master --id 3 --data /data --listen 0.0.0.0:7001 --admin-listen 0.0.0.0:7081 --advertise anode-master-2.anode-master:7001 --peers $peers --certs-dir /etc/anode/tls/master-3"
expect "--certs-dir /etc/anode/tls/master-4 --join"
expect "chunkserver --data /data --listen 0.0.0.0:7101 --admin-listen 0.0.0.0:7181 --advertise anode-chunkserver-1.anode-chunkserver:7101 --masters $masters --rack zone-b"
expect "gateway --listen 0.0.0.0:9000 --admin-listen 0.0.0.0:9001 --masters $masters --certs-dir /etc/anode/tls"
for s in "$scripts"/*.sh; do sh -n "$s" || die "sh -n $s"; done

# ---- 2. systemd ---------------------------------------------------------------------------------
sd=deploy/systemd
for role in master chunkserver gateway; do
  python3 - "$sd/$role.toml" "$role" "$ANODE_BIN" <<'PY' || die "$role.toml names a flag anode $role does not have"
import subprocess, sys, tomllib
path, role, anode = sys.argv[1:]
keys = tomllib.load(open(path, "rb"))
helptext = subprocess.run([anode, role, "--help"], capture_output=True, text=True, check=True).stdout
bad = [k for k in keys if f"--{k.replace('_', '-')} " not in helptext and f"--{k.replace('_', '-')}\n" not in helptext]
if bad:
    sys.exit(f"{path}: not flags of `anode {role}`: {bad}")
PY
done
if command -v systemd-analyze >/dev/null; then
  say "systemd-analyze verify (units pointed at $ANODE_BIN)"
  mkdir -p "$work/units"
  for u in "$sd"/*.service; do
    sed "s|/usr/local/bin/anode|$ANODE_BIN|" "$u" >"$work/units/$(basename "$u")"
  done
  out="$(systemd-analyze verify --man=no "$work/units"/*.service 2>&1)" || { echo "$out" >&2; die "systemd-analyze verify"; }
  [ -z "$out" ] || { echo "$out" >&2; die "systemd-analyze verify warned"; }
  sed -i 's/^ProtectSystem=strict/ProtectSystem=strictt/' "$work/units/anode-master.service"
  out="$(systemd-analyze verify --man=no "$work/units/anode-master.service" 2>&1 || true)"
  [ -n "$out" ] || die "negative check: systemd-analyze did not flag ProtectSystem=strictt"
else
  say "systemd-analyze not found: unit verification skipped (apt-get install systemd)"
fi

# ---- 3. Prometheus ------------------------------------------------------------------------------
say "promtool"
promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool check config prometheus.yml)
promtool test rules deploy/prometheus/alerts_test.yml

# ---- 4. metric names in alerts and dashboard ------------------------------------------------------
say "alerts and dashboard use only exported metrics"
src=(--source master/src --source chunkserver/src --source gateway/src --source common/src)
python3 scripts/check_deploy.py metrics "${src[@]}" deploy/prometheus/alerts.yml deploy/grafana/anode.json
python3 scripts/check_deploy.py dashboard-rules deploy/grafana/anode.json "$work/dashboard-rules.yml"
promtool check rules "$work/dashboard-rules.yml" >/dev/null || die "a dashboard expression does not parse"
sed 's/anode_gateway_sent_bytes_total/anode_gateway_sent_byte_total/' deploy/grafana/anode.json >"$work/typo.json"
cmp -s deploy/grafana/anode.json "$work/typo.json" && die "could not make the misspelt dashboard"
if python3 scripts/check_deploy.py metrics "${src[@]}" "$work/typo.json" >/dev/null 2>&1; then
  die "negative check: a dashboard with a misspelt metric passed"
fi
say "OK (Kubernetes $versions; systemd; promtool; metric names)"
