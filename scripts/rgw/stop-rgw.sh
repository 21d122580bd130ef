#!/bin/bash
# stop-rgw.sh DIR -- stop the PIDs in DIR/pids (mon, osd, rgw) in reverse order, SIGTERM then SIGKILL after a grace
# period. Order matters: radosgw hangs in shutdown if the OSD is gone; the OSD waits up to 5 s for the mon's ack.
# edgeops' own copy (see start-rgw.sh).
# FAST=1: SIGKILL all at once (crash-safe for bluestore/filestore; memstore loses everything since its last clean stop).
DIR=$(realpath -m "${1:?usage: stop-rgw.sh DIR}"); [ -s "$DIR/pids" ] || { echo "nothing to stop"; exit 0; }
alive() { local st; read -r _ _ st _ 2>/dev/null < "/proc/$1/stat" && [ "$st" != Z ] && grep -qF "$DIR/ceph.conf" "/proc/$1/cmdline"; }
mapfile -t P < "$DIR/pids"; grace=(10 30 10)   # seconds for mon, osd, rgw
for i in 2 1 0; do
  p=${P[$i]:-}; [ -n "$p" ] && alive "$p" || continue
  if [ "${FAST:-0}" = 1 ]; then kill -KILL "$p"; continue; fi
  kill -TERM "$p"
  for j in $(seq 1 $((grace[i] * 20))); do alive "$p" || break; sleep 0.05; done
  alive "$p" && { echo "pid $p ignored SIGTERM; SIGKILL" >&2; kill -KILL "$p"; }
done
: > "$DIR/pids"; echo stopped
