"""The promotion lock: one promotion of a registered model at a time, across machines when configured.

- `EDGEOPS_LOCK_URL` set (`postgresql://user:password@host:port/database`, from the environment only): a
  PostgreSQL session-level advisory lock keyed by tracking URI + model name. It serialises promoters on
  every machine that reaches that server, and the server drops it with the holder's connection: a killed
  promoter never leaves it behind (a dead machine: within ~1 minute, through TCP keepalives), unlike a
  lock written into the registry, which outlived a tracking server that died mid-promotion.
- otherwise: an exclusive `flock` on a local file (next to the sqlite registry, or in the temp folder per
  tracking URI; `EDGEOPS_PROMOTION_LOCK` chooses the path), which serialises promoters on this machine only.

`EDGEOPS_PROMOTION_LOCK_TIMEOUT` (seconds, default 120) bounds the wait for either.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit, urlunsplit

from edgeops.errors import EdgeopsError

if TYPE_CHECKING:
    from psycopg2.extensions import connection

LOCK_URL_ENV = "EDGEOPS_LOCK_URL"
TIMEOUT_ENV = "EDGEOPS_PROMOTION_LOCK_TIMEOUT"
PATH_ENV = "EDGEOPS_PROMOTION_LOCK"
DEFAULT_TIMEOUT_S = 120.0
POLL_S = 0.2
CONNECT_TIMEOUT_S = 10
APP_PREFIX = "edgeops-promote"
# libpq's side: this promoter notices a dead lock server. The server's side (session settings): the server
# notices a dead holder machine after ~30 + 3 x 10 s and drops its connection, and with it the lock.
CLIENT_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
SERVER_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
HOLDER_SQL = """
SELECT l.pid, a.application_name FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid::bigint = %s AND l.objid::bigint = %s
"""


# --------------------------------------------------------------------------- settings


def lock_timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise EdgeopsError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None


def mask_url(url: str) -> str:
    """The URL with its password (in the user part or a `password=` parameter) replaced by ***."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            hostport = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{hostport}"))
    except ValueError:
        return "<unparseable URL>"
    return re.sub(r"(?i)(password\s*=\s*)('[^']*'|[^&\s]*)", r"\1***", url)


def lock_url() -> str | None:
    """EDGEOPS_LOCK_URL when set (checked to be a PostgreSQL URL), else None: the local lock."""
    url = os.environ.get(LOCK_URL_ENV, "").strip()
    if not url:
        return None
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise EdgeopsError(
            f"{LOCK_URL_ENV}={mask_url(url)} is not a PostgreSQL URL: set it to "
            "postgresql://user:password@host:port/database, or unset it to use the local lock"
        )
    return url


def lock_key(tracking_uri: str, name: str) -> int:
    """The advisory lock key of model `name` in this registry: the first 8 bytes of a sha256, signed."""
    digest = hashlib.sha256(f"{tracking_uri.rstrip('/')}\n{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_path(tracking_uri: str) -> Path:
    """A lock file every promoter of this registry on this machine agrees on."""
    override = os.environ.get(PATH_ENV)
    if override:
        return Path(override)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :].split("?")[0])
        return db.resolve().with_name(db.name + ".promote.lock")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "edgeops-locks" / f"promote-{digest}.lock"


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def promotion_lock(tracking_uri: str, name: str, timeout: float | None = None) -> Iterator[str]:
    """Hold the promotion lock of model `name` in this registry; yields where the lock lives."""
    wait = lock_timeout() if timeout is None else timeout
    url = lock_url()
    if url:
        with advisory_lock(url, lock_key(tracking_uri, name), name, wait) as where:
            yield where
    else:
        with file_lock(lock_path(tracking_uri), wait) as where:
            yield where


