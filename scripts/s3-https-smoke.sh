#!/usr/bin/env bash
# awscli over HTTPS against an Anode S3 endpoint (e.g. `anode dev --s3-https-listen ...`):
#   scripts/s3-https-smoke.sh https://127.0.0.1:9443 CA_BUNDLE
# Credentials: ANODE_ACCESS_KEY / ANODE_SECRET_KEY (default: the `anode dev` keys).
# Steps: the certificate is refused without the CA bundle; with it: make bucket, put 1 KiB and
# 20 MiB (multipart), list, get both back + SHA-256 compare, presigned GET through curl,
# delete, remove bucket. Prints PASS/FAIL per step; exits non-zero on any failure.
set -uo pipefail

endpoint="${1:-}"
ca="${2:-}"
case "$endpoint" in https://*) ;; *) echo "usage: $0 https://HOST:PORT CA_BUNDLE" >&2; exit 2 ;; esac
[ -f "$ca" ] || { echo "CA bundle $ca not found" >&2; exit 2; }
AWS=/usr/bin/aws
[ -x "$AWS" ] || { echo "FAIL awscli missing (apt-get install awscli)"; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID="${ANODE_ACCESS_KEY:-anodedevaccesskey}"
export AWS_SECRET_ACCESS_KEY="${ANODE_SECRET_KEY:-anodedevsecretkey-change-me}"
export AWS_DEFAULT_REGION=us-east-1 AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE="$work/aws.conf" AWS_SHARED_CREDENTIALS_FILE="$work/aws.credentials"
unset AWS_CA_BUNDLE
cat >"$AWS_CONFIG_FILE" <<EOF
[default]
region = us-east-1
s3 =
  addressing_style = path
  multipart_threshold = 8MB
  multipart_chunksize = 8MB
EOF
: >"$AWS_SHARED_CREDENTIALS_FILE"

aws_() { "$AWS" --endpoint-url "$endpoint" --ca-bundle "$ca" "$@"; }
passed=0 failed=0
step() { # NAME COMMAND...
  local name="$1"; shift
  if "$@" >"$work/step.log" 2>&1; then
    passed=$((passed + 1)); echo "PASS aws-https $name"
  else
    failed=$((failed + 1)); echo "FAIL aws-https $name"; tail -n 15 "$work/step.log" | sed 's/^/    /'
  fi
}
untrusted() { # without the CA bundle the handshake must fail verification
  if "$AWS" --endpoint-url "$endpoint" s3 ls 2>"$work/err"; then
    echo "listed without trusting the certificate"; return 1
  fi
  grep -qi "certificate" "$work/err" && cat "$work/err"
}
same() { [ "$(sha256sum <"$1")" = "$(sha256sum <"$2")" ] || { echo "SHA-256 differs: $1 $2"; return 1; }; }
presigned_get() { # KEY OUT
  local url
  url="$(aws_ s3 presign "s3://$bucket/$1" --expires-in 300)" || return 1
  curl -fsS --cacert "$ca" -o "$2" "$url"
}

listed() { aws_ s3 ls "s3://$bucket/" >"$work/ls" && cat "$work/ls" && grep -q big.bin "$work/ls"; }
compare() { same "$work/small.bin" "$work/small.out" && same "$work/big.bin" "$work/big.out"; }

bucket="https-smoke-$RANDOM$RANDOM"
head -c 1024 /dev/urandom >"$work/small.bin"
head -c $((20 * 1024 * 1024)) /dev/urandom >"$work/big.bin"
step "untrusted certificate refused" untrusted
step "mb" aws_ s3 mb "s3://$bucket"
step "put 1 KiB" aws_ s3 cp "$work/small.bin" "s3://$bucket/small.bin"
step "put 20 MiB (multipart)" aws_ s3 cp "$work/big.bin" "s3://$bucket/big.bin"
step "ls" listed
step "get 1 KiB" aws_ s3 cp "s3://$bucket/small.bin" "$work/small.out"
step "get 20 MiB" aws_ s3 cp "s3://$bucket/big.bin" "$work/big.out"
step "compare" compare
step "presigned GET (curl)" presigned_get small.bin "$work/presigned.out"
step "compare presigned" same "$work/small.bin" "$work/presigned.out"
step "rm" aws_ s3 rm --recursive "s3://$bucket/"
step "rb" aws_ s3 rb "s3://$bucket"
echo "== s3-https-smoke: $passed passed, $failed failed"
[ "$failed" = 0 ]
