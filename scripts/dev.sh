#!/usr/bin/env bash
# The run command: installs build dependencies when missing, builds the release binary and
# starts `anode dev` (1 master, 3 chunkservers, S3 gateway on 127.0.0.1:9000) on DIR
# (default ./anode-data). Data survives restarts.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo build --release --bin anode
exec "$CARGO_TARGET_DIR/release/anode" dev --data "${1:-./anode-data}"
