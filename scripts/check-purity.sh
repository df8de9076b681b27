#!/usr/bin/env bash
# Architecture check: the pure crates' normal dependency trees hold no async runtime, no network
# and no storage engine. Cargo resolves `-p` alone, so features other crates enable do not leak
# into the answer. Fails (exit 1) naming the crate and the offending dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in anode-meta; do
  bad=$(cargo tree -p "$crate" -e normal --prefix none 2>/dev/null |
    grep -E '^(tokio|tonic|hyper|h2|mio|rocksdb|librocksdb-sys|reqwest|socket2) ' | sort -u || true)
  if [ -n "$bad" ]; then
    echo "purity: $crate depends on IO crates:" >&2
    echo "$bad" >&2
    status=1
  fi
done
[ "$status" -eq 0 ] && echo "purity: anode-meta has no tokio, tonic, hyper or rocksdb in its tree"
exit "$status"
