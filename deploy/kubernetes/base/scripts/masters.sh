#!/bin/sh
# Print the master addresses (`--masters`) of the first MASTER_COUNT masters; sourced by the
# chunkserver and gateway wrappers (shell builtins only).
anode_masters() {
  m=""
  i=0
  while [ "$i" -lt "$MASTER_COUNT" ]; do
    m="${m:+$m,}$MASTER_STATEFULSET-$i.$MASTER_SERVICE:$MASTER_PORT"
    i=$((i + 1))
  done
  echo "$m"
}
