#!/bin/bash
# stop-postgres.sh DIR -- stop the server start-postgres.sh started in DIR (fast shutdown); the data stays.
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
DIR=$(realpath -m "${1:?usage: stop-postgres.sh DIR}")
[ -e "$DIR/data/PG_VERSION" ] || exit 0
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t 60 stop >/dev/null
fi
rm -f "$DIR/pid"
