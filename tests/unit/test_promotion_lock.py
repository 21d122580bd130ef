"""The promotion lock without a lock server: key derivation, URL masking, and which lock the environment picks."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgeops.errors import EdgeopsError
from edgeops.registry import lock
from tests.unit.edge_helpers import free_port

URI = "http://mlflow.example:5000"


def test_lock_key_is_stable_signed_and_distinct_per_model_and_registry() -> None:
    key = lock.lock_key(URI, "clf")
    # pinned: every promoter, on every machine and edgeops version, must derive the same key
    assert key == -7252598908811530627
    assert lock.lock_key(URI + "/", "clf") == key  # a trailing slash names the same server
    assert -(2**63) <= key < 2**63
    others = {
        lock.lock_key(URI, "seg"),
        lock.lock_key(URI, "clf2"),
        lock.lock_key("http://other:5000", "clf"),
    }
    assert key not in others and len(others) == 3


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://edgeops:s3cr%40t@db.lan:5432/edgeops", "postgresql://edgeops:***@db.lan:5432/edgeops"),
        ("postgresql://edgeops@db.lan/edgeops", "postgresql://edgeops@db.lan/edgeops"),
        (
            "postgresql://db.lan/x?user=u&password=hunter2&sslmode=require",
            "postgresql://db.lan/x?user=u&password=***&sslmode=require",
        ),
        ("postgresql://u:pw@[::1]:5433/db", "postgresql://u:***@[::1]:5433/db"),
        ("postgresql://u:pw@host:notaport/db", "postgresql://u:***@host:notaport/db"),
        ("host=db password='top secret' user=u", "host=db password=*** user=u"),
        ("postgresql://u:pw@[::1/db", "<unparseable URL>"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert lock.mask_url(url) == masked


def test_application_name_fits_postgres_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock.socket, "gethostname", lambda: "h" * 100)
    name = lock.application_name()
    assert (
        len(name) <= 63 and name.startswith("edgeops-promote hhh") and name.endswith(f" {lock.os.getpid()}")
    )


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, tuple[object, ...]]]:
    """Record which lock promotion_lock takes, instead of taking it."""
    calls: list[tuple[str, tuple[object, ...]]] = []

    def fake(kind: str) -> Callable[..., contextlib.AbstractContextManager[str]]:
        @contextlib.contextmanager
        def take(*args: object) -> Iterator[str]:
            calls.append((kind, args))
            yield kind

        return take

    monkeypatch.setattr(lock, "advisory_lock", fake("advisory"))
    monkeypatch.setattr(lock, "file_lock", fake("file"))
    monkeypatch.delenv(lock.LOCK_URL_ENV, raising=False)
    monkeypatch.delenv(lock.TIMEOUT_ENV, raising=False)
    monkeypatch.setenv(lock.PATH_ENV, str(tmp_path / "promote.lock"))
    return calls


def test_without_lock_url_the_local_file_lock_is_used(
    chosen: list[tuple[str, tuple[object, ...]]], tmp_path: Path
) -> None:
    with lock.promotion_lock(URI, "clf") as where:
        assert where == "file"
    assert chosen == [("file", (tmp_path / "promote.lock", 120.0))]


def test_with_lock_url_the_advisory_lock_is_used(
    chosen: list[tuple[str, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://edgeops:pw@db.lan:5432/edgeops"
    monkeypatch.setenv(lock.LOCK_URL_ENV, url)
    monkeypatch.setenv(lock.TIMEOUT_ENV, "7.5")
    with lock.promotion_lock(URI, "clf") as where:
        assert where == "advisory"
    assert chosen == [("advisory", (url, lock.lock_key(URI, "clf"), "clf", 7.5))]


def test_blank_lock_url_means_local_lock(
    chosen: list[tuple[str, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(lock.LOCK_URL_ENV, "  ")
    with lock.promotion_lock(URI, "clf"):
        pass
    assert [kind for kind, _ in chosen] == ["file"]


@pytest.mark.parametrize("value", ["mysql://u:topsecret@db/x", "host=db password=topsecret"])
def test_a_lock_url_that_is_not_postgres_is_one_line_without_the_password(
    chosen: list[tuple[str, tuple[object, ...]]], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(lock.LOCK_URL_ENV, value)
    with pytest.raises(EdgeopsError, match="EDGEOPS_LOCK_URL=.* is not a PostgreSQL URL") as err:
        lock.promotion_lock(URI, "clf").__enter__()
    assert "topsecret" not in str(err.value) and "\n" not in str(err.value)
    assert chosen == []


def test_a_bad_timeout_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lock.TIMEOUT_ENV, "soon")
    with pytest.raises(EdgeopsError, match="EDGEOPS_PROMOTION_LOCK_TIMEOUT='soon' is not a number"):
        lock.lock_timeout()


def test_unreachable_lock_server_is_one_line_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"postgresql://edgeops:topsecret@127.0.0.1:{free_port()}/edgeops"  # nothing listens there
    monkeypatch.setenv(lock.LOCK_URL_ENV, url)
    with pytest.raises(EdgeopsError) as err, lock.promotion_lock(URI, "clf", timeout=1):
        pytest.fail("the lock must not be granted")
    message = str(err.value)
    assert "\n" not in message and "topsecret" not in message
    assert "edgeops:***@127.0.0.1" in message and "Connection refused" in message
    assert "check EDGEOPS_LOCK_URL" in message and "make up" in message


def test_file_lock_times_out_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "promote.lock"
    with open(path, "a") as other:  # another open file description: as another process would hold it
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(EdgeopsError, match="another promotion holds .* for over 0.2s"):
            lock.file_lock(path, 0.2).__enter__()
    with lock.file_lock(path, 0.2) as where:
        assert where == str(path)
