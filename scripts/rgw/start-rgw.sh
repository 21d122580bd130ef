#!/bin/bash
# start-rgw.sh DIR [S3_PORT] -- single-node Ceph (1 mon, 1 osd, no mgr) + radosgw, all on 127.0.0.1.
# Reuses an existing cluster in DIR (data persists); FRESH=1 wipes it first. STORE=filestore(default)|bluestore|memstore
# (only read at creation). MON_PORT defaults to S3_PORT+1. DIR/pids = mon, osd, rgw PIDs (one per line).
# edgeops' own copy (used by tests/integration and .ci/run); needs Debian's radosgw, ceph-mon, ceph-osd:
#   apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd
set -euo pipefail
for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-conf ceph uuidgen curl; do
  command -v "$b" >/dev/null || { echo "$b not found: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd" >&2; exit 1; }
done
DIR=$(realpath -m "${1:?usage: start-rgw.sh DIR [PORT]}"); PORT=${2:-7480}; MON_PORT=${MON_PORT:-$((PORT+1))}
STORE=${STORE:-filestore}; AK=${ACCESS_KEY:-testaccesskey}; SK=${SECRET_KEY:-testsecretkey}
C="-c $DIR/ceph.conf"; HERE=$(dirname "$(realpath "$0")")
alive() { local st; read -r _ _ st _ 2>/dev/null < "/proc/$1/stat" && [ "$st" != Z ] && grep -qF "$DIR/ceph.conf" "/proc/$1/cmdline"; }
n_alive() { local n=0; [ -s "$DIR/pids" ] && for p in $(cat "$DIR/pids"); do alive "$p" && n=$((n+1)); done; echo $n; }
if [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ] && [ ! -e "$DIR/ceph.conf" ]; then echo "$DIR is not ours; refusing" >&2; exit 1; fi
if [ "$(n_alive)" = 3 ] && [ "${FRESH:-0}" != 1 ]; then echo "already running (pids: $(tr '\n' ' ' < "$DIR/pids"))"; else
[ "$(n_alive)" != 0 ] && "$HERE/stop-rgw.sh" "$DIR" >/dev/null
[ "${FRESH:-0}" = 1 ] && rm -rf "$DIR"
if [ ! -e "$DIR/.created" ]; then
  rm -rf "$DIR"; mkdir -p "$DIR"/{mon.a,osd.0,run,log}
  cat > "$DIR/ceph.conf" <<EOF
[global]
fsid = $(uuidgen)
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.\$channel.log
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
mon allow pool size one = true
mon data avail crit = 1
paxos propose interval = 0.01
mon data = $DIR/mon.\$id
osd data = $DIR/osd.\$id
[osd]
osd objectstore = $STORE
osd fast shutdown = false
bluestore block path = $DIR/osd.\$id/block.file
bluestore block create = true
bluestore block size = 10737418240
bluestore cache size = 67108864
osd journal = $DIR/osd.\$id/journal
osd journal size = 128
osd max object name len = 256
osd max object namespace len = 64
memstore device bytes = 2147483648
osd memory target = 536870912
[client.rgw.a]
objecter tick interval = 0.5
objecter timeout = 2
rgw enable lc threads = false
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $DIR/rgw
rgw thread pool size = 64
EOF
  monmaptool --create --fsid "$(ceph-conf $C -s global --lookup fsid)" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap" >/dev/null
  ceph-mon $C -i a --mkfs --monmap "$DIR/monmap" >/dev/null
  NEW=1
fi
: > "$DIR/pids"; sed -i "s/^rgw frontends = .*/rgw frontends = beast endpoint=127.0.0.1:$PORT/" "$DIR/ceph.conf"
setsid ceph-mon $C -i a -f >> "$DIR/log/mon.a.out" 2>&1 & echo $! >> "$DIR/pids"
if [ -n "${NEW:-}" ]; then
  U=$(uuidgen); ceph $C --connect-timeout 60 osd new "$U" >/dev/null
  ceph-osd $C -i 0 --mkfs --osd-uuid "$U" >> "$DIR/log/osd.0.out" 2>&1
fi
setsid ceph-osd $C -i 0 -f >> "$DIR/log/osd.0.out" 2>&1 & echo $! >> "$DIR/pids"
setsid radosgw $C -n client.rgw.a -f >> "$DIR/log/rgw.a.out" 2>&1 & echo $! >> "$DIR/pids"
fi
for i in $(seq 1 600); do   # up to 120 s
  curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/" && break
  [ "$(n_alive)" = 3 ] || { echo "a daemon died; see $DIR/log" >&2; exit 1; }; sleep 0.2
done
curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/" || { echo "radosgw not answering; see $DIR/log" >&2; exit 1; }
if [ ! -e "$DIR/.created" ]; then
  radosgw-admin $C user create --uid=test --display-name=test \
      --access-key="$AK" --secret-key="$SK" >/dev/null
  touch "$DIR/.created"
fi
echo "ENDPOINT=http://127.0.0.1:$PORT ACCESS_KEY=$AK SECRET_KEY=$SK"
