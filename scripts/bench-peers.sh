#!/usr/bin/env bash
# The benchmark suite against two already-running S3 endpoints in ONE run (Anode and a peer,
# or two Anode builds), alternating so machine drift hits both: the matrix is cut into
# groups (PUT+GET per size, LIST, YCSB) and each group runs on A then B, the next on B then
# A, and so on for ROUNDS rounds. It starts and stops nothing: bring the systems up first.
#   scripts/bench-peers.sh OUT_DIR [EXTRA SUITE FLAGS...]
# Each side from the environment (X = A or B):
#   X_LABEL (anode / peer), X_ENDPOINT, X_ACCESS_KEY, X_SECRET_KEY, X_REGION (us-east-1),
#   X_BUCKET (bench-suite)
# ROUNDS (default 1), SECONDS_PER_CELL (default 10), SIZES (default 1KiB,64KiB,1MiB,16MiB),
# CONCURRENCY (default 16,64), ANODE_TOOLS_BIN (default: a release build of this checkout).
# Writes OUT_DIR/A_LABEL.json, OUT_DIR/B_LABEL.json, OUT_DIR/compare.txt and compare.md
# (A/B ratios cell by cell, medians over rounds) and OUT_DIR/load.txt (uptime per group).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT_DIR [SUITE FLAGS...]" >&2; exit 2; }
out="$1"; shift
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${ANODE_TOOLS_BIN:-}"
if [ -z "$tools" ]; then
  source "$root/scripts/setup.sh"
  (cd "$root" && cargo build --release -p anode-tools >&2)
  tools="$CARGO_TARGET_DIR/release/anode-tools"
fi
for v in A_ENDPOINT A_ACCESS_KEY A_SECRET_KEY B_ENDPOINT B_ACCESS_KEY B_SECRET_KEY; do
  [ -n "${!v:-}" ] || { echo "$0: set $v" >&2; exit 2; }
done
a_label="${A_LABEL:-anode}"; b_label="${B_LABEL:-peer}"
sizes="${SIZES:-1KiB,64KiB,1MiB,16MiB}"; conc="${CONCURRENCY:-16,64}"
mkdir -p "$out"
rm -f "$out/$a_label.json" "$out/$b_label.json"
groups=()
for s in ${sizes//,/ }; do groups+=("put-$s-,get-$s-"); done
groups+=("list" "ycsb")

side() { # A|B group
  local x="$1" group="$2"
  shift 2
  local label endpoint ak sk region bucket
  eval "label=\${${x}_LABEL:-}; endpoint=\$${x}_ENDPOINT; ak=\$${x}_ACCESS_KEY; sk=\$${x}_SECRET_KEY"
  eval "region=\${${x}_REGION:-us-east-1}; bucket=\${${x}_BUCKET:-bench-suite}"
  [ -n "$label" ] || { [ "$x" = A ] && label="$a_label" || label="$b_label"; }
  echo "$(date -u +%H:%M:%S) $label $group: $(uptime)" | tee -a "$out/load.txt"
  "$tools" bench suite --endpoint "$endpoint" --access-key "$ak" --secret-key "$sk" \
    --region "$region" --bucket "$bucket" --label "$label" --out "$out/$label.json" --append \
    --sizes "$sizes" --concurrency "$conc" --seconds "${SECONDS_PER_CELL:-10}" \
    --only "$group" "$@" | tee -a "$out/$label.log"
}

k=0
for r in $(seq 1 "${ROUNDS:-1}"); do
  for g in "${groups[@]}"; do
    if [ $(((k + r) % 2)) = 1 ]; then side A "$g" "$@"; side B "$g" "$@"
    else side B "$g" "$@"; side A "$g" "$@"; fi
    k=$((k + 1))
  done
done
"$tools" bench compare "$out/$a_label.json" "$out/$b_label.json" | tee "$out/compare.txt"
"$tools" bench compare --markdown "$out/$a_label.json" "$out/$b_label.json" >"$out/compare.md"
echo "results in $out (compare.txt, compare.md, $a_label.json, $b_label.json, load.txt)"
