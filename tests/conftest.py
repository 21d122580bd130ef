"""Shared fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import write_image_folder


def _no_openvino_telemetry() -> None:
    """OpenVINO's converter sends telemetry from a forked process (nothing here reaches the internet). A fork
    taken while another thread holds OpenSSL's lock deadlocks, and pytest then waits for it forever at exit
    (seen once in CI: the child stuck in X509_STORE_set_default_paths). Stage processes exit with os._exit."""
    try:
        from openvino_telemetry.backend.backend_ga4 import GA4Backend
    except ImportError:
        return
    GA4Backend.send = lambda self, message: None  # type: ignore[method-assign]


_no_openvino_telemetry()


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "data", {"cat": 10, "dog": 10, "eel": 10})


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials for S3 clients talking to moto or a loopback fake; no profile from the host."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _no_tracking_uri_leaks() -> Iterator[None]:
    """mlflow.set_tracking_uri (edgeops' connect) also exports MLFLOW_TRACKING_URI, which would point every
    later test at this test's store: put the environment and MLflow's default back after each test."""
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    if "mlflow" in sys.modules:  # and MLflow's process-wide URI back to its default
        from mlflow.tracking._tracking_service import utils

        if hasattr(utils, "_tracking_uri"):
            utils._tracking_uri = None
