#!/usr/bin/env bash
# The test command: installs build dependencies when missing, then checks formatting, lints,
# and runs every test of the workspace (unit, proptest, in-process raft simulation and the
# multi-process cluster tests that start real `anode` processes on 127.0.0.1), the fail point
# tests (a second build with `--features failpoints`), then the awscli/s3cmd/rclone smoke run
# (scripts/ci-s3-clients.sh), the short chaos set, the deploy checks (Kubernetes schemas,
# systemd units, Prometheus rules, a real alert, the status page in headless Chromium), the
# container test (test_scripts/compose-cluster.sh: image built without a registry, compose
# cluster upgraded from the previous release, faults across containers), and every fuzz
# target for ANODE_FUZZ_SECONDS (default 20) each when a nightly toolchain is present
# (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
source scripts/test-tools.sh
export RUST_BACKTRACE=1
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== architecture: pure crates stay pure"
bash scripts/check-purity.sh
echo "== cargo build"
cargo build --workspace --all-targets
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
cargo test --workspace -- --test-threads="${ANODE_TEST_THREADS:-2}"
echo "== fail points (crashes at the critical gaps, real processes; tests/failpoints.rs)"
cargo clippy -p anode --features failpoints --all-targets -- -D warnings
cargo test --features failpoints --test failpoints
echo "== S3 clients (awscli, s3cmd, rclone) against anode dev and local-cluster.sh"
bash scripts/ci-s3-clients.sh
echo "== chaos scenarios, short set (leader failover, partition, write burst)"
bash test_scripts/run-all.sh --short --no-report
# ---- deploy and operate (issue 13; docs/operations.md) ------------------------------------
echo "== deploy: Kubernetes schemas (kubernetes-validate), systemd units, promtool rules and tests, metric names (scripts/check-deploy.sh)"
bash scripts/check-deploy.sh
echo "== deploy: a real alert on a real fault (Prometheus + kill -9 of a chunkserver; test_scripts/alerts.sh)"
bash test_scripts/alerts.sh
echo "== status page in headless Chromium, JSON logs, SIGHUP (test_scripts/status-page.sh)"
bash test_scripts/status-page.sh
echo "== containers: image without a registry, compose cluster upgraded from the previous release, faults across containers (test_scripts/compose-cluster.sh)"
ANODE_IMAGE_PROFILE="${ANODE_IMAGE_PROFILE:-debug}" bash test_scripts/compose-cluster.sh
echo "== fuzz: every target for ANODE_FUZZ_SECONDS each (0 = skip; scripts/fuzz.sh, docs/fuzzing.md)"
# Two targets at a time (one per core): 16 targets x 20 s in about 2.9 min after the build.
if [ "${ANODE_FUZZ_SECONDS:-20}" -gt 0 ]; then
    ANODE_FUZZ_JOBS="${ANODE_FUZZ_JOBS:-2}" bash scripts/fuzz.sh "${ANODE_FUZZ_SECONDS:-20}"
fi
