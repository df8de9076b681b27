#!/bin/sh
# The bootstrap Job: create the first S3 access key (from the anode-s3-credentials Secret).
# One try per run: until the masters have a leader it fails and the Job retries with its
# back-off. Safe to run again: a key that exists already is success.
set -eu
case "$0" in */*) here="${0%/*}" ;; *) here=. ;; esac
. "$here/masters.sh"
if out="$(anode ctl --masters "$(anode_masters)" --certs-dir /etc/anode/tls keys create \
  --name default --access-key "$ANODE_ACCESS_KEY" --secret-key "$ANODE_SECRET_KEY" 2>&1)"; then
  echo "bootstrap.sh: access key created" >&2
  exit 0
fi
case "$out" in
  *AccessKeyExists*) echo "bootstrap.sh: access key exists" >&2; exit 0 ;;
esac
echo "bootstrap.sh: not yet: $out" >&2
exit 1
