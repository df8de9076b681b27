#!/usr/bin/env bash
# Installs what building Anode needs on Debian/Ubuntu, only when missing, and points cargo's
# target directory outside the clone (so fresh clones reuse the build cache).
# Sourced by scripts/test.sh, scripts/dev.sh and scripts/local-cluster.sh.
set -euo pipefail

anode_need_pkgs=()
# jq, curl: the chaos scenarios (test_scripts/). libssl-dev: the toxiproxy_rust dev-dependency (anode-toxiproxy tests) links OpenSSL.
# s3cmd: `s3cmd signurl` (SigV2 only) in tests/s3_auth.rs.
for p in librocksdb-dev libclang-dev pkg-config libssl-dev jq curl s3cmd; do
  dpkg -s "$p" >/dev/null 2>&1 || anode_need_pkgs+=("$p")
done
# python3 + boto3 for the S3 client test (tests/s3_boto3.rs).
command -v python3 >/dev/null || anode_need_pkgs+=(python3 python3-pip)
if [ ${#anode_need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${anode_need_pkgs[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${anode_need_pkgs[@]}" >/dev/null
fi
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
  echo "setup: installing boto3" >&2
  # Debian's system python refuses plain pip installs (PEP 668): fall back to --user.
  python3 -m pip install --quiet boto3 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages boto3
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anode-target}"
mkdir -p "$CARGO_TARGET_DIR"
