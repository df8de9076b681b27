#!/usr/bin/env bash
# The benchmark suite (issue 18) against ANY S3 endpoint, with the same settings every time:
# PUT and GET of 1 KiB, 64 KiB, 1 MiB and 16 MiB at 16 and 64 in flight, LIST of 1,000-key
# pages, YCSB-style mixes A/B/C on 1 KiB objects (see `anode-tools bench suite --help`).
#   scripts/bench.sh [SUITE FLAGS...]            e.g. --quick, --seconds 5, --only get-1KiB
# The endpoint and keys come from the environment (flags after them win):
#   S3_ENDPOINT (default http://127.0.0.1:9000), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#   AWS_REGION (default us-east-1), BENCH_BUCKET (default bench-suite),
#   BENCH_LABEL (default s3), BENCH_OUT (default bench-suite.json).
# ANODE_TOOLS_BIN: the anode-tools binary (default: a release build of this checkout).
# Prints the machine's load (uptime) before and after; compare two result files with
#   anode-tools bench compare A.json B.json [--markdown]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${ANODE_TOOLS_BIN:-}"
if [ -z "$tools" ]; then
  source "$root/scripts/setup.sh"
  (cd "$root" && cargo build --release -p anode-tools >&2)
  tools="$CARGO_TARGET_DIR/release/anode-tools"
fi
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID (and AWS_SECRET_ACCESS_KEY)}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY}"
echo "load before: $(uptime)"
"$tools" bench suite \
  --endpoint "${S3_ENDPOINT:-http://127.0.0.1:9000}" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
  --region "${AWS_REGION:-us-east-1}" --bucket "${BENCH_BUCKET:-bench-suite}" \
  --label "${BENCH_LABEL:-s3}" --out "${BENCH_OUT:-bench-suite.json}" "$@"
echo "load after: $(uptime)"
