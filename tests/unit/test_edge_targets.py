"""Targets: folder and S3 (moto) share one contract; S3 errors become one clear line."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeops.edge.targets import (
    FileStore,
    KeyMissing,
    PreconditionFailed,
    S3Store,
    Store,
    TargetError,
    open_target,
)
from edgeops.errors import EdgeopsError


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[Store]:
    if request.param == "file":
        yield open_target(f"file://{tmp_path}/target")
        return
    from moto import mock_aws

    with mock_aws():
        s3 = open_target("s3://bucket/some/prefix")
        assert isinstance(s3, S3Store)
        s3.client.create_bucket(Bucket="bucket")
        yield s3


def test_put_get_head_list(store: Store) -> None:
    store.put_bytes("m/1/a.bin", b"hello", sha256="abc")
    store.put_bytes("m/1/b.bin", b"world!")
    store.put_bytes("m/production.json", b"{}")
    assert store.get_bytes("m/1/a.bin") == b"hello"
    info = store.head("m/1/b.bin")
    assert info is not None and info.size == 6
    assert store.head("m/1/missing") is None
    assert store.list() == ["m/1/a.bin", "m/1/b.bin", "m/production.json"]
    assert store.list("m/1/") == ["m/1/a.bin", "m/1/b.bin"]
    with pytest.raises(KeyMissing):
        store.get_bytes("m/2/a.bin")


def test_conditional_writes(store: Store) -> None:
    store.put_bytes("p.json", b"v1", if_absent=True)
    with pytest.raises(PreconditionFailed):
        store.put_bytes("p.json", b"v2", if_absent=True)
    info = store.head("p.json")
    assert info is not None
    store.put_bytes("p.json", b"v2", if_match=info.etag)
    with pytest.raises(PreconditionFailed):  # the etag we read is stale now
        store.put_bytes("p.json", b"v3", if_match=info.etag)
    assert store.get_bytes("p.json") == b"v2"


def test_keys_cannot_escape_the_root(store: Store) -> None:
    for key in ("../x", "/abs", "a//b", "a/./b", ""):
        with pytest.raises(TargetError):
            store.put_bytes(key, b"x")


def test_s3_sha256_metadata_roundtrip(aws_env: None) -> None:
    from moto import mock_aws

    with mock_aws():
        s3 = open_target("s3://bucket")
        assert isinstance(s3, S3Store)
        s3.client.create_bucket(Bucket="bucket")
        s3.put_bytes("k", b"data", sha256="f00d")
        info = s3.head("k")
        assert info is not None and info.sha256 == "f00d"
        assert s3.list() == ["k"]


def test_missing_bucket_is_one_clear_line(aws_env: None) -> None:
    from moto import mock_aws

    with mock_aws():
        s3 = open_target("s3://nope/prefix")
        with pytest.raises(TargetError, match="bucket 'nope' does not exist"):
            s3.get_bytes("x")


def test_unreachable_s3_retries_then_fails_clearly(aws_env: None) -> None:
    s3 = open_target("s3://bucket/p", endpoint_url="http://127.0.0.1:9", max_attempts=2)
    assert isinstance(s3, S3Store)
    start = time.monotonic()
    with pytest.raises(TargetError) as err:
        s3.put_bytes("a", b"x")
    message = str(err.value)
    assert "after 2 attempts" in message and "127.0.0.1:9" in message and "\n" not in message
    assert s3.requests_sent >= 2  # botocore retried (with backoff) before giving up
    assert "testing" not in message  # never echo credentials
    assert time.monotonic() - start < 30


def test_open_target_rejects_unknown_schemes(tmp_path: Path) -> None:
    with pytest.raises(EdgeopsError, match="unknown target"):
        open_target("ftp://x")
    with pytest.raises(EdgeopsError, match="no bucket"):
        open_target("s3:///prefix")
    store = open_target("file://" + str(tmp_path))
    assert isinstance(store, FileStore) and store.root == tmp_path


def test_file_store_writes_are_atomic(tmp_path: Path) -> None:
    store = open_target(f"file://{tmp_path}")
    store.put_bytes("k", b"a" * 1000)
    store.put_bytes("k", b"b" * 10)
    assert store.get_bytes("k") == b"b" * 10
    assert not list(tmp_path.glob(".tmp-*"))  # no temp leftovers


class _Raw(io.BytesIO):
    def stream(self, *_: object, **__: object) -> Iterator[bytes]:
        yield self.getvalue()


def test_transient_s3_errors_are_retried_with_backoff(aws_env: None) -> None:
    """503 SlowDown twice, then success: the write goes through (botocore standard retries)."""
    from botocore.awsrequest import AWSResponse

    s3 = open_target("s3://bucket/p", endpoint_url="http://127.0.0.1:9", max_attempts=4)
    assert isinstance(s3, S3Store)
    calls: list[float] = []

    def answer(request: object, **_: object) -> AWSResponse:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            body = b"<Error><Code>SlowDown</Code><Message>busy</Message></Error>"
            return AWSResponse("http://x", 503, {"Content-Type": "application/xml"}, _Raw(body))
        return AWSResponse("http://x", 200, {"ETag": '"abc"'}, _Raw(b""))

    s3.client.meta.events.register_first("before-send.s3.PutObject", answer)
    s3.put_bytes("k", b"data")
    assert len(calls) == 3 and s3.requests_sent >= 3

    calls.clear()
    failing = open_target("s3://bucket/p", endpoint_url="http://127.0.0.1:9", max_attempts=2)
    failing.client.meta.events.register_first(  # type: ignore[attr-defined]
        "before-send.s3.PutObject",
        lambda **_: AWSResponse("http://x", 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>")),
    )
    with pytest.raises(TargetError, match="SlowDown"):
        failing.put_bytes("k", b"data")
