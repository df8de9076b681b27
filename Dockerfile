# One image for every Anode role: `anode master|chunkserver|gateway|ctl ...` (plus
# `anode-toxiproxy` for the chaos setups). Flags can also be given as ANODE_* environment
# variables, which is how deploy/compose and deploy/kubernetes configure it.
#
#   docker build -t anode:latest .                      # release build inside Docker
#
# Build arguments:
#   BASE        the runtime base (default debian:bookworm-slim). Where no registry is
#               reachable, scripts/docker-base.sh makes anode-base:bookworm with debootstrap.
#   BUILD_BASE  the build stage's base, a Rust toolchain on Debian 12 (default rust:1.95-bookworm).
#   PREBUILT    a directory of the build context holding `anode` and `anode-toxiproxy` already
#               built on a Debian 12 host (release); the build stage then only copies them, and
#               BUILD_BASE can be any Debian 12 image (test_scripts/compose-cluster.sh does this
#               to reuse its cargo cache: scripts/docker-image.sh).
ARG BASE=debian:bookworm-slim
ARG BUILD_BASE=rust:1.95-bookworm

FROM ${BUILD_BASE} AS build
LABEL anode.stage=build
ARG PREBUILT=
WORKDIR /src
COPY . .
# Debian's RocksDB 7.8 (see docs/building.md); .cargo/config.toml points the rocksdb crate at it.
# The image gets the binaries without their line tables (objcopy --strip-debug).
RUN set -eu; mkdir -p /out; \
    if [ -n "$PREBUILT" ]; then \
        install -m 0755 "$PREBUILT/anode" "$PREBUILT/anode-toxiproxy" /out/; \
    else \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            librocksdb-dev libclang-dev pkg-config libssl-dev; \
        CARGO_TARGET_DIR=/tmp/target cargo build --release --locked -p anode -p anode-toxiproxy; \
        install -m 0755 /tmp/target/release/anode /tmp/target/release/anode-toxiproxy /out/; \
        rm -rf /tmp/target; \
        objcopy --strip-debug /out/anode; objcopy --strip-debug /out/anode-toxiproxy; \
    fi; \
    /out/anode --version

FROM ${BASE}
# Only what `anode` links against: glibc, libstdc++ and Debian's RocksDB 7.8 (which brings its
# compression libraries). The debootstrap base already has them; a public base installs them.
RUN set -eu; \
    if ! ldconfig -p | grep -q 'librocksdb.so.7.8'; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends librocksdb7.8 ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin anode; \
    mkdir -p /data /certs; chown anode:anode /data; chmod 0750 /data
COPY --from=build /out/anode /out/anode-toxiproxy /usr/local/bin/
COPY deploy/docker/healthcheck /usr/local/bin/anode-healthcheck
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# S3, master gRPC and admin, chunkserver gRPC and admin, gateway admin (DESIGN.md defaults).
EXPOSE 9000 7001 7081 7101 7181 9001
# /health of the admin port this container's role serves (ANODE_ADMIN_LISTEN).
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 CMD ["/usr/local/bin/anode-healthcheck"]
ENTRYPOINT ["/usr/local/bin/anode"]
CMD ["--help"]
