#!/usr/bin/env bash
# What authorization and the audit log cost on 1 KiB PUT and GET, measured in one run on one
# machine: scripts/local-cluster.sh clusters, `anode-tools bench suite` cells put-1KiB and
# get-1KiB at 16 and 64 in flight, four sides:
#   pre     a build from before users and authorization (PRE_ANODE), administrator key, no audit
#   admin   this build, administrator key, no audit log (ANODE_CLUSTER_AUDIT=off)
#   owner   this build, audit log on, a non-admin user writing and reading its own bucket
#   policy  this build, audit log on, user bob writing and reading alice's bucket through a
#           bucket policy (Allow s3:PutObject, s3:GetObject, s3:ListBucket to bob)
#   scripts/bench-authz.sh PRE_ANODE ANODE ANODE_TOOLS [ROUNDS=2] [SECONDS=10]
# With ANODE_BENCH_OUT=DIR the raw JSON of each side is kept there (authz-SIDE.json).
# Rounds run the sides in rotated order to spread machine drift. Prints each cell per side and
# round, then `anode-tools bench compare` of every side against `pre` (ratio per cell, median
# over the rounds). Needs python3 with boto3 (scripts/setup.sh installs it) for the policy.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 PRE_ANODE ANODE ANODE_TOOLS [ROUNDS] [SECONDS]" >&2; exit 2; }
pre_anode="$1"; anode="$2"; tools="$3"; rounds="${4:-2}"; secs="${5:-10}"
root="$(cd "$(dirname "$0")/.." && pwd)"
off="${ANODE_PORT_OFFSET:-4400}"
endpoint="http://127.0.0.1:$((9000 + off))"
masters="127.0.0.1:$((7001 + off)),127.0.0.1:$((7002 + off)),127.0.0.1:$((7003 + off))"
work="$(mktemp -d "${TMPDIR:-/tmp}/anode-bench-authz.XXXXXX")"
trap 'for d in "$work"/*-cluster; do [ -d "$d" ] && ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT

# `anode ctl ... --json` as the cluster's admin.
ctl() { "$anode" ctl --masters "$masters" --certs-dir "$dir/certs/admin-1" --json "$@"; }

# A user and one key of it: prints "ACCESS SECRET".
user_key() {
  ctl users create "$1" >/dev/null
  ctl keys create --user "$1" | python3 -c 'import json,sys; k=json.load(sys.stdin); print(k["access_key"], k["secret_key"])'
}

# As ACCESS SECRET: create bucket $3 and give user $4 read and write through a bucket policy.
grant_by_policy() {
  python3 - "$endpoint" "$@" <<'EOF'
import json, sys
import boto3
from botocore.config import Config
ep, ak, sk, bucket, grantee = sys.argv[1:6]
c = boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=ak,
                 aws_secret_access_key=sk, config=Config(s3={"addressing_style": "path"}))
c.create_bucket(Bucket=bucket)
c.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "BenchGrantee", "Effect": "Allow",
    "Principal": {"AWS": [f"arn:aws:iam::anode:user/{grantee}"]},
    "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket"],
    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}))
EOF
}

run_side() { # side round
  local side="$1" round="$2" bin="$anode" audit=on
  dir="$work/$side-cluster"
  case "$side" in pre) bin="$pre_anode"; audit=off ;; admin) audit=off ;; esac
  ANODE_CLUSTER_AUDIT="$audit" ANODE_BIN="$bin" ANODE_PORT_OFFSET="$off" \
    "$root/scripts/local-cluster.sh" start "$dir" >/dev/null
  # shellcheck disable=SC1091
  source "$dir/credentials"
  local ak="$ANODE_ACCESS_KEY" sk="$ANODE_SECRET_KEY"
  case "$side" in
    owner) read -r ak sk < <(user_key carol) ;;
    policy)
      local alice; read -r -a alice < <(user_key alice)
      read -r ak sk < <(user_key bob)
      grant_by_policy "${alice[0]}" "${alice[1]}" bench-suite bob ;;
  esac
  "$tools" bench suite --endpoint "$endpoint" --access-key "$ak" --secret-key "$sk" \
    --bucket bench-suite --sizes 1KiB --only put-1KiB-,get-1KiB- --seconds "$secs" \
    --label "authz-$side" --out "$work/$side.json" --append >"$work/$side-$round.log" 2>&1 ||
    { cat "$work/$side-$round.log" >&2; exit 1; }
  grep -E 'c[0-9]+ ' "$work/$side-$round.log" | sed "s/^/round $round $side: /"
  if [ "$audit" = on ]; then
    echo "round $round $side: $(cat "$dir"/gateway-1.audit.log* | wc -l) audit lines," \
      "$(grep -c '"decision":"deny"' "$dir"/gateway-1.audit.log* | awk -F: '{s+=$NF} END{print s+0}') refused"
  fi
  ANODE_PORT_OFFSET="$off" "$root/scripts/local-cluster.sh" stop "$dir" >/dev/null
  rm -rf "$dir"
}

sides=(pre admin owner policy)
for r in $(seq 1 "$rounds"); do
  n=${#sides[@]}
  for i in $(seq 0 $((n - 1))); do run_side "${sides[$(((i + r - 1) % n))]}" "$r"; done
done

for side in admin owner policy; do
  echo "== $side / pre"
  "$tools" bench compare "$work/$side.json" "$work/pre.json"
done
echo "== policy / admin (same build: a policy grantee with the audit log against an administrator key without it)"
"$tools" bench compare "$work/policy.json" "$work/admin.json"
if [ -n "${ANODE_BENCH_OUT:-}" ]; then
  mkdir -p "$ANODE_BENCH_OUT"
  for side in "${sides[@]}"; do cp "$work/$side.json" "$ANODE_BENCH_OUT/authz-$side.json"; done
fi
