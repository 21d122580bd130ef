"""`edgeops models list|show|history` and `edgeops promote` (registered by edgeops.cli)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from edgeops.config import PARAMS_FILE, Params, load_params
from edgeops.console import run_main

models_app = typer.Typer(
    help="Registered model versions: metrics, lineage, aliases, promotion history.", no_args_is_help=True
)

T = TypeVar("T")
ParamsOpt = Annotated[Path, typer.Option("--params", help="params.yaml (tracking URI, gates, targets)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _params(path: Path) -> Params:
    """Params with paths made absolute against the project (the folder of params.yaml).

    Like the pipeline's registry.connect: MLFLOW_TRACKING_URI overrides the file, and relative
    `sqlite:///x.db` and `file://dir` targets mean inside the project, whatever the current directory.
    The default params.yaml may be absent (e.g. browsing a registry): then defaults apply.
    """
    params = Params() if not path.exists() and str(path) == PARAMS_FILE else load_params(path)
    return resolve_paths(params, path.resolve().parent)


def resolve_paths(params: Params, root: Path) -> Params:
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.mlflow.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str((root / uri.removeprefix("sqlite:///")).resolve())
    targets = params.targets.model_copy(deep=True)
    for stage in (targets.staging, targets.production):
        for i, target in enumerate(stage):
            rel = target.uri.removeprefix("file://")
            if target.uri.startswith("file://") and rel and not rel.startswith(("/", "~")):
                stage[i] = target.model_copy(update={"uri": "file://" + str((root / rel).resolve())})
    mlflow = params.mlflow.model_copy(update={"tracking_uri": uri})
    return params.model_copy(update={"mlflow": mlflow, "targets": targets})


def _client(params: Params) -> Any:
    from edgeops.registry.client import make_client

    return make_client(params.mlflow.tracking_uri)


def _registry(params: Params, fn: Callable[[], T]) -> T:
    """Run a registry call: user errors and an unreachable registry print one line, exit 2."""
    from edgeops.registry.client import registry_errors

    def call() -> T:
        with registry_errors(params.mlflow.tracking_uri):
            return fn()

    return run_main(call)


def _fmt(value: Any) -> str:
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """Plain aligned text table; `columns` = (key, header)."""
    cells = [[_fmt(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.upper().ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


VERSION_COLUMNS = [
    ("name", "name"),
    ("version", "ver"),
    ("aliases", "aliases"),
    ("stage", "stage"),
    ("variant", "variant"),
    ("precision", "precision"),
    ("metric", "metric"),
    ("score", "score"),
    ("score_drop", "drop"),
    ("latency_ms_p50", "p50 ms"),
    ("size_mb", "MB"),
    ("dataset_fingerprint", "dataset"),
    ("run_id", "run"),
    ("last_promotion", "last promotion"),
]
HISTORY_COLUMNS = [
    ("seq", "#"),
    ("when", "when"),
    ("action", "action"),
    ("version", "ver"),
    ("to", "to"),
    ("replaces", "replaces"),
    ("who", "who"),
    ("forced", "forced"),
    ("gates_text", "gates"),
    ("reason", "reason"),
]


def _short(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        r = dict(r)
        for key in ("dataset_fingerprint", "run_id"):
            if r.get(key):
                r[key] = str(r[key])[:12]
        out.append(r)
    return out


@models_app.command("list")
def list_cmd(params: ParamsOpt = Path(PARAMS_FILE), as_json: JsonOpt = False) -> None:
    """All registered versions with metrics, precision, dataset, source run and aliases."""
    from edgeops.registry.queries import list_versions

    p = run_main(lambda: _params(params))
    rows = _registry(p, lambda: list_versions(_client(p)))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    elif not rows:
        typer.echo(f"no registered models in {p.mlflow.tracking_uri}")
    else:
        typer.echo(table(_short(rows), VERSION_COLUMNS))


@models_app.command("show")
def show_cmd(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[int | None, typer.Option(help="one version in detail")] = None,
    params: ParamsOpt = Path(PARAMS_FILE),
    as_json: JsonOpt = False,
) -> None:
    """A model's versions, or one version with all tags and its promotion history."""
    from edgeops.registry.queries import list_versions, show_version

    p = run_main(lambda: _params(params))
    client = _registry(p, lambda: _client(p))
    if version is None:
        rows = _registry(p, lambda: list_versions(client, name))
        typer.echo(json.dumps(rows, indent=2) if as_json else table(_short(rows), VERSION_COLUMNS))
        return
    info = _registry(p, lambda: show_version(client, name, str(version)))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in (
        "name",
        "version",
        "aliases",
        "stage",
        "variant",
        "precision",
        "task",
        "metric",
        "score",
        "score_drop",
        "latency_ms_p50",
        "size_mb",
        "dataset_fingerprint",
        "git_commit",
        "run_id",
        "source",
        "created",
    ):
        typer.echo(f"{key:<20} {_fmt(info.get(key))}")
    promos = info["promotion_history"]
    typer.echo(f"\npromotions ({len(promos)}):")
    for e in promos:
        gates = e.get("gates")
        gate_text = (
            ", ".join(f"{g['gate']}={'ok' if g['ok'] else 'FAIL'}" for g in gates)
            if isinstance(gates, list)
            else "-"
        )
        typer.echo(
            f"  {e['n']}. {e.get('when')} {e.get('action')} {e.get('from')} → {e.get('to')} "
            f"by {e.get('who')} forced={e.get('forced')} gates[{gate_text or 'none'}] "
            f"reason={e.get('reason') or '-'}"
        )


