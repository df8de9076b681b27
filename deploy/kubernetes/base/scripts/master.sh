#!/bin/sh
# Start one master of the anode-master StatefulSet (shell builtins only: the image has /bin/sh
# and `anode`, nothing else is needed).
#   raft id   = pod ordinal + 1 (anode-master-0 is member 1)
#   --peers   = the first MASTER_COUNT pods by their stable names in the headless Service
#   certs     = /etc/anode/tls/master-<id>/ (ca.crt, node.crt, node.key from the Secret)
# A pod past MASTER_COUNT (the StatefulSet scaled up later) starts with --join-dns on the
# headless Service: it finds the group's leader through the Service's records and asks to be
# added (learner, then voter), with no `anode ctl members add` (docs/operations.md).
set -eu
ord="${POD_NAME##*-}"
case "$ord" in
  '' | *[!0-9]*) echo "master.sh: no ordinal in POD_NAME=$POD_NAME" >&2; exit 1 ;;
esac
id=$((ord + 1))
sts="${POD_NAME%-*}"
peers=""
i=0
while [ "$i" -lt "$MASTER_COUNT" ]; do
  peers="${peers:+$peers,}$((i + 1))=$sts-$i.$MASTER_SERVICE:$MASTER_PORT"
  i=$((i + 1))
done
join=""
if [ "$id" -gt "$MASTER_COUNT" ]; then join="--join-dns $MASTER_SERVICE:$MASTER_PORT"; fi
echo "master.sh: raft id $id, peers $peers ${join:-(initial member)}" >&2
# shellcheck disable=SC2086
exec anode master --id "$id" --data /data \
  --listen "0.0.0.0:$MASTER_PORT" --admin-listen "0.0.0.0:$ADMIN_PORT" \
  --advertise "$POD_NAME.$MASTER_SERVICE:$MASTER_PORT" --peers "$peers" \
  --certs-dir "/etc/anode/tls/master-$id" $join
