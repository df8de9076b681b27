#!/usr/bin/env bash
# Ceph's S3 conformance suite (https://github.com/ceph/s3-tests) against a fresh Anode cluster.
#
#   test_scripts/s3-tests.sh S3TESTS_DIR [--anode BIN] [--report FILE] [pytest args...]
#
# A manual tool (the suite is not vendored and CI cannot download it): get it with
# `git clone https://github.com/ceph/s3-tests`. It
#   - makes a Python venv with the suite's requirements and pytest-timeout when missing
#     (S3TESTS_VENV, default ~/.cache/anode-s3tests-venv),
#   - starts `anode dev` (the whole cluster in one process) in a temp dir on free loopback ports,
#   - makes the users the suite needs (main, alt, tenant, iam, iam root, iam alt root), each with
#     its own key, and the s3tests.conf naming them (user_id = the user's canonical id,
#     display_name = the user name),
#   - runs pytest (default: the whole suite; pytest args replace the default selection, e.g.
#     `-m versioning` or `s3tests/functional/test_s3.py -k acl`), one test at a time, each cut at
#     S3TESTS_TIMEOUT seconds (default 120; the 1000-key tests take 30-40 s on a debug build), the whole run at S3TESTS_MAX_SECONDS (default 7200),
#   - gives every test its own bucket prefix (test_scripts/s3tests_report.py; the suite keeps one
#     per process and deletes all its buckets before each test, so one bucket Anode refuses to
#     delete would fail the setup of every later test; S3TESTS_PREFIX_PER_TEST=0 keeps the
#     suite's behaviour),
#   - stops the cluster it started (by pid) and writes the summary.
# Tests marked webidentity_test (need Keycloak), cloud_transition / cloud_restore (need a
# second S3 endpoint as a cloud tier) and bucket_logging_cleanup (radosgw-admin) are always
# deselected: Anode has nothing for them to talk to.
#
# S3TESTS_ANODE_COMMIT names the Anode commit in the summary (default: this checkout's HEAD).
# Output: the markdown summary (counts overall, per file, per area = pytest marker or test name
# prefix, and the first line of each failure) in --report FILE (default
# ./s3-tests-report.md), the failing and erroring test ids one per line in FILE.failed (run
# again with `... $(cat FILE.failed)`), one JSON line per test in FILE.jsonl, pytest's output in
# FILE.log. The cluster's data and log stay in the temp dir when S3TESTS_KEEP=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
usage() { echo "usage: $0 S3TESTS_DIR [--anode BIN] [--report FILE] [pytest args...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
suite="$(cd "$1" && pwd)" || usage
shift
[ -f "$suite/s3tests/functional/__init__.py" ] || { echo "$suite is not an s3-tests checkout" >&2; exit 2; }
anode="${ANODE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/anode-target}/debug/anode}"
report="$PWD/s3-tests-report.md"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --anode) anode="$2"; shift 2 ;;
    --report) report="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
[ -x "$anode" ] || { echo "no anode binary at $anode (build with cargo build --bin anode, or pass --anode BIN)" >&2; exit 2; }
anode="$(cd "$(dirname "$anode")" && pwd)/$(basename "$anode")"
mkdir -p "$(dirname "$report")"
report="$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"

# The venv (outside the repository).
venv="${S3TESTS_VENV:-$HOME/.cache/anode-s3tests-venv}"
if [ ! -x "$venv/bin/pytest" ] || ! "$venv/bin/python" -c 'import pytest_timeout, boto3, munch' 2>/dev/null; then
  echo "s3-tests: making the venv $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$suite/requirements.txt" pytest-timeout
fi

