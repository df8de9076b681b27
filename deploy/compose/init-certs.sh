#!/usr/bin/env bash
# Makes the cluster CA and one certificate per container of docker-compose.yml (plus admin-1
# for `anode ctl`) in ANODE_CERTS (default ./certs), with the anode image itself, and gives
# them to the image's user (uid 10001). Keeps what exists (certificates are never replaced).
set -euo pipefail
cd "$(dirname "$0")"
certs="${ANODE_CERTS:-./certs}"
image="${ANODE_IMAGE:-anode:latest}"
mkdir -p "$certs"
certs="$(cd "$certs" && pwd)"
run() { docker run --rm --user 0 --entrypoint /usr/local/bin/anode -v "$certs:/certs" "$image" "$@" >/dev/null; }
[ -f "$certs/ca/ca.key" ] || run ctl certs init /certs/ca
issue() { [ -f "$certs/$1-$2/node.crt" ] || run ctl certs issue --ca /certs/ca --role "$1" --id "$2" --out "/certs/$1-$2"; }
for i in 1 2 3; do issue master "$i"; done
for i in 1 2 3 4; do issue chunkserver "$i"; done
for i in 1 2; do issue gateway "$i"; done
issue admin 1
# Node keys readable by the containers' user only; the CA key stays root's.
docker run --rm --user 0 --entrypoint /bin/bash -v "$certs:/certs" "$image" \
  -c 'chown -R 10001:10001 /certs && chown -R 0:0 /certs/ca && chmod 0700 /certs/ca'

echo "certificates in $certs"
