"""`edgeops edge …`: the device side. Works standalone (`python -m edgeops.edge.cli`)."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from edgeops.console import run_main
from edgeops.edge import agent, inference
from edgeops.edge.targets import open_target
from edgeops.errors import EdgeopsError

edge_app = typer.Typer(
    help="Edge agent: sync a promoted model, verify it, serve it, roll back.", no_args_is_help=True
)

DirOpt = Annotated[Path, typer.Option("--dir", help="agent folder (holds versions/, current, previous)")]


@edge_app.command()
def sync(
    target: Annotated[str, typer.Option(help="file://DIR or s3://bucket/prefix")],
    model: Annotated[str, typer.Option(help="registered model name")],
    dir: DirOpt,
    channel: Annotated[str, typer.Option(help="pointer to follow: staging or production")] = "production",
    watch: Annotated[float | None, typer.Option(help="keep polling every SEC seconds")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint, e.g. http://127.0.0.1:7480")
    ] = None,
    region: Annotated[str | None, typer.Option(help="S3 region")] = None,
    force: Annotated[bool, typer.Option(help="re-install even if current or rolled back locally")] = False,
    max_polls: Annotated[
        int | None, typer.Option(hidden=True, help="stop --watch after N polls (tests)")
    ] = None,
) -> None:
    """Fetch the version the channel pointer names, verify every sha256, switch atomically."""
    store = run_main(lambda: open_target(target, endpoint_url, region))
    if watch is None:
        result = run_main(lambda: agent.sync(store, model, channel, dir, force=force))
        typer.echo(result.message)
        return
    _watch(lambda: agent.sync(store, model, channel, dir, force=force), watch, max_polls)


def _watch(step: Callable[[], agent.SyncResult], every: float, max_polls: int | None) -> None:
    """Poll forever (or max_polls): a failing poll is reported and the current model keeps serving."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    polls = 0
    while not stopping and (max_polls is None or polls < max_polls):
        polls += 1
        try:
            result = step()
            if result.changed:
                typer.echo(result.message)
        except EdgeopsError as e:
            typer.echo(f"sync failed (will retry in {every:g}s): {e}", err=True)
        except Exception as e:  # anything else (a library's own error) must not stop the watcher either
            typer.echo(f"sync failed (will retry in {every:g}s): {type(e).__name__}: {e}", err=True)
        if max_polls is not None and polls >= max_polls:
            break
        deadline = time.monotonic() + every
        while not stopping and time.monotonic() < deadline:  # short sleeps: SIGTERM stops promptly
            time.sleep(min(0.2, every))


@edge_app.command()
def rollback(dir: DirOpt) -> None:
    """Switch back to the previous version (the current one is held: --watch won't re-install it)."""
    was, now = run_main(lambda: agent.rollback(dir))
    typer.echo(f"rolled back: v{was} → v{now}")


@edge_app.command()
def status(
    dir: DirOpt,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Version on the device and its lineage: source run, dataset fingerprint, git commit."""
    info = run_main(lambda: agent.status(dir))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    rows: list[tuple[str, Any]] = [
        ("version", info["version"]),
        ("model", info["model"]),
        ("channel", info["channel"]),
        ("target", info["target"]),
        ("variant", info["variant"]),
        ("precision", info["precision"]),
        ("task", info["task"]),
        (f"test {info['metric'] or 'score'}", info["score"]),
        ("source run", info["source_run"]),
        ("dataset fingerprint", info["dataset_fingerprint"]),
        ("git commit", info["git_commit"]),
        ("previous", info["previous"]),
        ("held (rolled back)", ", ".join(info["held"]) or None),
        ("published at", info["published_at"]),
        ("synced at", info["synced_at"]),
    ]
    for key, value in rows:
        typer.echo(f"{key:<20} {'-' if value is None else value}")


@edge_app.command()
def serve(
    dir: DirOpt,
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    host: Annotated[str, typer.Option(help="bind address (0.0.0.0 to expose)")] = "127.0.0.1",
) -> None:
    """HTTP: POST /predict (image upload), GET /health, GET /model; picks up synced models live."""
    from edgeops.edge.server import serve as run_server

    run_main(lambda: run_server(dir, host=host, port=port))


@edge_app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="image files")],
    dir: DirOpt,
    top_k: Annotated[int, typer.Option(help="classification: labels per image")] = 3,
    score_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="detection: drop boxes below this score (default: the model's)"),
    ] = None,
    max_boxes: Annotated[int | None, typer.Option(min=1, help="detection: at most this many boxes")] = None,
    out: Annotated[
        Path | None, typer.Option(help="write the task's pictures here (mask + overlay, annotated boxes)")
    ] = None,
) -> None:
    """Run the current model on images; one JSON line per image, as `edge serve` answers (exit 2 if any
    failed). Segmentation answers carry the mask at the image's size as a base64 PNG; detection answers
    carry boxes in the image's own pixels."""
    from edgeops.images import open_image, to_rgb
    from edgeops.vision import AnswerOptions

    options = AnswerOptions(top_k=top_k, score_threshold=score_threshold, max_boxes=max_boxes)
    model = run_main(lambda: inference.load_current(dir))
    failed = 0
    for path in images:
        try:
            result = model.predict_bytes(path.read_bytes(), options)
            if out is not None:
                with open_image(path) as img:
                    written = model.task.save_answer(result, to_rgb(img), out, path.stem)
                result = {**result, "files": [str(w) for w in written]}
            typer.echo(json.dumps({"image": str(path), **result}))
        except (EdgeopsError, OSError) as e:
            failed += 1
            typer.echo(f"{path}: {e}", err=True)
    if failed:
        raise typer.Exit(2)


if __name__ == "__main__":
    sys.exit(edge_app())