@contextlib.contextmanager
def file_lock(path: Path, timeout: float) -> Iterator[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EdgeopsError(
                        f"another promotion holds {path} for over {timeout:g}s: "
                        f"wait for it, or raise {TIMEOUT_ENV}"
                    ) from None
                time.sleep(0.05)
        try:
            yield str(path)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def advisory_lock(url: str, key: int, name: str, timeout: float) -> Iterator[str]:
    """A session-level advisory lock: held as long as this connection lives, released by the server
    when it closes, whether we unlock, exit or get killed."""
    conn = _connect(url)
    try:
        _acquire(conn, url, key, name, timeout)
    except BaseException:
        conn.close()
        raise
    try:
        yield f"advisory lock {key} on {mask_url(url)}"
    finally:
        _release(conn, url, key)


# --------------------------------------------------------------------------- PostgreSQL session


def application_name() -> str:
    """How a holder shows in pg_stat_activity: `edgeops-promote <host> <pid>` (PostgreSQL keeps 63 bytes)."""
    pid = str(os.getpid())
    host = socket.gethostname()[: 63 - len(APP_PREFIX) - len(pid) - 2]
    return f"{APP_PREFIX} {host} {pid}"


def _failure(url: str, e: BaseException) -> str:
    """One line: what failed with the lock server (password scrubbed) and how to fix it."""
    detail = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    password = urlsplit(url).password
    for secret in {password, unquote(password or "")} - {None, ""}:
        detail = detail.replace(str(secret), "***")
    detail = re.sub(r"^FATAL:\s+", "", detail)
    return (
        f"promotion lock server {mask_url(url)} failed: {detail[:200]} (check {LOCK_URL_ENV}: host, "
        "port, user, password, database; and that PostgreSQL is running there, e.g. `make up`)"
    )


def _connect(url: str) -> connection:
    import psycopg2

    try:
        conn = psycopg2.connect(
            url,
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name=application_name(),
            options=SERVER_KEEPALIVES,
            **CLIENT_KEEPALIVES,
        )
    except psycopg2.Error as e:
        raise EdgeopsError(_failure(url, e)) from None
    conn.autocommit = True  # a session-level lock, outside any transaction
    return conn


def _query_one(conn: connection, sql: str, args: tuple[int, ...]) -> tuple[object, ...] | None:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def _try_lock(conn: connection, key: int) -> bool:
    row = _query_one(conn, "SELECT pg_try_advisory_lock(%s)", (key,))
    return bool(row and row[0])


def holder(conn: connection, key: int) -> str:
    """Who holds `key`, as `pid N on HOST` from the holder's application_name."""
    unsigned = key % (1 << 64)  # pg_locks shows a bigint key as two oids: high and low 32 bits
    row = _query_one(conn, HOLDER_SQL, (unsigned >> 32, unsigned & 0xFFFFFFFF))
    if row is None:
        return "a session that just let go"
    backend, app = row
    words = str(app or "").split()
    if len(words) == 3 and words[0] == APP_PREFIX:
        return f"pid {words[2]} on {words[1]}"
    return f"PostgreSQL backend pid {backend} ({app or 'no application_name'})"


def _acquire(conn: connection, url: str, key: int, name: str, timeout: float) -> None:
    import psycopg2

    deadline, who = time.monotonic() + timeout, ""
    try:
        while not _try_lock(conn, key):
            if not who:
                who = holder(conn, key)
                print(
                    f"waiting for another promotion of {name} (lock held by {who}; up to {timeout:g}s)",
                    file=sys.stderr,
                    flush=True,
                )
            if time.monotonic() >= deadline:
                raise EdgeopsError(
                    f"another promotion of {name} held its lock for over {timeout:g}s ({who}, on "
                    f"{mask_url(url)}): let it finish and retry, or raise {TIMEOUT_ENV}"
                )
            time.sleep(POLL_S)
    except psycopg2.Error as e:
        raise EdgeopsError(_failure(url, e)) from None


def _release(conn: connection, url: str, key: int) -> None:
    import psycopg2

    try:
        row = _query_one(conn, "SELECT pg_advisory_unlock(%s)", (key,))
        released = bool(row and row[0])
    except psycopg2.Error:
        released = False
    finally:
        conn.close()  # closing alone releases it too
    if not released:
        print(
            f"warning: the promotion lock's session on {mask_url(url)} ended before the promotion did, so "
            "another promotion may have run alongside: check `edgeops models history`",
            file=sys.stderr,
            flush=True,
        )
