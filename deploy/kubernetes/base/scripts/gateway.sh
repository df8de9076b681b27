#!/bin/sh
# Start one S3 gateway (stateless; any number behind the Service).
set -eu
case "$0" in */*) here="${0%/*}" ;; *) here=. ;; esac
. "$here/masters.sh"
exec anode gateway --listen "0.0.0.0:$S3_PORT" --admin-listen "0.0.0.0:$ADMIN_PORT" \
  --masters "$(anode_masters)" --certs-dir /etc/anode/tls
