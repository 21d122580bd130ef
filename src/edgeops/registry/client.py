"""The MLflow registry client for promotion: one-line errors for an unreachable registry, the
promotion lock, and lookups that say what is missing."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from edgeops.errors import EdgeopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


LOCK_TIMEOUT_S = float(os.environ.get("EDGEOPS_PROMOTION_LOCK_TIMEOUT", "120"))
LOCK_STALE_S = float(os.environ.get("EDGEOPS_PROMOTION_LOCK_STALE", "900"))


# --------------------------------------------------------------------------- client / lock


def make_client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    # MLflow's HTTP defaults (7 retries, backoff factor 2) take ~4 minutes to report a stopped server;
    # a CLI should say so within seconds. Users can still raise them via these variables.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def registry_failure(tracking_uri: str, e: BaseException) -> str | None:
    """One actionable line for a registry failure (down, unreachable, refused); None if `e` is not one."""
    from mlflow.exceptions import MlflowException

    if (
        not isinstance(e, MlflowException | OSError | ConnectionError)
        and "requests" not in type(e).__module__
    ):
        return None
    detail = (str(getattr(e, "message", "") or e).splitlines() or [""])[0]
    if "Connection refused" in detail or "Max retries exceeded" in detail:
        detail = "connection refused"
    return (
        f"MLflow registry at {tracking_uri} failed: {detail[:200]} "
        "(start the tracking server or fix mlflow.tracking_uri / MLFLOW_TRACKING_URI)"
    )


@contextlib.contextmanager
def registry_errors(tracking_uri: str) -> Iterator[None]:
    """Anything the registry throws (down, unreachable, refused) becomes one actionable line."""
    try:
        yield
    except EdgeopsError:
        raise
    except Exception as e:
        message = registry_failure(tracking_uri, e)
        if message is None:
            raise
        raise EdgeopsError(message) from None


LOCK_SUFFIX = ".promotion-lock"


def lock_name(name: str) -> str:
    return name + LOCK_SUFFIX


@contextlib.contextmanager
def promotion_lock(
    client: MlflowClient, name: str, timeout: float | None = None, stale: float | None = None
) -> Iterator[str]:
    """Serialise the promotions of one registered model across processes *and machines*.

    The lock lives in the registry itself: a registered model `<name>.promotion-lock`, whose creation is
    atomic on every MLflow backend (it fails if the name exists). So every promoter that reaches the
    registry agrees on it, whatever its machine or folder. A lock older than `stale` seconds (a promoter
    that died) is broken; it is released by deleting it."""
    from mlflow.exceptions import MlflowException

    timeout = LOCK_TIMEOUT_S if timeout is None else timeout
    stale = LOCK_STALE_S if stale is None else stale
    lock = lock_name(name)
    holder = f"{who()} (pid {os.getpid()}) since {utc_now()}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_registered_model(
                lock,
                tags={"edgeops.lock": "promotion"},
                description=f"edgeops promotion lock of {name}, held by {holder}; removed when it ends",
            )
            break
        except MlflowException as e:
            if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
                raise
        held = _lock_holder(client, lock)
        if held is not None and time.time() - held[0] > stale:
            with contextlib.suppress(MlflowException):  # another waiter may break it first
                if _lock_holder(client, lock) == held:
                    client.delete_registered_model(lock)
            continue
        if time.monotonic() > deadline:
            who_holds = held[1] if held else "another promotion"
            raise EdgeopsError(
                f"{who_holds} holds the promotion lock of {name} for over {timeout:g}s: wait for it; if that "
                f"promotion died, delete the registered model '{lock}' (it is broken after {stale:g}s)"
            )
        time.sleep(0.2)
    try:
        yield lock
    finally:
        with contextlib.suppress(Exception):
            client.delete_registered_model(lock)


def _lock_holder(client: MlflowClient, lock: str) -> tuple[float, str] | None:
    """(created at, description) of the lock, or None if it is gone."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(lock)
    except MlflowException:
        return None
    return model.creation_timestamp / 1000, str(model.description or "")


def who() -> str:
    user = os.environ.get("EDGEOPS_USER") or os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"{user}@{socket.gethostname()}"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def is_missing(e: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(e, "error_code", "")) or "not found" in str(e).lower()


def get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if is_missing(e):
            raise EdgeopsError(
                f"registered model '{name}' has no version {version}: see `edgeops models show {name}`"
            ) from None
        raise  # unreachable / refused: registry_errors() words it


def get_model(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if is_missing(e):
            raise EdgeopsError(
                f"no registered model '{name}' in the registry: run the pipeline (`edgeops run`) or see "
                "`edgeops models list`"
            ) from None
        raise
