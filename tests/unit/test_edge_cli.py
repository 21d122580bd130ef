"""`edgeops edge …` commands through typer's CliRunner (the app works standalone)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgeops.edge.cli import edge_app
from edgeops.edge.publish import publish
from edgeops.edge.targets import open_target
from tests.unit.edge_helpers import build_model, image_bytes

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(edge_app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_sync_status_predict_rollback(tmp_path: Path) -> None:
    uri, d = f"file://{tmp_path}/t", str(tmp_path / "agent")
    store = open_target(uri)
    publish(build_model(tmp_path / "m1", scale=1.0), store, "clf", "1", "production")
    code, out, _ = _invoke("sync", "--target", uri, "--model", "clf", "--dir", d)
    assert code == 0 and "installed v1" in out
    publish(build_model(tmp_path / "m2", scale=0.8), store, "clf", "2", "production")
    code, out, _ = _invoke(
        "sync", "--target", uri, "--model", "clf", "--dir", d, "--watch", "0.05", "--max-polls", "2"
    )
    assert code == 0 and "installed v2 (was v1)" in out
    code, out, _ = _invoke("status", "--dir", d)
    assert code == 0
    for text in ("version              2", "run123", "fp-abc", "deadbeef", "previous             1"):
        assert text in out
    assert json.loads(_invoke("status", "--dir", d, "--json")[1])["version"] == "2"
    img = tmp_path / "b.jpg"
    img.write_bytes(image_bytes((0, 0, 255), fmt="JPEG"))
    code, out, _ = _invoke("predict", "--dir", d, str(img))
    assert code == 0 and json.loads(out)["label"] == "blue"
    code, out, _ = _invoke("rollback", "--dir", d)
    assert code == 0 and "v2 → v1" in out


def test_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    code, _, err = _invoke("status", "--dir", str(tmp_path / "nothing"))
    assert code == 2 and "no current model" in err and "Traceback" not in err
    code, _, err = _invoke("sync", "--target", "ftp://x", "--model", "clf", "--dir", str(tmp_path))
    assert code == 2 and err.strip().count("\n") == 0
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    uri = f"file://{tmp_path}/t"
    publish(build_model(tmp_path / "m"), open_target(uri), "clf", "1", "production")
    _invoke("sync", "--target", uri, "--model", "clf", "--dir", str(tmp_path / "a"))
    code, _, err = _invoke("predict", "--dir", str(tmp_path / "a"), str(bad))
    assert code == 2 and "not an image" in err


def test_tampered_sync_exits_nonzero_naming_the_file(tmp_path: Path) -> None:
    uri, d = f"file://{tmp_path}/t", str(tmp_path / "agent")
    store = open_target(uri)
    publish(build_model(tmp_path / "m1"), store, "clf", "1", "production")
    _invoke("sync", "--target", uri, "--model", "clf", "--dir", d)
    publish(build_model(tmp_path / "m2", scale=0.3), store, "clf", "2", "production")
    (tmp_path / "t" / "clf" / "2" / "model.bin").write_bytes(b"evil")
    code, _, err = _invoke("sync", "--target", uri, "--model", "clf", "--dir", d)
    assert code == 2 and "model.bin" in err and "current model kept" in err
    assert json.loads(_invoke("status", "--dir", d, "--json")[1])["version"] == "1"


def test_watch_reports_any_failing_poll_and_keeps_polling(capsys) -> None:
    from edgeops.edge import agent
    from edgeops.edge.cli import _watch
    from edgeops.errors import EdgeopsError

    outcomes: list[Exception | agent.SyncResult] = [
        EdgeopsError("target unreachable"),
        ConnectionResetError("peer reset"),  # not ours: must not kill the watcher either
        agent.SyncResult(changed=True, version="3", previous="2", message="installed version 3"),
    ]

    def step() -> agent.SyncResult:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    _watch(step, every=0.01, max_polls=3)
    captured = capsys.readouterr()
    assert "target unreachable" in captured.err and "ConnectionResetError: peer reset" in captured.err
    assert "installed version 3" in captured.out and not outcomes
