"""HTTP server of the edge agent: POST /predict, GET /health, GET /model.

A watcher thread follows the agent folder's `current` symlink. When `edge sync` (or a rollback)
swaps it, the new version is compiled first and then swapped in with one reference assignment:
requests already running finish on the model they started with, so none is dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from edgeops.edge.agent import status
from edgeops.edge.inference import DEFAULT_MAX_PIXELS, BadImage, EdgeModel, InferenceError
from edgeops.edge.state import current_version, previous_version
from edgeops.edge.verify import verify_folder
from edgeops.errors import EdgeopsError
from edgeops.vision import AnswerOptions

log = logging.getLogger("edgeops.edge.server")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
# `application/octet-stream` is what many clients send for a file part of unknown type: we sniff it.
IMAGE_TYPES = ("image/", "application/octet-stream")
RETRY_FAILED_S = 30.0  # a version that failed to load is retried after this long, not on every poll


class ModelHolder:
    """Holds the live model and swaps it when the folder's `current` link moves."""

    def __init__(self, agent_dir: Path) -> None:
        self.agent_dir = Path(agent_dir)
        self.model: EdgeModel | None = None
        self.swaps = 0
        self.last_error: str | None = None
        self._failed_version: str | None = None
        self._failed_at = 0.0
        self._lock = threading.Lock()  # one loader at a time; readers never take it

    def refresh(self) -> bool:
        """Load the version `current` names if it differs from the live one. True when swapped."""
        version = current_version(self.agent_dir)
        live = self.model.version if self.model else None
        if version is None or version == live:
            return False
        if version == self._failed_version and time.monotonic() - self._failed_at < RETRY_FAILED_S:
            return False
        with self._lock:
            try:
                model = self._load(version)
            except Exception as e:  # keep serving the old model; say why once
                self._failed_version, self._failed_at = version, time.monotonic()
                self.last_error = f"could not load v{version}: {str(e).splitlines()[0] if str(e) else e}"
                log.error(self.last_error)
                if self.model is None:  # e.g. a restart onto a damaged current: serve the previous one
                    self._fall_back()
                return False
            self.model = model  # atomic reference swap: in-flight requests keep their own reference
            self.swaps += 1 if live is not None else 0  # the first load is not a swap
            self._failed_version = None
            self.last_error = None
            log.info("serving v%s (was v%s)", version, live)
            return True

    def _load(self, version: str) -> EdgeModel:
        """Compile a version folder only after its files match its manifest (sha256 of each)."""
        folder = self.agent_dir / "versions" / version
        verify_folder(folder)
        return EdgeModel(folder)

    def _fall_back(self) -> None:
        previous = previous_version(self.agent_dir)
        if previous is None or previous == self._failed_version:
            return
        try:
            self.model = self._load(previous)
        except Exception as e:
            log.error("could not load the previous version v%s either: %s", previous, e)
            return
        log.warning("serving the previous version v%s until the current one loads", previous)


