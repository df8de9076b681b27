#!/bin/sh
# Start one chunkserver of the anode-chunkserver StatefulSet. Its rack (placement keeps copies
# on distinct racks) is the zone of the node it runs on, written to /run/anode/rack by the
# `rack` init container (rack.sh); ANODE_RACK set in the pod spec wins. It advertises its stable
# name in the headless Service, so gateways reach the same server after a reschedule.
set -eu
case "$0" in */*) here="${0%/*}" ;; *) here=. ;; esac
. "$here/masters.sh"
rack="${ANODE_RACK:-}"
rack_file="${RACK_FILE:-/run/anode/rack}"
if [ -z "$rack" ] && [ -s "$rack_file" ]; then
  read -r rack <"$rack_file"
fi
echo "chunkserver.sh: $POD_NAME rack '${rack}'" >&2
exec anode chunkserver --data /data \
  --listen "0.0.0.0:$CHUNKSERVER_PORT" --admin-listen "0.0.0.0:$ADMIN_PORT" \
  --advertise "$POD_NAME.$CHUNKSERVER_SERVICE:$CHUNKSERVER_PORT" \
  --masters "$(anode_masters)" --rack "$rack" --certs-dir /etc/anode/tls
