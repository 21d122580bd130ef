#!/bin/bash
# down.sh [NAME...] -- stop what up.sh started, by PID: the workers, prefect, mlflow (process groups in .team/pids,
# SIGTERM, SIGKILL after a grace period), then s3 (stop-rgw.sh) and postgres (stop-postgres.sh). The data in .team/ stays.
# NAMEs (worker-N, prefect, mlflow, s3, postgres) stop only those; up.sh uses that to undo a failed start.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd); TEAM=${TEAM_DIR:-$ROOT/.team}; PIDS=$TEAM/pids; BIN=$ROOT/.venv/bin
# stop_group NAME GRACE: SIGTERM to the process group whose leader's PID is in pids/NAME (if a process of ours is still
# in it), SIGKILL after GRACE seconds
stop_group() {
  local p i; p=$(cat "$PIDS/$1" 2>/dev/null) || return 0
  if pgrep -g "$p" -f "$BIN" >/dev/null; then
    kill -TERM -- "-$p" 2>/dev/null
    for i in $(seq 1 $(($2 * 10))); do kill -0 -- "-$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 -- "-$p" 2>/dev/null && { echo "$1 (pid $p) still running $2 s after SIGTERM: SIGKILL"; kill -KILL -- "-$p"; }
    echo "stopped $1 (pid $p)"
  fi
  rm -f "$PIDS/$1"
}
[ -d "$TEAM" ] || { echo "nothing to stop (no $TEAM)"; exit 0; }
if [ $# = 0 ]; then
  set -- $(cd "$PIDS" 2>/dev/null && ls -d worker-* 2>/dev/null | sort -t- -k2 -n) prefect mlflow s3 postgres
fi
for name in "$@"; do
  case $name in
    s3) [ -s "$TEAM/s3/pids" ] && "$ROOT/scripts/rgw/stop-rgw.sh" "$TEAM/s3" >/dev/null && echo "stopped s3 (radosgw, osd, mon)" ;;
    postgres) [ -e "$TEAM/postgres/data/postmaster.pid" ] && "$ROOT/scripts/postgres/stop-postgres.sh" "$TEAM/postgres" && echo "stopped postgres" ;;
    # Prefect 3.9.1's worker does not exit on SIGTERM/SIGINT when idle (its handler re-sends SIGINT and waits;
    # measured > 60 s); its own protocol is a second signal = SIGKILL: so a short grace for workers
    worker-*) stop_group "$name" 5 ;;
    *) stop_group "$name" 20 ;;
  esac
done
exit 0