def _bad(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status_code)


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BadImage(f"upload too large: {declared} bytes, limit is {max_bytes}", 413)
    chunks, total = [], 0
    async for chunk in request.stream():  # also enforces the cap for chunked uploads
        total += len(chunk)
        if total > max_bytes:
            raise BadImage(f"upload too large: over {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _image_from_multipart(request: Request, body: bytes) -> bytes:
    sent = False

    async def replay() -> dict[str, Any]:  # hand the capped body to starlette's form parser
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except Exception as e:
        raise BadImage(f"malformed multipart body: {e}", 400) from None
    try:
        uploads = [v for v in form.values() if isinstance(v, UploadFile)]
        if not uploads:
            raise BadImage("no file in the form: send the image as a file field named 'file'", 400)
        upload = uploads[0]
        ctype = (upload.content_type or "application/octet-stream").lower()
        if not ctype.startswith(IMAGE_TYPES):
            raise BadImage(f"file content type {ctype!r} is not an image: send image/jpeg or image/png", 415)
        return await upload.read()
    finally:
        await form.close()


def create_app(
    agent_dir: Path,
    *,
    poll_seconds: float = 0.5,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FastAPI:
    holder = ModelHolder(agent_dir)
    holder.refresh()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_seconds):
            try:
                holder.refresh()
            except Exception as e:  # the watcher must outlive any surprise
                log.error("model watcher: %s", e)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = threading.Thread(target=watch, name="edgeops-model-watcher", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    app = FastAPI(title="edgeops edge agent", lifespan=lifespan)
    app.state.holder = holder

    @app.exception_handler(BadImage)
    async def _bad_image(_: Request, exc: BadImage) -> JSONResponse:
        return _bad(exc.status, str(exc))

    @app.exception_handler(InferenceError)
    async def _bad_output(_: Request, exc: InferenceError) -> JSONResponse:
        log.error("%s", exc)
        return _bad(500, str(exc))

    @app.get("/health")
    def health() -> JSONResponse:
        model = holder.model
        if model is None:
            return JSONResponse({"status": "no model", "detail": holder.last_error}, status_code=503)
        return JSONResponse({"status": "ok", "version": model.version, "swaps": holder.swaps})

    @app.get("/model")
    def model_info() -> JSONResponse:
        model = holder.model
        if model is None:
            return _bad(503, f"no model in {agent_dir}: run `edgeops edge sync` first")
        try:
            info = status(holder.agent_dir)
        except EdgeopsError:
            info = {}
        # describe what is being *served* (the files may already point at a newer version)
        info.update(
            version=model.version,
            task=model.task.name,
            labels=model.labels,
            output=model.meta.get("output", {}),
            input=model.meta.get("input", {}),
            precision=model.meta.get("precision"),
            variant=model.meta.get("variant"),
            source_run=model.meta.get("mlflow_run_id"),
            dataset_fingerprint=model.meta.get("dataset_fingerprint"),
            git_commit=model.meta.get("git_commit"),
            on_disk_version=current_version(holder.agent_dir),
        )
        return JSONResponse(info)

    @app.post("/predict")
    async def predict(
        request: Request,
        top_k: int = 5,
        score_threshold: float | None = None,
        max_boxes: int | None = None,
    ) -> JSONResponse:
        model = holder.model  # one reference for the whole request
        if model is None:
            return _bad(503, f"no model in {agent_dir}: run `edgeops edge sync` first")
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            data = await _image_from_multipart(request, await _read_capped(request, max_bytes))
        elif ctype.startswith(IMAGE_TYPES):
            data = await _read_capped(request, max_bytes)
        else:
            return _bad(
                415,
                f"content type {ctype or '(none)'!r} not supported: send multipart/form-data "
                "with a 'file' field, or a raw image/jpeg or image/png body",
            )
        if not data:
            return _bad(400, "empty upload: send an image")
        if top_k < 1 or (max_boxes is not None and max_boxes < 1):
            return _bad(422, "top_k and max_boxes must be at least 1")
        if score_threshold is not None and not 0.0 <= score_threshold <= 1.0:
            return _bad(422, "score_threshold must be between 0 and 1")
        options = AnswerOptions(top_k=top_k, score_threshold=score_threshold, max_boxes=max_boxes)
        result = await run_in_threadpool(model.predict_bytes, data, options, max_pixels)
        return JSONResponse(result)

    return app


def serve(agent_dir: Path, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    import uvicorn

    if not Path(agent_dir).is_dir():
        raise EdgeopsError(f"{agent_dir} does not exist: run `edgeops edge sync --dir {agent_dir}` first")
    logging.basicConfig(level=os.environ.get("EDGEOPS_LOG_LEVEL", "INFO"))
    uvicorn.run(create_app(Path(agent_dir)), host=host, port=port, log_level=log_level, access_log=False)
