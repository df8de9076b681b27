#!/usr/bin/env bash
# S3 client smoke run with Debian's awscli, s3cmd and rclone against an Anode S3 endpoint.
#   scripts/s3-clients.sh ENDPOINT        (e.g. http://127.0.0.1:9000)
# Credentials: ANODE_ACCESS_KEY / ANODE_SECRET_KEY (default: the `anode dev` keys).
# Installs the three Debian packages when missing (apt-get; sudo only when not root).
# For each tool: make bucket, put 1 KiB and 30 MiB (multipart, 8 MiB parts: ETag must end in
# -4), list with prefix + delimiter, get + SHA-256 compare, ranged get, server-side copy,
# delete, remove bucket. Prints PASS/FAIL per step and exits non-zero on any failure.
# Path-style addressing, plain HTTP. Set S3_CLIENTS_TOOLS="aws rclone" to run a subset.
set -uo pipefail

endpoint="${1:-}"
[ -n "$endpoint" ] || { echo "usage: $0 ENDPOINT (e.g. http://127.0.0.1:9000)" >&2; exit 2; }
endpoint="${endpoint%/}"
hostport="${endpoint#http://}"
case "$endpoint" in http://*) ;; *) echo "ENDPOINT must be http://HOST:PORT" >&2; exit 2 ;; esac
ak="${ANODE_ACCESS_KEY:-anodedevaccesskey}"
sk="${ANODE_SECRET_KEY:-anodedevsecretkey-change-me}"
tools="${S3_CLIENTS_TOOLS:-aws s3cmd rclone}"

# ---- tools ----------------------------------------------------------------------------------
install_missing() {
  local missing=()
  for pkg in awscli s3cmd rclone curl; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "== installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
}
install_missing || { echo "FAIL install awscli s3cmd rclone"; exit 1; }
# Debian's binaries, not whatever else is first on PATH (pip or pyenv shims).
export AWS=/usr/bin/aws S3CMD=/usr/bin/s3cmd RCLONE=/usr/bin/rclone

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log="$work/step.log"
export endpoint work

export AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_DEFAULT_REGION=us-east-1
export AWS_CONFIG_FILE="$work/aws.conf" AWS_SHARED_CREDENTIALS_FILE="$work/aws.credentials"
export AWS_PAGER="" AWS_EC2_METADATA_DISABLED=true
# Plain HTTP: a CA bundle is useless, and rclone 1.60 fails to start with AWS_CA_BUNDLE set.
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
cat >"$work/s3cmd.conf" <<EOF
[default]
access_key = $ak
secret_key = $sk
host_base = $hostport
host_bucket = $hostport
bucket_location = us-east-1
use_https = False
signature_v2 = False
multipart_chunk_size_mb = 8
progress_meter = False
EOF
export RCLONE_CONFIG="$work/rclone.conf"
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_ANODE_TYPE=s3 RCLONE_CONFIG_ANODE_PROVIDER=Other
export RCLONE_CONFIG_ANODE_ACCESS_KEY_ID="$ak" RCLONE_CONFIG_ANODE_SECRET_ACCESS_KEY="$sk"
export RCLONE_CONFIG_ANODE_ENDPOINT="$endpoint" RCLONE_CONFIG_ANODE_REGION=us-east-1
export RCLONE_CONFIG_ANODE_FORCE_PATH_STYLE=true

aws_() { "$AWS" --endpoint-url "$endpoint" "$@"; }
s3cmd_() { "$S3CMD" -c "$work/s3cmd.conf" "$@"; }
rclone_() {
  "$RCLONE" --s3-upload-cutoff 8M --s3-chunk-size 8M --s3-copy-cutoff 8M --retries 1 \
    --low-level-retries 1 "$@"
}

