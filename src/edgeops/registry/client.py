"""The MLflow registry client for promotion: one-line errors for an unreachable registry, and lookups
that say what is missing. The promotion lock is in lock.py."""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from edgeops.errors import EdgeopsError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


# --------------------------------------------------------------------------- client


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
