#!/bin/sh
# Init container of a chunkserver: write the zone of the pod's node to /run/anode/rack.
# The downward API exposes the node's name but not its labels, so this asks the API server
# (the pod's service account may `get` nodes: rbac.yaml). A node without a zone label gives
# its own name (each node then counts as a rack of its own).
set -eu
zone="$(kubectl get node "$NODE_NAME" -o "jsonpath={.metadata.labels.$ZONE_LABEL_JSONPATH}")"
rack="${zone:-$NODE_NAME}"
echo "rack.sh: node $NODE_NAME zone '${zone}' -> rack '$rack'" >&2
printf '%s\n' "$rack" >"${RACK_FILE:-/run/anode/rack}"
