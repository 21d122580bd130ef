"""Edge targets: a local folder (`file://`) or an S3-compatible bucket (`s3://bucket/prefix`).

A target is a flat key/value store rooted at the URI's prefix. Keys use `/` separators and are
relative to that root. Writes of a single key are atomic for readers: S3 PUTs are atomic and the
folder target writes a temp file and renames it. Credentials for S3 come only from the
environment / standard AWS config (boto3's default chain); they are never logged or stored here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from edgeops.errors import EdgeopsError
from edgeops.files import write_atomic

T = TypeVar("T")

# Total attempts per S3 call (botocore "standard" mode: exponential backoff with jitter on
# throttling, 5xx, timeouts and connection errors). Overridable for tests / flaky links.
DEFAULT_S3_ATTEMPTS = 5


def _file_mode() -> int:
    """0666 minus the process umask: what a plain open() would create."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _file_mode()


class TargetError(EdgeopsError):
    """A target operation failed (unreachable, denied, ...)."""


class KeyMissing(TargetError):
    """The key does not exist in the target."""


class PreconditionFailed(TargetError):
    """A conditional write lost: the key exists / changed since it was read."""


class DeadlineExceeded(TargetError):
    """A whole operation (e.g. one `edge sync`) ran past its time budget: a hanging or trickling store."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str  # opaque version token for conditional writes
    sha256: str | None  # recorded at upload time when the store supports metadata


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise TargetError(f"invalid target key {key!r}")
    return key


class Store:
    """Interface shared by folder and S3 targets."""

    uri: str

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> None:
        """Write `data` at `key`. `if_absent`: fail with PreconditionFailed when the key exists;
        `if_match`: fail unless the key's current etag equals it."""
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def download(self, key: str, dest: Path) -> None:
        dest.write_bytes(self.get_bytes(key))

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove `key` (no error if it is already gone)."""
        raise NotImplementedError

    def describe(self, key: str = "") -> str:
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri


class FileStore(Store):
    """A folder. Conditional writes are serialized with an flock on `<root>/.edgeops.lock`."""

    def __init__(self, uri: str, root: Path) -> None:
        self.uri = uri
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".edgeops.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _write_atomic(self, path: Path, data: bytes) -> None:
        write_atomic(path, data, _FILE_MODE)  # devices may read the folder as another user

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> None:
        path = self._path(key)
        try:
            if not (if_absent or if_match):
                self._write_atomic(path, data)
                return
            with self._locked():
                info = self.head(key)
                if if_absent and info is not None:
                    raise PreconditionFailed(f"{self.describe(key)} already exists")
                if if_match and (info is None or info.etag != if_match):
                    raise PreconditionFailed(f"{self.describe(key)} changed since it was read")
                self._write_atomic(path, data)
        except OSError as e:
            raise TargetError(f"cannot write {self.describe(key)}: {e.strerror or e}") from None

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise KeyMissing(f"{self.describe(key)} not found") from None
        except OSError as e:
            raise TargetError(f"cannot read {self.describe(key)}: {e.strerror or e}") from None

    def head(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ENOTDIR:
                return None
            raise TargetError(f"cannot stat {self.describe(key)}: {e.strerror or e}") from None
        # inode + mtime + size changes on every atomic replace: a good enough version token
        return ObjectInfo(size=st.st_size, etag=f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}", sha256=None)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as e:
            raise TargetError(f"cannot delete {self.describe(key)}: {e.strerror or e}") from None

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for p in self.root.rglob("*"):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and not p.name.startswith((".tmp-", ".edgeops.lock")) and rel.startswith(prefix):
                keys.append(rel)
        return sorted(keys)


class S3Store(Store):
    """An S3 bucket (AWS or any S3-compatible endpoint) with an optional key prefix."""

    def __init__(
        self,
        uri: str,
        bucket: str,
        prefix: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int | None = None,
        client: Any = None,
    ) -> None:
        self.uri = uri
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.attempts = max_attempts or int(os.environ.get("EDGEOPS_S3_MAX_ATTEMPTS", DEFAULT_S3_ATTEMPTS))
        self.requests_sent = 0  # counts attempts, retries included (for tests and messages)
        self.client = client if client is not None else self._make_client(endpoint_url, region)
        self.client.meta.events.register("before-send.s3", self._count_attempt)

    def _make_client(self, endpoint_url: str | None, region: str | None) -> Any:
        import boto3  # edge extra; imported late so file:// targets work without it
        from botocore.config import Config

        config = Config(
            retries={"max_attempts": self.attempts, "mode": "standard"},
            signature_version="s3v4",  # some S3-compatible stores default presigning to SigV2
            connect_timeout=float(os.environ.get("EDGEOPS_S3_CONNECT_TIMEOUT", "3")),
            read_timeout=float(os.environ.get("EDGEOPS_S3_READ_TIMEOUT", "30")),
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region or None, config=config
        )

    def _count_attempt(self, **_: Any) -> None:
        self.requests_sent += 1

    def _key(self, key: str) -> str:
        _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _fail(self, action: str, key: str, e: Exception) -> TargetError:
        from botocore.exceptions import ClientError

        if isinstance(e, TargetError):  # e.g. DeadlineExceeded raised while botocore was blocked
            return e
        if isinstance(e, ClientError):
            code = str(e.response.get("Error", {}).get("Code", ""))
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound"):
                return KeyMissing(f"{self.describe(key)} not found")
            if code in ("PreconditionFailed", "412") or status == 412:
                return PreconditionFailed(f"{self.describe(key)} changed concurrently (precondition failed)")
            if code == "NoSuchBucket":
                return TargetError(
                    f"bucket '{self.bucket}' does not exist at {self._where()}: create it first"
                )
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return TargetError(
                    f"{action} {self.describe(key)} denied ({code}): check AWS credentials in the environment"
                )
            return TargetError(f"{action} {self.describe(key)} failed: {code or status}")
        if type(e).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
            return TargetError(
                f"{action} {self.describe(key)} failed: no AWS credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, in the environment)"
            )
        # connection refused, DNS, timeouts: botocore already retried with backoff
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        return TargetError(
            f"{action} {self.describe(key)} failed after {self.attempts} attempts: {reason} "
            f"(is {self._where()} reachable?)"
        )

    def _where(self) -> str:
        return self.endpoint_url or "AWS S3"

    def put_bytes(
        self,
        key: str,
        data: bytes,
        *,
        sha256: str | None = None,
        if_match: str | None = None,
        if_absent: bool = False,
    ) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if sha256:
            kwargs["Metadata"] = {"sha256": sha256}
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match.strip('"')  # radosgw compares the ETag unquoted
        try:
            self.client.put_object(**kwargs)
        except Exception as e:  # botocore raises many unrelated types; map all to one message
            raise self._fail("upload to", key, e) from None

    def get_bytes(self, key: str) -> bytes:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(resp["Body"].read())
        except Exception as e:
            raise self._fail("download of", key, e) from None

    def download(self, key: str, dest: Path) -> None:
        """Stream `key` into `dest`. A local write error (disk full, read-only) stays an OSError:
        it is the device's problem, not the store's, and must not read as "unreachable"."""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            chunks = resp["Body"].iter_chunks(1 << 20)
        except Exception as e:
            raise self._fail("download of", key, e) from None
        with open(dest, "wb") as fh:
            while True:
                try:
                    chunk = next(chunks, b"")
                except Exception as e:  # connection dropped / timed out mid-body
                    raise self._fail("download of", key, e) from None
                if not chunk:
                    return
                fh.write(chunk)

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            err = self._fail("check of", key, e)
            if isinstance(err, KeyMissing):
                return None
            raise err from None
        meta = {k.lower(): v for k, v in (resp.get("Metadata") or {}).items()}
        return ObjectInfo(
            size=int(resp["ContentLength"]), etag=str(resp["ETag"]).strip('"'), sha256=meta.get("sha256")
        )

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as e:
            raise self._fail("delete of", key, e) from None

    def list(self, prefix: str = "") -> list[str]:
        # plain string prefix (may end mid-name, like S3's own Prefix); root prefix ends with "/"
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        keys: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for obj in page.get("Contents", []):
                    k = str(obj["Key"])
                    keys.append(k[len(self.prefix) + 1 :] if self.prefix else k)
        except Exception as e:
            raise self._fail("listing of", prefix, e) from None
        return sorted(keys)


def open_target(
    uri: str, endpoint_url: str | None = None, region: str | None = None, max_attempts: int | None = None
) -> Store:
    """Open `file:///abs/dir`, `file://rel/dir` or `s3://bucket[/prefix]`."""
    if uri.startswith("file://"):
        raw = uri[len("file://") :]
        if not raw:
            raise EdgeopsError(f"target {uri!r} has no path: use file:///abs/dir or file://rel/dir")
        return FileStore(uri, Path(raw).expanduser().resolve())
    if uri.startswith("s3://"):
        parsed = urlparse(uri)
        if not parsed.netloc:
            raise EdgeopsError(f"target {uri!r} has no bucket: use s3://bucket/prefix")
        endpoint = endpoint_url or os.environ.get("EDGEOPS_S3_ENDPOINT_URL") or None
        return S3Store(uri, parsed.netloc, parsed.path, endpoint, region, max_attempts)
    raise EdgeopsError(f"unknown target {uri!r}: use file://DIR or s3://bucket/prefix")


def within_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """fn() or DeadlineExceeded after `seconds` (0 = no limit), from any thread.

    Socket timeouts alone cannot stop a store that answers a byte at a time. So the network work runs
    in a helper thread and this one stops waiting at the deadline; the abandoned transfer only writes
    into a folder the caller then removes, and ends when its connection does."""
    if seconds <= 0:
        return fn()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            outcome["error"] = e

    worker = threading.Thread(target=work, name="edgeops-transfer", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DeadlineExceeded(
            f"{what} took over {seconds:g}s (the store hangs or is very slow); "
            "raise EDGEOPS_SYNC_TIMEOUT for big models on slow links"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]  # type: ignore[no-any-return]
