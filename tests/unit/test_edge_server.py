"""Server: predict via multipart or raw body, health/model, clean 4xx, hot swap without failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from edgeops.edge import agent
from edgeops.edge.publish import publish
from edgeops.edge.server import create_app
from edgeops.edge.targets import Store, open_target
from tests.unit.edge_helpers import build_model, image_bytes


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Store, Path]:
    store = open_target(f"file://{tmp_path}/target")
    publish(build_model(tmp_path / "m1", scale=1.0), store, "clf", "1", "production")
    agent.sync(store, "clf", "production", tmp_path / "agent")
    return store, tmp_path / "agent"


@pytest.fixture
def client(setup: tuple[Store, Path]) -> Iterator[TestClient]:
    app = create_app(setup[1], poll_seconds=0.05, max_bytes=200_000, max_pixels=1000 * 1000)
    with TestClient(app) as c:
        yield c


def test_predict_multipart_and_raw(client: TestClient) -> None:
    r = client.post("/predict", files={"file": ("x.png", image_bytes((0, 0, 255)), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] == "blue" and body["version"] == "1" and 0 < body["score"] <= 1
    r = client.post(
        "/predict?top_k=2",
        content=image_bytes((0, 255, 0), fmt="JPEG"),
        headers={"content-type": "image/jpeg"},
    )
    assert r.status_code == 200 and r.json()["label"] == "green" and len(r.json()["top"]) == 2


def test_health_and_model(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    info = client.get("/model").json()
    assert info["version"] == "1" and info["labels"] == ["red", "green", "blue"]
    assert info["source_run"] == "run123" and info["git_commit"] == "deadbeef"


@pytest.mark.parametrize(
    ("kwargs", "status", "text"),
    [
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "not supported"),
        ({"content": b"hello", "headers": {"content-type": "image/png"}}, 400, "not an image"),
        ({"files": {"file": ("a.txt", b"hello", "text/plain")}}, 415, "not an image"),
        ({"files": {"file": ("a.png", b"hello", "image/png")}}, 400, "not an image"),
        ({"data": {"field": "x"}, "files": {"other": ("", b"", "")}}, 400, ""),
        ({"content": b"x" * 300_000, "headers": {"content-type": "image/png"}}, 413, "too large"),
        ({"files": {"file": ("big.png", b"x" * 300_000, "image/png")}}, 413, "too large"),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400, "empty"),
    ],
)
def test_bad_requests_get_4xx(client: TestClient, kwargs: dict, status: int, text: str) -> None:
    r = client.post("/predict", **kwargs)
    assert r.status_code == status, r.text
    assert text in r.json()["detail"]
    assert client.get("/health").status_code == 200  # and the server is fine


def test_decompression_bomb_is_413(client: TestClient) -> None:
    bomb = image_bytes((1, 2, 3), size=1200)  # 1.44 MP > the 1 MP limit of this app, tiny PNG
    r = client.post("/predict", content=bomb, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "pixels" in r.json()["detail"]


def test_no_model_is_503(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path / "empty")) as c:
        assert c.get("/health").status_code == 503
        r = c.post("/predict", content=image_bytes(), headers={"content-type": "image/png"})
        assert r.status_code == 503 and "edge sync" in r.json()["detail"]


def test_hot_swap_drops_no_request(setup: tuple[Store, Path], client: TestClient, tmp_path: Path) -> None:
    store, agent_dir = setup
    versions: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            r = client.post("/predict", content=image_bytes(), headers={"content-type": "image/png"})
            if r.status_code != 200:
                failures.append(r.text)
            else:
                versions.append(r.json()["version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    publish(build_model(tmp_path / "m2", scale=0.5), store, "clf", "2", "production")
    agent.sync(store, "clf", "production", agent_dir)
    deadline = time.monotonic() + 10
    while client.get("/health").json()["version"] != "2" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    agent.rollback(agent_dir)  # and back again, also live
    deadline = time.monotonic() + 10
    while client.get("/health").json()["version"] != "1" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert failures == []
    assert "1" in versions and "2" in versions and versions[-1] == "1"
    assert client.get("/health").json()["swaps"] == 2
