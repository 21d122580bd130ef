"""Promotion of registered OpenVINO models by MLflow alias + legacy stage, with gates and an audit trail.

Registry conventions (see registry.py): one registered model per project; each version's source
is `<run artifacts>/model` (model.xml, model.bin, model.json) and carries tags such as `task`, `metric`, `score`,
`score_drop`, `latency_ms_p50`, `size_mb`, `dataset_fingerprint`, `git_commit`, `variant`.

What a promotion writes:
- alias `@staging` / `@production` (the current MLflow way) and the legacy stage (the UI's column);
- version tags `promotion.<n>.{from,to,when,who,reason,gates,forced,action,replaces}`;
- a model-level event `edgeops.history.<seq>` (JSON): the ordered log `history` and `--rollback` use;
- the model files on every edge target configured for that stage (pointer written last).

Concurrency: the whole read-check-write runs under an exclusive file lock (next to the sqlite
database, or in the temp dir keyed by tracking URI for a server), and the alias is re-read
afterwards, so two promotions at once leave one consistent result.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeops.config import GatesConfig, Params, Target
from edgeops.errors import EdgeopsError
from edgeops.pipeline.gates import GateResult, Measured, check_gates

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from edgeops.edge.targets import Store

STAGES = ("staging", "production")
HISTORY_PREFIX = "edgeops.history."
LOCK_TIMEOUT_S = float(os.environ.get("EDGEOPS_PROMOTION_LOCK_TIMEOUT", "120"))
MAX_REASON = 500


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


def lock_path(tracking_uri: str) -> Path:
    """A lock file every promoter of this registry on this machine agrees on."""
    override = os.environ.get("EDGEOPS_PROMOTION_LOCK")
    if override:
        return Path(override)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///") :].split("?")[0])
        return db.resolve().with_name(db.name + ".promote.lock")
    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "edgeops-locks" / f"promote-{digest}.lock"


@contextlib.contextmanager
def promotion_lock(tracking_uri: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    path = lock_path(tracking_uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EdgeopsError(
                        f"another promotion holds {path} for over {timeout:g}s: "
                        "wait for it, or remove a stale lock"
                    ) from None
                time.sleep(0.05)
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def who() -> str:
    user = os.environ.get("EDGEOPS_USER") or os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _is_missing(e: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(e, "error_code", "")) or "not found" in str(e).lower()


def _get_version(client: MlflowClient, name: str, version: str) -> ModelVersion:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as e:
        if _is_missing(e):
            raise EdgeopsError(
                f"registered model '{name}' has no version {version}: see `edgeops models show {name}`"
            ) from None
        raise  # unreachable / refused: registry_errors() words it


def _get_model(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as e:
        if _is_missing(e):
            raise EdgeopsError(
                f"no registered model '{name}' in the registry: run the pipeline (`edgeops run`) or see "
                "`edgeops models list`"
            ) from None
        raise


# --------------------------------------------------------------------------- gates


def _tag_float(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key])
    except (KeyError, TypeError, ValueError):
        return None


def measured_from_tags(tags: dict[str, str]) -> Measured:
    """What a registered version's tags say about it, for the gates `select` used too."""
    drop = _tag_float(tags, "score_drop")
    score, fp32 = _tag_float(tags, "score"), _tag_float(tags, "fp32_score")
    if drop is None and score is not None and fp32 is not None:
        drop = fp32 - score
    return Measured(
        tags.get("metric", "score"),
        score,
        drop,
        _tag_float(tags, "latency_ms_p50"),
        _tag_float(tags, "size_mb"),
    )


def version_gates(tags: dict[str, str], gates: GatesConfig) -> list[GateResult]:
    return check_gates(measured_from_tags(tags), gates)


# --------------------------------------------------------------------------- history


def history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """Model-level promotion events, oldest first."""
    model = _get_model(client, name)
    events = []
    for key, value in (model.tags or {}).items():
        if key.startswith(HISTORY_PREFIX):
            with contextlib.suppress(ValueError):
                events.append(json.loads(value))
    return sorted(events, key=lambda e: int(e.get("seq", 0)))


def _stack(events: list[dict[str, Any]], stage: str) -> list[str]:
    """Replay the stage's events: promotions push, rollbacks pop back to the version they restored."""
    stack: list[str] = []
    for e in events:
        if e.get("to") != stage:
            continue
        version = str(e["version"])
        if e.get("action") == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
        elif not stack or stack[-1] != version:
            stack.append(version)
    return stack


def rollback_target(events: list[dict[str, Any]], stage: str, current: str | None) -> str | None:
    stack = _stack(events, stage)
    while stack and stack[-1] == current:
        stack.pop()
    return stack[-1] if stack else None