@models_app.command("history")
def history_cmd(
    name: Annotated[str, typer.Argument(help="registered model name")],
    params: ParamsOpt = Path(PARAMS_FILE),
    as_json: JsonOpt = False,
) -> None:
    """Every promotion and rollback of a model, oldest first."""
    from edgeops.registry.audit import history

    p = run_main(lambda: _params(params))
    events = _registry(p, lambda: history(_client(p), name))
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    if not events:
        typer.echo(f"'{name}' has never been promoted")
        return
    rows = []
    for e in events:
        gates = e.get("gates") or {}
        rows.append({**e, "gates_text": ",".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in gates.items())})
    typer.echo(table(rows, HISTORY_COLUMNS))


def promote_command(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[int | None, typer.Option(help="version to promote")] = None,
    to: Annotated[str | None, typer.Option(help="staging or production")] = None,
    reason: Annotated[str, typer.Option(help="why (recorded in the audit trail)")] = "",
    force: Annotated[bool, typer.Option(help="promote despite failing gates (recorded as forced)")] = False,
    rollback: Annotated[str | None, typer.Option(help="put back the previous version of STAGE")] = None,
    params: ParamsOpt = Path(PARAMS_FILE),
    no_publish: Annotated[
        bool, typer.Option("--no-publish", help="registry only; skip edge targets")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Promote a registered version to staging/production (gates, alias, stage, audit, edge targets)."""
    from edgeops.registry.promotion import promote
    from edgeops.registry.promotion import rollback as do_rollback

    p = run_main(lambda: _params(params))
    if rollback is not None:
        if version is not None or to is not None:
            typer.echo("--rollback STAGE takes no --version/--to: it restores the previous version", err=True)
            raise typer.Exit(2)
        stage = rollback
        result = _registry(p, lambda: do_rollback(p, name, stage, reason=reason, publish=not no_publish))
    else:
        if version is None or to is None:
            typer.echo("pass --version N --to staging|production (or --rollback STAGE)", err=True)
            raise typer.Exit(2)
        v, target = version, to
        result = _registry(
            p, lambda: promote(p, name, v, target, reason=reason, force=force, publish=not no_publish)
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    for g in result.gates:
        typer.echo(f"  gate {g.gate:<18} {'ok  ' if g.ok else 'FAIL'} {g.detail}")
    for line in result.published:
        typer.echo(f"  published {line}")
    if not result.changed:
        typer.echo(f"{name} v{result.version} is already @{result.to}; targets checked")
        return
    verb = "rolled back" if result.action == "rollback" else "promoted"
    was = f" (was v{result.replaces})" if result.replaces else ""
    forced = " [FORCED past failing gates]" if result.forced else ""
    typer.echo(f"{verb} {name} v{result.version} → @{result.to}{was}{forced}")
