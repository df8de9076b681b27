#!/usr/bin/env bash
# Make the Secrets the manifests mount, from a cluster CA (made on first use):
#   deploy/kubernetes/make-secrets.sh [-n NAMESPACE] [--ca CA_DIR] [--masters N] OUT.yaml
# then `kubectl apply -f OUT.yaml` (before or after `kubectl apply -k overlays/...`).
#   anode-master-tls       ca.crt, master-I.crt, master-I.key for I = 1..N (default 5: a
#                          StatefulSet of up to N masters needs no new Secret)
#   anode-chunkserver-tls  ca.crt, node.crt, node.key (role chunkserver, shared by the set)
#   anode-gateway-tls      the same for the gateways
#   anode-admin-tls        an `admin` certificate for the bootstrap Job (`anode ctl`)
#   anode-s3-credentials   ANODE_ACCESS_KEY, ANODE_SECRET_KEY of the first S3 key (taken from
#                          the environment when set, else random)
# The CA's private key stays in CA_DIR (default ./anode-ca), never in the cluster: keep it
# offline and run this again to rotate (docs/security.md). Needs `anode` (ANODE_BIN or PATH)
# and kubectl (only to format the Secrets; no cluster access).
set -euo pipefail
ns=anode ca=./anode-ca masters=5 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n | --namespace) ns="$2"; shift 2 ;;
    --ca) ca="$2"; shift 2 ;;
    --masters) masters="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "make-secrets.sh: unknown flag $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
  esac
done
[ -n "$out" ] || { echo "usage: $0 [-n NAMESPACE] [--ca CA_DIR] [--masters N] OUT.yaml" >&2; exit 2; }
anode="${ANODE_BIN:-$(command -v anode || true)}"
[ -x "$anode" ] || { echo "make-secrets.sh: set ANODE_BIN or put anode on PATH" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
[ -f "$ca/ca.key" ] || "$anode" ctl certs init "$ca" >/dev/null
issue() { "$anode" ctl certs issue --ca "$ca" --role "$1" --id "$2" --out "$work/$1-$2" >/dev/null; }
secret() { # NAME ARGS...: one Secret as YAML, appended to OUT
  echo "---" >>"$out.tmp"
  kubectl create secret generic "$1" --namespace "$ns" --dry-run=client -o yaml "${@:2}" >>"$out.tmp"
}
: >"$out.tmp"
args=(--from-file=ca.crt="$ca/ca.crt")
for i in $(seq 1 "$masters"); do
  issue master "$i"
  args+=(--from-file="master-$i.crt=$work/master-$i/node.crt" --from-file="master-$i.key=$work/master-$i/node.key")
done
secret anode-master-tls "${args[@]}"
for role in chunkserver gateway admin; do
  issue "$role" k8s
  secret "anode-$role-tls" --from-file=ca.crt="$ca/ca.crt" \
    --from-file=node.crt="$work/$role-k8s/node.crt" --from-file=node.key="$work/$role-k8s/node.key"
done
ak="${ANODE_ACCESS_KEY:-AK$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)}"
sk="${ANODE_SECRET_KEY:-$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
secret anode-s3-credentials --from-literal=ANODE_ACCESS_KEY="$ak" --from-literal=ANODE_SECRET_KEY="$sk"
mv "$out.tmp" "$out"
chmod 600 "$out"
echo "make-secrets.sh: wrote $out (namespace $ns; CA in $ca; S3 access key $ak)" >&2
