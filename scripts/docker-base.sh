#!/usr/bin/env bash
# Builds the local base image the Dockerfile's BASE argument names when no registry is
# reachable: Debian bookworm (minbase) made with debootstrap from Debian's own mirror, with the
# shared libraries `anode` links against already installed, then `docker import`ed.
# Usage: scripts/docker-base.sh [IMAGE] (default anode-base:bookworm). Does nothing when the
# image exists (ANODE_REBUILD_BASE=1 forces). Needs root (debootstrap), installs debootstrap
# when missing. Env: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
IMAGE="${1:-anode-base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What `anode` links against (ldd of the release binary: RocksDB 7.8 from Debian and its
# compression libraries; glibc and libstdc++ come with minbase) plus ca-certificates for
# operators who point it at public endpoints (OTLP, S3 peers).
PKGS="librocksdb7.8,ca-certificates"

if [ -z "${ANODE_REBUILD_BASE:-}" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "docker-base: $IMAGE exists" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if ! command -v debootstrap >/dev/null; then
  echo "docker-base: installing debootstrap" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq debootstrap >/dev/null
fi
root="$(mktemp -d "${TMPDIR:-/tmp}/anode-base.XXXXXX")"
trap '$SUDO rm -rf "$root"' EXIT
echo "docker-base: debootstrap bookworm into $root (+ $PKGS)" >&2
$SUDO debootstrap --variant=minbase --include="$PKGS" bookworm "$root" "$MIRROR" >"$root.log" 2>&1 ||
  { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# Keep the image small: no apt lists, caches, docs or man pages.
$SUDO rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
$SUDO tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "docker-base: built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)" >&2