# Every test deselected here needs something outside Anode (see the header).
always_out="not webidentity_test and not cloud_transition and not cloud_restore and not bucket_logging_cleanup"
pyargs=()
have_m=0
i=0
while [ $i -lt ${#args[@]} ]; do
  a="${args[$i]}"
  if [ "$a" = -m ] && [ $((i + 1)) -lt ${#args[@]} ]; then
    pyargs+=(-m "(${args[$((i + 1))]}) and $always_out"); have_m=1; i=$((i + 2)); continue
  fi
  pyargs+=("$a"); i=$((i + 1))
done
[ $have_m = 1 ] || pyargs+=(-m "$always_out")
# A path or node id among the args selects the tests; else the whole suite.
has_path=0
for a in "${args[@]}"; do case "$a" in s3tests*) has_path=1 ;; esac; done
[ $has_path = 1 ] || pyargs+=(s3tests/functional)

dir="$(mktemp -d "${TMPDIR:-/tmp}/anode-s3tests.XXXXXX")"
pid=""
cleanup() {
  local rc=$?
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ "${S3TESTS_KEEP:-}" = 1 ]; then echo "s3-tests: cluster data and log kept in $dir" >&2; else rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: S3, and a base for `anode dev`'s internal ports (base, +80, +100..103,
# +180..183, +2000).
read -r base s3port < <(python3 "$(dirname "$0")/../scripts/dev-ports.py" 2500)
rnd() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export ANODE_ACCESS_KEY="S3TADMIN$(rnd 8 | tr a-f A-F)" ANODE_SECRET_KEY="$(rnd 20)"
# The suite's lifecycle tests take a lifecycle "day" to be `lc_debug_interval` seconds (10, as
# RGW's rgw_lc_debug_interval in its test setup): the master's debug setting, the same length.
export ANODE_LIFECYCLE_DAY_SECS="${ANODE_LIFECYCLE_DAY_SECS:-10}"
export ANODE_LIFECYCLE_INTERVAL_SECS="${ANODE_LIFECYCLE_INTERVAL_SECS:-1}"
"$anode" dev --data "$dir/data" --listen "127.0.0.1:$s3port" --base-port "$base" >"$dir/anode.log" 2>&1 &
pid=$!
ctl() { "$anode" ctl --masters "127.0.0.1:$base" --certs-dir "$dir/data/certs/admin-1" "$@" 2>>"$dir/ctl.log"; }
ready=0
for _ in $(seq 1 300); do
  kill -0 "$pid" 2>/dev/null || { echo "anode dev exited; log:" >&2; tail -20 "$dir/anode.log" >&2; exit 1; }
  if curl -s -o /dev/null "http://127.0.0.1:$s3port/" &&
    [ "$(ctl status --json 2>/dev/null | jq '[.chunkservers[] | select(.state == "alive")] | length')" = 3 ]; then
    ready=1; break
  fi
  sleep 0.2
done
[ $ready = 1 ] || { echo "anode dev not ready within 60 s; log:" >&2; tail -20 "$dir/anode.log" >&2; exit 1; }

# One Anode user and key per identity of the suite. Anode has no tenants, e-mail addresses or
# IAM: the tenant and iam identities are plain users, so the suite's setup (which lists their
# buckets) works and the tests that need more fail on what is missing.
conf="$dir/s3tests.conf"
cat >"$conf" <<EOF
[DEFAULT]
host = 127.0.0.1
port = $s3port
is_secure = False
ssl_verify = False

[fixtures]
bucket prefix = s3t-{random}-
iam name prefix = s3-tests-
iam path prefix = /s3-tests/
EOF
user() { # SECTION NAME [extra config lines]
  local section="$1" name="$2"; shift 2
  local ak sk id
  ak="S3T$(rnd 9 | tr a-f A-F)"; sk="$(rnd 20)"
  ctl users create "$name" >/dev/null
  ctl keys create --name "$name" --user "$name" --access-key "$ak" --secret-key "$sk" >/dev/null
  id="$(printf 'anode-canonical-user:%s' "$name" | sha256sum | cut -d' ' -f1)"
  {
    echo; echo "[$section]"
    echo "display_name = $name"; echo "user_id = $id"; echo "email = $name@example.com"
    echo "access_key = $ak"; echo "secret_key = $sk"
    for l in "$@"; do echo "$l"; done
  } >>"$conf"
}
user "s3 main" s3t-main "api_name = default"
user "s3 alt" s3t-alt
user "s3 tenant" s3t-tenant "tenant = testx"
user "iam" s3t-iam
user "iam root" s3t-iam-root
user "iam alt root" s3t-iam-alt-root

commit="${S3TESTS_ANODE_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}"
suite_commit="$(git -C "$suite" rev-parse --short HEAD 2>/dev/null || echo unknown)"
rm -f "$report.jsonl"
timeout_s="${S3TESTS_TIMEOUT:-120}"
shown="$(printf '%q ' --timeout "$timeout_s" "${pyargs[@]}")"
echo "s3-tests: anode dev on 127.0.0.1:$s3port (pid $pid, $dir); pytest $shown" >&2
set +e
(
  cd "$suite"
  S3TEST_CONF="$conf" S3TESTS_RESULTS="$report.jsonl" S3TESTS_PREFIX_PER_TEST="${S3TESTS_PREFIX_PER_TEST:-1}" PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" \
    timeout --signal=INT --kill-after=60 "${S3TESTS_MAX_SECONDS:-7200}" \
    "$venv/bin/pytest" -p no:cacheprovider -p s3tests_report --timeout "$timeout_s" \
    -q -rN --tb=line "${pyargs[@]}"
) >"$report.log" 2>&1
prc=$?
set -e
tail -3 "$report.log" >&2
kill -0 "$pid" 2>/dev/null || echo "s3-tests: WARNING: anode dev died during the run (see $dir/anode.log)" >&2
title="Ceph s3-tests $suite_commit against Anode $commit ($(date -u +%Y-%m-%dT%H:%MZ))"
"$venv/bin/python" "$here/s3tests_report.py" "$report.jsonl" "$report" "$report.failed" "$title" "pytest $shown"
echo "s3-tests: summary $report, failing ids $report.failed, pytest output $report.log (pytest exit $prc)" >&2
case "$prc" in
  0 | 1) ;; # all passed / some failed: the summary says which
  124) echo "s3-tests: WARNING: the run was cut at S3TESTS_MAX_SECONDS=${S3TESTS_MAX_SECONDS:-7200}" >&2 ;;
  *) exit "$prc" ;; # interrupted, usage or internal error of pytest
esac
