#!/usr/bin/env bash
# Installs, only when missing, the programs the cargo tests drive besides python3 + boto3
# (scripts/setup.sh): headless Chromium (tests/s3_cors.rs makes a real cross-origin fetch) and
# s3cmd (SigV2 URLs from `s3cmd signurl`), the minio Python package (minio-py listens to
# bucket events in tests/s3_notify.rs), and pyarrow and datafusion (the query engines of
# tests/s3_parquet.rs). Sourced by scripts/test.sh before `cargo test`;
# not by scripts/dev.sh, which needs none of them.
anode_test_pkgs=()
command -v chromium >/dev/null 2>&1 || anode_test_pkgs+=(chromium)
command -v s3cmd >/dev/null 2>&1 || anode_test_pkgs+=(s3cmd)
if [ ${#anode_test_pkgs[@]} -gt 0 ]; then
  echo "test-tools: installing ${anode_test_pkgs[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${anode_test_pkgs[@]}" >/dev/null
fi
# minio-py: ListenBucketNotification as MinIO's own client speaks it (tests/s3_notify.rs).
if ! python3 -c 'import minio' >/dev/null 2>&1; then
  echo "test-tools: installing minio (python)" >&2
  # Debian's system python refuses plain pip installs (PEP 668): fall back to --user.
  python3 -m pip install --quiet minio 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages minio
fi
# pyarrow and DataFusion's Python bindings read Parquet through the gateway (tests/s3_parquet.rs).
if ! python3 -c 'import pyarrow, datafusion' >/dev/null 2>&1; then
  echo "test-tools: installing pyarrow, datafusion (python)" >&2
  python3 -m pip install --quiet pyarrow 'datafusion>=55,<56' 2>/dev/null ||
    python3 -m pip install --quiet --user --break-system-packages pyarrow 'datafusion>=55,<56'
fi
