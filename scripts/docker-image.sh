#!/usr/bin/env bash
# Builds the `anode` image (IMAGE, default anode:latest) for the local tests without a registry:
# release binaries from this machine's cargo cache (Debian 12, like the image), the base from
# scripts/docker-base.sh, then `docker build` of the root Dockerfile with BASE, BUILD_BASE and
# PREBUILT pointing at them. Also builds anode-prometheus:local (Debian's prometheus binary on
# the same base) for deploy/compose, unless ANODE_NO_PROMETHEUS_IMAGE=1.
# A full build inside Docker (what users elsewhere run) is `docker build -t anode:latest .`.
# ANODE_IMAGE_REV=COMMIT: the image's `anode` is built from that git revision instead (in a
# temporary worktree, with its own target directory under CARGO_TARGET_DIR so the current
# build's binaries stay as they are); anode-toxiproxy, the Dockerfile and the healthcheck stay
# the current ones. test_scripts/compose-cluster.sh upgrades from such an image.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${1:-anode:latest}"
BASE_IMAGE="${ANODE_BASE_IMAGE:-anode-base:bookworm}"
source scripts/setup.sh
bash scripts/docker-base.sh "$BASE_IMAGE"
# ANODE_IMAGE_PROFILE=debug puts the debug binaries in the image instead (the tests' choice:
# `cargo build --workspace` already made them, a release build would add minutes to CI).
profile="${ANODE_IMAGE_PROFILE:-release}"
echo "docker-image: cargo build ($profile: anode, anode-toxiproxy)" >&2
# Whole-workspace builds, like scripts/test.sh: `-p` selections unify features differently and
# would rebuild dependencies.
if [ "$profile" = release ]; then
  cargo build --release --locked --workspace
else
  cargo build --locked --workspace --all-targets
fi
rm -rf .docker-bin && mkdir -p .docker-bin
for b in anode anode-toxiproxy; do
  # Debug info stays in the cargo cache; the image gets the stripped binary.
  objcopy --strip-debug "$CARGO_TARGET_DIR/$profile/$b" ".docker-bin/$b"
done
if [ -n "${ANODE_IMAGE_REV:-}" ]; then
  rev="$(git rev-parse --verify "$ANODE_IMAGE_REV^{commit}")"
  wt="$(mktemp -d "${TMPDIR:-/tmp}/anode-rev.XXXXXX")"
  git worktree add -q --detach "$wt" "$rev"
  echo "docker-image: cargo build of anode at ${rev:0:12} ($profile)" >&2
  rel=(); [ "$profile" = release ] && rel=(--release)
  if ! (cd "$wt" && cargo build "${rel[@]}" --locked --workspace --target-dir "$CARGO_TARGET_DIR/rev-build"); then
    git worktree remove --force "$wt"; exit 1
  fi
  git worktree remove --force "$wt"
  objcopy --strip-debug "$CARGO_TARGET_DIR/rev-build/$profile/anode" .docker-bin/anode
fi
docker build -q -t "$IMAGE" --build-arg BASE="$BASE_IMAGE" --build-arg BUILD_BASE="$BASE_IMAGE" \
  --build-arg PREBUILT=.docker-bin . >/dev/null
rm -rf .docker-bin
# The build stage's image (labelled in the Dockerfile) is not needed once the image exists.
docker image prune -f --filter label=anode.stage=build >/dev/null
echo "docker-image: built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)" >&2

if [ -z "${ANODE_NO_PROMETHEUS_IMAGE:-}" ]; then
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    echo "docker-image: installing Debian's prometheus (binary for the compose image, promtool)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  ctx="$(mktemp -d)"
  cp "$(command -v prometheus)" "$ctx/prometheus"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $BASE_IMAGE
COPY prometheus /usr/local/bin/prometheus
RUN useradd --system --uid 10002 --user-group --home-dir /prometheus prometheus && mkdir -p /prometheus && chown prometheus /prometheus
USER 10002:10002
WORKDIR /prometheus
ENTRYPOINT ["/usr/local/bin/prometheus"]
DOCKERFILE
  docker build -q -t anode-prometheus:local "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "docker-image: built anode-prometheus:local" >&2
fi