# --------------------------------------------------------------------------- listing


def _aliases_by_version(model: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        out.setdefault(str(version), []).append(alias)
    return {v: sorted(a) for v, a in out.items()}


def _row(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    tags = dict(mv.tags or {})
    count = int(tags.get("promotion.count", "0") or 0)
    last = None
    if count:
        p = f"promotion.{count}."
        last = (
            f"{tags.get(p + 'action', 'promote')} → {tags.get(p + 'to')} {tags.get(p + 'when', '')}".strip()
        )
    return {
        "name": mv.name,
        "version": str(mv.version),
        "aliases": aliases,
        "stage": mv.current_stage,
        "variant": tags.get("variant"),
        "precision": tags.get("precision"),
        "task": tags.get("task"),
        "metric": tags.get("metric"),
        "score": _tag_float(tags, "score"),
        "score_drop": _tag_float(tags, "score_drop"),
        "latency_ms_p50": _tag_float(tags, "latency_ms_p50"),
        "size_mb": _tag_float(tags, "size_mb"),
        "dataset_fingerprint": tags.get("dataset_fingerprint"),
        "git_commit": tags.get("git_commit"),
        "run_id": mv.run_id,
        "created": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(
            timespec="seconds"
        )
        if mv.creation_timestamp
        else None,
        "promotions": count,
        "last_promotion": last,
    }


def _search_versions(client: MlflowClient, name: str | None) -> list[ModelVersion]:
    flt = f"name = '{name}'" if name else None
    out: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(flt, max_results=1000, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def list_versions(client: MlflowClient, name: str | None = None) -> list[dict[str, Any]]:
    """One row per version (of one model or all), newest first within a model."""
    models = [_get_model(client, name)] if name else list(client.search_registered_models(max_results=1000))
    rows: list[dict[str, Any]] = []
    for model in models:
        aliases = _aliases_by_version(model)
        versions = _search_versions(client, model.name)
        for mv in sorted(versions, key=lambda m: -int(m.version)):
            rows.append(_row(mv, aliases.get(str(mv.version), [])))
    return rows


def version_promotions(tags: dict[str, str]) -> list[dict[str, Any]]:
    count = int(tags.get("promotion.count", "0") or 0)
    out = []
    for n in range(1, count + 1):
        p = f"promotion.{n}."
        entry: dict[str, Any] = {"n": n}
        for key in ("action", "from", "to", "replaces", "when", "who", "reason", "forced", "gates"):
            if p + key in tags:
                entry[key] = tags[p + key]
        if "gates" in entry:
            with contextlib.suppress(ValueError):
                entry["gates"] = json.loads(entry["gates"])
        out.append(entry)
    return out


def show_version(client: MlflowClient, name: str, version: str) -> dict[str, Any]:
    model = _get_model(client, name)
    mv = _get_version(client, name, version)
    info = _row(mv, _aliases_by_version(model).get(str(mv.version), []))
    tags = dict(mv.tags or {})
    info["source"] = mv.source
    info["tags"] = {k: v for k, v in sorted(tags.items()) if not k.startswith("promotion.")}
    info["promotion_history"] = version_promotions(tags)
    return info


# --------------------------------------------------------------------------- promote / rollback


@dataclass
class PromotionResult:
    name: str
    version: str
    to: str
    action: str
    replaces: str | None
    forced: bool
    gates: list[GateResult] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    changed: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """MLflow draws a tqdm bar per download; promotion output should stay a few lines."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _download_model(client: MlflowClient, name: str, version: str, tracking_uri: str, dest: Path) -> Path:
    import mlflow.artifacts

    try:
        # resolve through *this* client: `models:/` URIs would consult the process-wide default registry
        source = client.get_model_version_download_uri(name, version)
        with _quiet_progress():
            path = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(dest), tracking_uri=tracking_uri
            )
    except Exception as e:
        raise EdgeopsError(f"cannot download the files of {name} v{version} from the registry: {e}") from None
    folder = Path(path)
    if not (folder / "model.xml").is_file() and (folder / "model").is_dir():
        folder = folder / "model"
    if not (folder / "model.xml").is_file():
        raise EdgeopsError(
            f"{name} v{version} has no model.xml in its source: it was not registered by edgeops"
        )
    return folder


@dataclass
class PointerUndo:
    """How to put a target's channel pointer back if the promotion does not complete."""

    store: Store
    key: str
    old: bytes | None  # the pointer before this promotion (None: there was none)


def _read_old_pointer(store: Store, key: str) -> bytes | None:
    from edgeops.edge.targets import KeyMissing

    try:
        return store.get_bytes(key)
    except KeyMissing:
        return None


def undo_pointers(undo: list[PointerUndo]) -> str:
    """Put back every pointer this promotion moved; says what it did (or could not do) in a few words."""
    from edgeops.edge.targets import TargetError

    restored, failed = [], []
    for u in reversed(undo):
        try:
            info = u.store.head(u.key)
            if u.old is None:
                u.store.delete(u.key)
            elif info is not None:
                u.store.put_bytes(u.key, u.old, if_match=info.etag)  # not if someone moved it meanwhile
            restored.append(u.store.uri)
        except TargetError:
            failed.append(u.store.uri)
    text = f"pointer put back on {', '.join(restored)}" if restored else ""
    if failed:
        text += ("; " if text else "") + f"could NOT put back the pointer on {', '.join(failed)}: re-run"
    return text


def publish_to_targets(
    client: MlflowClient,
    tracking_uri: str,
    name: str,
    version: str,
    stage: str,
    targets: list[Target],
    undo: list[PointerUndo] | None = None,
) -> list[str]:
    """Publish to every target of the stage; the first failure stops and puts back the pointers
    already moved on the earlier targets, so no target is ahead of the (unchanged) registry.
    `undo` collects how to put back each moved pointer, for a registry failure after this."""
    if not targets:
        return []
    from edgeops.edge.publish import pointer_key, publish
    from edgeops.edge.targets import open_target

    done: list[str] = []
    moved: list[PointerUndo] = [] if undo is None else undo
    with tempfile.TemporaryDirectory(prefix="edgeops-promote-") as tmp:
        folder = _download_model(client, name, version, tracking_uri, Path(tmp))
        for target in targets:
            store = open_target(target.uri, target.endpoint_url, target.region)
            key = pointer_key(name, stage)
            try:
                try:
                    old = _read_old_pointer(store, key)
                except EdgeopsError as e:
                    raise EdgeopsError(
                        f"publishing {name} v{version} to {store.uri} failed: {e}; "
                        "the channel pointer was not changed"
                    ) from None
                report = publish(folder, store, name, version, stage)
            except EdgeopsError as e:
                put_back = undo_pointers(moved)
                moved.clear()
                ok = f" ({put_back})" if put_back else ""
                raise EdgeopsError(f"{e}; registry not changed{ok}: fix the target and re-run") from None
            if report.pointer_written:
                moved.append(PointerUndo(store, key, old))
            done.append(report.summary())
    return done


def _set_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    with warnings.catch_warnings():  # stages are deprecated in MLflow 3 but still drive the UI column
        warnings.simplefilter("ignore")
        client.transition_model_version_stage(
            name, version, stage.capitalize(), archive_existing_versions=True
        )


def _record_version(
    client: MlflowClient, name: str, mv: ModelVersion, result: PromotionResult, reason: str, actor: str
) -> dict[str, Any]:
    """The version's own audit tags; returns the model-level event to write once the alias moved."""
    tags = dict(mv.tags or {})
    n = int(tags.get("promotion.count", "0") or 0) + 1
    before = [a for a, v in (_get_model(client, name).aliases or {}).items() if str(v) == str(mv.version)]
    when = _now()
    gates = [asdict(g) for g in result.gates]
    values = {
        "action": result.action,
        "from": ",".join(sorted(before)) or str(mv.current_stage or "None"),
        "to": result.to,
        "replaces": result.replaces or "none",
        "when": when,
        "who": actor,
        "reason": reason,
        "forced": str(result.forced).lower(),
        "gates": json.dumps(gates, separators=(",", ":")),
    }
    for key, value in values.items():
        client.set_model_version_tag(name, mv.version, f"promotion.{n}.{key}", value)
    client.set_model_version_tag(name, mv.version, "promotion.count", str(n))
    return {
        "action": result.action,
        "version": result.version,
        "to": result.to,
        "replaces": result.replaces,
        "when": when,
        "who": actor,
        "reason": reason,
        "forced": result.forced,
        "gates": {g["gate"]: g["ok"] for g in gates},
    }


def _record_event(client: MlflowClient, name: str, event: dict[str, Any]) -> None:
    """The model-level history event: what `models history` shows and `--rollback` replays."""
    seq = len(history(client, name)) + 1
    client.set_registered_model_tag(
        name, f"{HISTORY_PREFIX}{seq:06d}", json.dumps({"seq": seq, **event}, separators=(",", ":"))
    )


def _apply(
    client: MlflowClient,
    params: Params,
    name: str,
    mv: ModelVersion,
    result: PromotionResult,
    reason: str,
    actor: str,
    publish: bool,
) -> PromotionResult:
    stage = result.to
    undo: list[PointerUndo] = []
    if publish:
        result.published = publish_to_targets(
            client,
            params.mlflow.tracking_uri,
            name,
            result.version,
            stage,
            getattr(params.targets, stage),
            undo,
        )
    if not result.changed:
        return result
    alias_moved = False
    try:
        event = _record_version(client, name, mv, result, reason, actor)  # a trace even if we crash
        client.set_registered_model_alias(name, stage, result.version)
        alias_moved = True
        _set_stage(client, name, result.version, stage)
        _record_event(client, name, event)  # last: history/--rollback only replay completed promotions
    except Exception as e:  # registry down / restarting after the targets moved
        message = registry_failure(params.mlflow.tracking_uri, e)
        if alias_moved:  # the registry names the new version, like the targets: keep them
            if message is None and not isinstance(e, EdgeopsError):
                raise
            raise EdgeopsError(
                f"{message or e}; @{stage} of '{name}' already names v{result.version} and the targets "
                "agree, but its stage or history event was not written: re-run the promotion with "
                "--force once the registry is back"
            ) from None
        if message is None and not isinstance(e, EdgeopsError):
            undo_pointers(undo)
            raise
        put_back = undo_pointers(undo)
        raise EdgeopsError(
            f"{message or e}; promotion of v{result.version} to {stage} not completed"
            + (f" ({put_back})" if put_back else "")
            + ": re-run it once the registry is back"
        ) from None
    now = _get_model(client, name).aliases.get(stage)
    if str(now) != result.version:  # someone without the lock moved it: say so, don't pretend
        raise EdgeopsError(
            f"@{stage} of '{name}' is v{now} right after setting v{result.version}: a concurrent change "
            "outside edgeops; check `edgeops models history` and re-run"
        )
    return result


def _check_stage(stage: str) -> str:
    stage = stage.lower()
    if stage not in STAGES:
        raise EdgeopsError(f"unknown stage '{stage}': use staging or production")
    return stage


def promote(
    params: Params,
    name: str,
    version: str | int,
    to: str,
    *,
    reason: str = "",
    force: bool = False,
    actor: str | None = None,
    client: MlflowClient | None = None,
    publish: bool = True,
) -> PromotionResult:
    """Check gates, publish to the stage's targets, move the alias + stage, write the audit trail."""
    stage, version = _check_stage(to), str(version)
    client = client or make_client(params.mlflow.tracking_uri)
    actor = actor or who()
    reason = (reason or "").strip()[:MAX_REASON]
    with promotion_lock(params.mlflow.tracking_uri), registry_errors(params.mlflow.tracking_uri):
        model = _get_model(client, name)
        mv = _get_version(client, name, version)
        gates = version_gates(dict(mv.tags or {}), params.gates)
        failed = [g for g in gates if not g.ok]
        if failed and not force:
            raise EdgeopsError(
                f"refusing to promote {name} v{version} to {stage}: "
                + "; ".join(f"{g.gate}: {g.detail}" for g in failed)
                + " (fix the model or the gates in params.yaml, or pass --force; forcing is recorded)"
            )
        current = model.aliases.get(stage)
        current = str(current) if current is not None else None
        result = PromotionResult(
            name,
            version,
            stage,
            "promote",
            current,
            force and bool(failed),
            gates,
            changed=current != version or force,
        )
        return _apply(client, params, name, mv, result, reason, actor, publish)


def rollback(
    params: Params,
    name: str,
    stage: str,
    *,
    reason: str = "",
    actor: str | None = None,
    client: MlflowClient | None = None,
    publish: bool = True,
) -> PromotionResult:
    """Put back the version that held `stage` before the current one (no gates: it passed them then)."""
    stage = _check_stage(stage)
    client = client or make_client(params.mlflow.tracking_uri)
    actor = actor or who()
    with promotion_lock(params.mlflow.tracking_uri), registry_errors(params.mlflow.tracking_uri):
        model = _get_model(client, name)
        current = model.aliases.get(stage)
        current = str(current) if current is not None else None
        target = rollback_target(history(client, name), stage, current)
        if target is None:
            raise EdgeopsError(
                f"'{name}' has no earlier {stage} version to roll back to (now: "
                f"{'v' + current if current else 'none'}); see `edgeops models history {name}`"
            )
        mv = _get_version(client, name, target)
        result = PromotionResult(name, target, stage, "rollback", current, False, [])
        text = (reason or f"rollback of v{current}").strip()[:MAX_REASON]
        return _apply(client, params, name, mv, result, text, actor, publish)