# ---- reporting ------------------------------------------------------------------------------
passed=0 failed=0
# step TOOL NAME COMMAND...: run COMMAND, print PASS or FAIL (with the end of its output).
step() {
  local tool="$1" name="$2"; shift 2
  local t0=$SECONDS
  if "$@" >"$log" 2>&1; then
    passed=$((passed + 1)); echo "PASS $tool $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); echo "FAIL $tool $name"; tail -n 15 "$log" | sed 's/^/    /'
  fi
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
same() { # FILE_A FILE_B
  [ "$(sha "$1")" = "$(sha "$2")" ] || { echo "SHA-256 differs: $1 $2"; return 1; }
}
# The expected bytes of a range: slice FILE OFFSET COUNT > OUT.
slice() { tail -c +"$(($2 + 1))" "$1" | head -c "$3"; }
# ETag of an object (through awscli), must be multipart with N parts: etag_parts BUCKET KEY N.
etag_parts() {
  local etag
  etag="$(aws_ s3api head-object --bucket "$1" --key "$2" --query ETag --output text)" || return 1
  echo "ETag $etag"
  [[ "$etag" =~ -$3\"?$ ]] || { echo "expected a multipart ETag ending in -$3"; return 1; }
}
# listing_has FILE LINE...: every LINE appears in FILE (as a substring of some line).
listing_has() {
  local f="$1"; shift
  cat "$f"
  for want in "$@"; do grep -qF -- "$want" "$f" || { echo "missing: $want"; return 1; }; done
}
# Ranged GET through a presigned URL (awscli presign + curl): presigned_range BUCKET KEY A B OUT.
presigned_range() {
  local url
  url="$(aws_ s3 presign "s3://$1/$2" --expires-in 300)" || return 1
  curl -fsS -H "Range: bytes=$3-$4" -o "$5" "$url"
}
absent() { # BUCKET KEY: HEAD fails with 404
  local out
  if out="$(aws_ s3api head-object --bucket "$1" --key "$2" 2>&1)"; then
    echo "still there: $out"; return 1
  fi
  echo "$out"
  grep -q '(404)' <<<"$out"
}
# A DELETE naming a version that does not exist must leave the live object alone.
version_delete_refused() { # BUCKET KEY
  if aws_ s3api delete-object --bucket "$1" --key "$2" --version-id 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY; then
    echo "DELETE with an unknown versionId succeeded"; return 1
  fi
  aws_ s3api head-object --bucket "$1" --key "$2" | grep ETag
}

# Steps run some commands under `bash -c`; they see these.
export -f aws_ s3cmd_ rclone_ sha same presigned_range

# ---- data -----------------------------------------------------------------------------------
head -c 1024 /dev/urandom >"$work/small.bin"
head -c $((30 * 1024 * 1024)) /dev/urandom >"$work/big.bin"
echo top >"$work/top.txt"
echo nested >"$work/nested.txt"
off=12345678 count=1048576 # a range that crosses the 8 MiB part boundary
slice "$work/big.bin" "$off" "$count" >"$work/range.want"
slice "$work/small.bin" 100 200 >"$work/small-range.want"
last=$((off + count - 1))

# ---- per tool -------------------------------------------------------------------------------
run_aws() {
  local b="s3c-aws-$suffix" t=aws
  step $t "make bucket" aws_ s3 mb "s3://$b"
  step $t "put 1 KiB" aws_ s3 cp "$work/small.bin" "s3://$b/dir/small.bin"
  step $t "put 30 MiB multipart" aws_ s3 cp "$work/big.bin" "s3://$b/dir/big.bin"
  step $t "30 MiB was multipart (ETag -4)" etag_parts "$b" dir/big.bin 4
  step $t "put listing fixtures" bash -c "aws_ s3 cp '$work/top.txt' 's3://$b/top.txt' &&
    aws_ s3 cp '$work/nested.txt' 's3://$b/dir/sub/nested.txt'"
  aws_ s3api list-objects-v2 --bucket "$b" --prefix dir/ --delimiter / --output text \
    --query '[Contents[].Key, CommonPrefixes[].Prefix]' >"$work/ls.aws" 2>&1
  step $t "list prefix+delimiter (v2)" listing_has "$work/ls.aws" dir/small.bin dir/big.bin dir/sub/
  step $t "list shows no top.txt under dir/" bash -c "! grep -q top.txt '$work/ls.aws' && ! grep -q nested '$work/ls.aws'"
  aws_ s3 ls "s3://$b/dir/" >"$work/ls2.aws" 2>&1
  step $t "s3 ls prefix (v2, delimiter)" listing_has "$work/ls2.aws" "PRE sub/" " 1024 small.bin" " 31457280 big.bin"
  step $t "get 1 KiB + SHA-256" bash -c "aws_ s3 cp 's3://$b/dir/small.bin' '$work/small.aws' && same '$work/small.bin' '$work/small.aws'"
  step $t "get 30 MiB + SHA-256" bash -c "aws_ s3 cp 's3://$b/dir/big.bin' '$work/big.aws' && same '$work/big.bin' '$work/big.aws'"
  step $t "ranged get (s3api --range)" bash -c "aws_ s3api get-object --bucket '$b' --key dir/big.bin --range 'bytes=$off-$last' '$work/range.aws' && same '$work/range.want' '$work/range.aws'"
  step $t "ranged get 1 KiB (s3api --range)" bash -c "aws_ s3api get-object --bucket '$b' --key dir/small.bin --range 'bytes=100-299' '$work/srange.aws' && same '$work/small-range.want' '$work/srange.aws'"
  step $t "copy 30 MiB (multipart copy)" aws_ s3 cp "s3://$b/dir/big.bin" "s3://$b/copy/big.bin"
  step $t "30 MiB copy was multipart (ETag -4)" etag_parts "$b" copy/big.bin 4
  step $t "copy 1 KiB" aws_ s3 cp "s3://$b/dir/small.bin" "s3://$b/copy/small.bin"
  step $t "get copies + SHA-256" bash -c "aws_ s3 cp 's3://$b/copy/big.bin' '$work/bigc.aws' && same '$work/big.bin' '$work/bigc.aws' &&
    aws_ s3 cp 's3://$b/copy/small.bin' '$work/smallc.aws' && same '$work/small.bin' '$work/smallc.aws'"
  step $t "delete of an unknown version keeps the object" version_delete_refused "$b" copy/small.bin
  step $t "delete one" aws_ s3 rm "s3://$b/copy/small.bin"
  step $t "deleted object is gone" absent "$b" copy/small.bin
  step $t "delete all (recursive)" aws_ s3 rm --recursive "s3://$b/"
  step $t "remove bucket" aws_ s3 rb "s3://$b"
}

run_s3cmd() {
  local b="s3c-s3cmd-$suffix" t=s3cmd
  step $t "make bucket" s3cmd_ mb "s3://$b"
  step $t "put 1 KiB" s3cmd_ put "$work/small.bin" "s3://$b/dir/small.bin"
  step $t "put 30 MiB multipart" s3cmd_ put "$work/big.bin" "s3://$b/dir/big.bin"
  step $t "30 MiB was multipart (ETag -4)" etag_parts "$b" dir/big.bin 4
  step $t "put listing fixtures" bash -c "s3cmd_ put '$work/top.txt' 's3://$b/top.txt' &&
    s3cmd_ put '$work/nested.txt' 's3://$b/dir/sub/nested.txt'"
  s3cmd_ ls "s3://$b/dir/" >"$work/ls.s3cmd" 2>&1
  step $t "ls prefix+delimiter" listing_has "$work/ls.s3cmd" "DIR  s3://$b/dir/sub/" "s3://$b/dir/small.bin" "s3://$b/dir/big.bin"
  step $t "ls shows no nested/top under dir/" bash -c "! grep -q -e top.txt -e nested '$work/ls.s3cmd'"
  step $t "get 1 KiB + SHA-256" bash -c "s3cmd_ get --force 's3://$b/dir/small.bin' '$work/small.s3cmd' && same '$work/small.bin' '$work/small.s3cmd'"
  step $t "get 30 MiB + SHA-256" bash -c "s3cmd_ get --force 's3://$b/dir/big.bin' '$work/big.s3cmd' && same '$work/big.bin' '$work/big.s3cmd'"
  # s3cmd has no ranged get: presigned URL from awscli, Range through curl.
  step $t "ranged get (no s3cmd option: aws presign + curl)" bash -c "presigned_range '$b' dir/big.bin $off $last '$work/range.s3cmd' && same '$work/range.want' '$work/range.s3cmd'"
  step $t "copy 30 MiB" s3cmd_ cp "s3://$b/dir/big.bin" "s3://$b/copy/big.bin"
  step $t "copy 1 KiB" s3cmd_ cp "s3://$b/dir/small.bin" "s3://$b/copy/small.bin"
  step $t "get copies + SHA-256" bash -c "s3cmd_ get --force 's3://$b/copy/big.bin' '$work/bigc.s3cmd' && same '$work/big.bin' '$work/bigc.s3cmd' &&
    s3cmd_ get --force 's3://$b/copy/small.bin' '$work/smallc.s3cmd' && same '$work/small.bin' '$work/smallc.s3cmd'"
  step $t "delete one" s3cmd_ del "s3://$b/copy/small.bin"
  step $t "deleted object is gone" absent "$b" copy/small.bin
  step $t "delete all (recursive, multi-delete)" s3cmd_ del --recursive --force "s3://$b/"
  step $t "remove bucket" s3cmd_ rb "s3://$b"
}

run_rclone() {
  local b="s3c-rclone-$suffix" t=rclone r="anode:s3c-rclone-$suffix"
  step $t "make bucket" rclone_ mkdir "$r"
  step $t "put 1 KiB" rclone_ copyto "$work/small.bin" "$r/dir/small.bin"
  step $t "put 30 MiB multipart" rclone_ copyto "$work/big.bin" "$r/dir/big.bin"
  step $t "30 MiB was multipart (ETag -4)" etag_parts "$b" dir/big.bin 4
  step $t "put listing fixtures" bash -c "rclone_ copyto '$work/top.txt' '$r/top.txt' &&
    rclone_ copyto '$work/nested.txt' '$r/dir/sub/nested.txt'"
  rclone_ lsf "$r/dir/" >"$work/ls.rclone" 2>&1
  step $t "lsf prefix+delimiter" listing_has "$work/ls.rclone" small.bin big.bin sub/
  step $t "lsf shows no nested/top under dir/" bash -c "! grep -q -e top.txt -e nested '$work/ls.rclone'"
  step $t "get 1 KiB + SHA-256" bash -c "rclone_ copyto '$r/dir/small.bin' '$work/small.rclone' && same '$work/small.bin' '$work/small.rclone'"
  step $t "get 30 MiB + SHA-256" bash -c "rclone_ copyto '$r/dir/big.bin' '$work/big.rclone' && same '$work/big.bin' '$work/big.rclone'"
  step $t "ranged get (cat --offset --count)" bash -c "rclone_ cat --offset $off --count $count '$r/dir/big.bin' >'$work/range.rclone' && same '$work/range.want' '$work/range.rclone'"
  step $t "copy 30 MiB (multipart copy)" rclone_ copyto "$r/dir/big.bin" "$r/copy/big.bin"
  step $t "30 MiB copy was multipart (ETag -4)" etag_parts "$b" copy/big.bin 4
  step $t "copy 1 KiB" rclone_ copyto "$r/dir/small.bin" "$r/copy/small.bin"
  step $t "get copies + SHA-256" bash -c "rclone_ copyto '$r/copy/big.bin' '$work/bigc.rclone' && same '$work/big.bin' '$work/bigc.rclone' &&
    rclone_ copyto '$r/copy/small.bin' '$work/smallc.rclone' && same '$work/small.bin' '$work/smallc.rclone'"
  step $t "check (size + hash) dir/ vs local" bash -c "mkdir -p '$work/chk' && cp '$work/small.bin' '$work/big.bin' '$work/chk/' && rclone_ check --one-way '$work/chk' '$r/dir'"
  step $t "delete one" rclone_ deletefile "$r/copy/small.bin"
  step $t "deleted object is gone" absent "$b" copy/small.bin
  step $t "delete all" rclone_ delete "$r"
  step $t "remove bucket" rclone_ rmdir "$r"
}

suffix="$(date +%s)-$$"
echo "== S3 clients against $endpoint ($("$AWS" --version 2>&1 | cut -d' ' -f1), s3cmd $("$S3CMD" --version | cut -d' ' -f3), $("$RCLONE" version | head -n1))"
for tool in $tools; do
  case "$tool" in
  aws) run_aws ;;
  s3cmd) run_s3cmd ;;
  rclone) run_rclone ;;
  *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
done
echo "s3-clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
