"""`edgeops`: the one command users type."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from edgeops.console import run_main
from edgeops.errors import EdgeopsError

app = typer.Typer(
    help="From your image folder to a fast INT8 OpenVINO model on the edge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def set_params(params_file: Path, updates: dict[str, dict[str, str] | str]) -> None:
    """Write keys into params.yaml, keeping its comments, so `dvc repro` sees the same input."""
    from ruamel.yaml import YAML

    from edgeops.config import load_params

    load_params(params_file)  # refuse to edit a file that is already invalid
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(params_file.read_text())
    for key, value in updates.items():
        if isinstance(value, dict):
            section = doc.setdefault(key, {})
            for sub, sub_value in value.items():
                section[sub] = sub_value
        else:
            doc[key] = value
    with open(params_file, "w") as f:
        yaml.dump(doc, f)
    load_params(params_file)


def choose_task(data: Path, task: str | None) -> tuple[str, str]:
    """(task, why) for a dataset folder: --task wins, else the layout decides."""
    from edgeops.paths import DEMO_DATASETS
    from edgeops.vision import detect_task, get_task

    if task is not None:
        name = get_task(task).name
        if data in DEMO_DATASETS:  # the demo stage writes them
            return name, "--task, built-in demo data"
    if not data.is_dir():
        raise EdgeopsError(f"--data {data} is not a folder (or does not exist): pass your dataset's folder")
    if task is not None:
        return name, "--task"
    name, layout = detect_task(data)
    return name, f"the layout: {layout}"


def print_ui_url(port: int = 5000, root: Path = Path(".")) -> None:
    """For `make ui`: the URL of the last pipeline's experiment, on its training runs."""
    from edgeops.paths import REGISTRATION
    from edgeops.registry.tracking import ui_url

    registration = root / REGISTRATION
    if registration.exists():
        experiment = json.loads(registration.read_text()).get("experiment_id")
        print(f"  the pipeline runs: {ui_url(experiment, f'http://127.0.0.1:{port}')}")


def summary_table(root: Path = Path(".")) -> str:
    from edgeops.config import load_params
    from edgeops.paths import REGISTRATION, REPORT, SELECTION, variant_id, variant_metrics
    from edgeops.pipeline import plan
    from edgeops.pipeline.report import speedup
    from edgeops.pipeline.selection import reference as reference_of
    from edgeops.registry.tracking import ui_url

    params = load_params(root / "params.yaml")
    results = {}
    for key in plan.read(root):
        for v in params.compress.variants.enabled():
            path = root / variant_metrics(key, v)
            if path.exists():
                results[variant_id(key, v)] = json.loads(path.read_text())
    if not results:
        raise EdgeopsError("no results yet: run `edgeops run` (or `dvc repro`) first")
    selection = json.loads((root / SELECTION).read_text()) if (root / SELECTION).exists() else {}
    chosen = selection.get("selected")
    metric = next((r["metric"] for r in results.values() if "metric" in r), "score")
    width = max(12, *(len(name) + 2 for name in results))
    head = (
        f"{'model/variant':<{width}}{'precision':<10}{metric:>9}{'p50 f32':>10}{'p50 dflt':>10}{'size MB':>9}"
        f"{'speed-up':>9}"
    )
    lines = [head, "-" * len(head)]
    has_reference = any(r.get("variant") == "fp32" and r.get("status") == "ok" for r in results.values())
    ref = reference_of(results) if has_reference else None  # has_reference: some model is ok
    for v, r in results.items():
        if r.get("status") != "ok":
            lines.append(f"{v:<{width}}FAILED: {r.get('error', '')[:60]}")
            continue
        mark = " *" if v == chosen else ""
        lines.append(
            f"{v:<{width}}{r['precision']:<10}{r['score']:>9.4f}{r['benchmark']['f32']['latency_ms_p50']:>8.3f}ms"
            f"{r['benchmark']['default']['latency_ms_p50']:>8.3f}ms{r['size_mb']:>9.3f}"
            f"{(speedup(results, v, ref) if ref else None) or 0:>8.2f}x{mark}"
        )
    hw: dict = next((r["hardware"] for r in results.values() if "hardware" in r), {})
    reference = selection.get("reference", "fp32")
    lines.append(
        f"* selected. p50 = batch-1 latency; 'f32' forces INFERENCE_PRECISION_HINT=f32, 'dflt' is the runtime "
        f"default; speed-up = {reference}@f32 / model@dflt. CPU: {hw.get('cpu', '?')} ({', '.join(hw.get('isa', []))})"
    )
    registration = root / REGISTRATION
    reg = json.loads(registration.read_text()) if registration.exists() else {}
    if reg:
        lines.append(
            f"registered: {reg['model_name']} version {reg['version']} ({reg.get('selected', reg['variant'])})"
        )
    lines += [
        f"models:   {root / 'models'}/<candidate>/<variant>/ and models/selected/ (model.xml, model.bin, model.json)",
        f"report:   {root / REPORT}   plots: `dvc plots show`",
        f"UIs:      `make ui` -> {ui_url(reg.get('experiment_id'))}   `make prefect-ui` -> http://127.0.0.1:4200",
    ]
    return "\n".join(lines)


@app.command()
def run(
    data: Path | None = typer.Option(
        None,
        help="dataset folder to train on (written to data.path in params.yaml); its layout picks the task",
    ),
    task: str | None = typer.Option(
        None, help="classification | segmentation: overrides the task the layout suggests (with --data)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="the pipeline parameters"),
) -> None:
    """Run the whole pipeline (the DVC stages, driven by a Prefect flow) and print the results."""

    def main() -> None:
        from edgeops.config import load_params
        from edgeops.orchestration.prefect_local import TemporaryServer, embedded_defaults
        from edgeops.paths import DEMO_DATASETS
        from edgeops.pipeline.prepare import scan_dataset

        config = load_params(params)
        if not (Path("dvc.yaml").is_file() and Path("flows/pipeline.py").is_file()):
            raise EdgeopsError(
                f"{Path.cwd()} is not an edgeops project (no dvc.yaml and flows/): cd into your edgeops clone"
            )
        if task is not None and data is None:
            raise EdgeopsError("--task needs --data (or set `task` in params.yaml)")
        chosen, why = choose_task(data, task) if data is not None else (config.task, "params.yaml")
        if data is not None:
            config = config.model_copy(
                update={"task": chosen, "data": config.data.model_copy(update={"path": str(data)})}
            )
        if Path(config.data.path) not in DEMO_DATASETS:  # the demo stage makes those
            # DVC hashes the folder before prepare runs: fail on a broken layout now, in our words,
            # and before params.yaml is changed
            scan_dataset(config)
        if data is not None:
            set_params(params, {"task": chosen, "data": {"path": str(data)}})
            typer.echo(f"params.yaml: task = {chosen} (from {why}), data.path = {data}")
        embedded_defaults()
        with TemporaryServer() as prefect_api:  # starts while Prefect is being imported
            where = "a temporary local server" if prefect_api.proc else "PREFECT_API_URL"
            typer.echo(f"run: the dvc.yaml stages as a Prefect flow ({where}: {prefect_api.url})")
            from flows.pipeline import run_pipeline

            timing = run_pipeline(prefect_api)
        typer.echo("")
        typer.echo(summary_table())
        typer.echo(
            f"pipeline: {timing['wall_seconds']:.1f}s wall, stages' own work {timing['work_seconds']:.1f}s, "
            f"overhead (Prefect + DVC + MLflow + process starts) {timing['overhead_fraction']:.0%}"
        )

    run_main(main)


@app.command()
def init(params: Path = typer.Option(Path("params.yaml"), help="the pipeline parameters")) -> None:
    """Create the embedded Prefect and MLflow databases (`make setup` runs this once).

    Creating them takes a few seconds that would otherwise land on the first pipeline run."""

    def main() -> None:
        from edgeops.config import load_params
        from edgeops.orchestration.prefect_local import TemporaryServer, embedded_defaults
        from edgeops.pipeline import plan as candidates
        from edgeops.registry import tracking as registry

        config = load_params(params)
        candidates.write(config, params.parent)  # dvc.yaml expands the candidates' stages from it
        embedded_defaults()
        if not os.environ.get("PREFECT_API_URL"):
            with TemporaryServer() as prefect_api:  # its start-up creates and migrates the database
                prefect_api.wait_ready()
            typer.echo(f"init: Prefect database in {os.environ['PREFECT_HOME']}")
        if (os.environ.get("MLFLOW_TRACKING_URI") or config.mlflow.tracking_uri).startswith("sqlite:"):
            registry.connect(config.mlflow, Path.cwd())
            typer.echo(
                f"init: MLflow store {config.mlflow.tracking_uri}, experiment {config.mlflow.experiment}"
            )

    run_main(main)


@app.command()
def plan(params: Path = typer.Option(Path("params.yaml"), help="the pipeline parameters")) -> None:
    """Write candidates.yaml from params.yaml: the model candidates dvc.yaml expands into stages.

    `edgeops run` does it before DVC starts; run it after editing params.yaml if you use `dvc repro` alone
    (or let `dvc repro` stop once and say so)."""

    def main() -> None:
        from edgeops.config import load_params
        from edgeops.paths import CANDIDATES
        from edgeops.pipeline import plan as candidates

        config = load_params(params)
        changed = candidates.write(config, params.parent)
        names = [entry["name"] for entry in candidates.read(params.parent).values()]
        typer.echo(f"plan: {CANDIDATES} {'updated' if changed else 'up to date'}: {', '.join(names)}")

    run_main(main)


@app.command()
def summary() -> None:
    """Print the results table of the last pipeline run."""
    run_main(lambda: typer.echo(summary_table()))


@app.command("validate-data")
def validate_data(
    path: Path = typer.Argument(..., help="dataset folder to check"),
    task: str | None = typer.Option(None, help="classification | segmentation (default: from the layout)"),
    params: Path = typer.Option(
        Path("params.yaml"), help="pipeline parameters (split, sizes); defaults if absent"
    ),
    image_size: int | None = typer.Option(None, help="decode and resize to this size (default: the task's)"),
) -> None:
    """Check a dataset the way the prepare stage will (layout, pairing, every file), without running it."""

    def main() -> None:
        from edgeops.config import Params, load_params
        from edgeops.images import unreadable_error
        from edgeops.vision import get_task

        name, why = choose_task(path, task)
        config = (load_params(params) if params.exists() else Params()).model_copy(update={"task": name})
        vision_task = get_task(name)
        dataset = vision_task.scan(path, config.data.min_images_per_class)
        fractions = config.data.split.model_dump()
        vision_task.split(dataset, fractions, config.seed, config.data.min_images_per_class)
        indices = list(range(len(dataset.items)))
        from edgeops.pipeline.prepare import model_input_size

        size = image_size or model_input_size(config, vision_task, dataset)
        _, bad = vision_task.decode(dataset, indices, size, False, None)
        if bad:
            raise unreadable_error(bad)
        for note in dataset.notes:
            typer.echo(note)
        if dataset.ignored:
            typer.echo(f"ignored: {'; '.join(dataset.ignored)}")
        typer.echo(
            f"ok: {name} (from {why}), {dataset.layout}: {len(dataset.items)} images, "
            f"{len(dataset.classes)} classes: {', '.join(dataset.classes)}"
        )

    run_main(main)


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="image files"),
    model: Path = typer.Option(
        Path("models/selected"), help="model folder (model.xml, model.bin, model.json)"
    ),
    top_k: int = typer.Option(3, min=1, help="classification: how many labels to print per image"),
    score_threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="detection: drop boxes below this score (default: the model's threshold)"
    ),
    max_boxes: int | None = typer.Option(None, min=1, help="detection: at most this many boxes per image"),
    out: Path | None = typer.Option(
        None,
        help="write the task's pictures here (segmentation: <stem>_mask.png + <stem>_overlay.png; "
        "detection: <stem>_boxes.png)",
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines"),
) -> None:
    """Run an exported model on image files through the OpenVINO runtime and print its answers."""

    def main() -> None:
        from edgeops.edge.inference import EdgeModel
        from edgeops.files import read_model_json
        from edgeops.images import model_input, open_image, to_rgb
        from edgeops.vision import AnswerOptions

        options = AnswerOptions(top_k=top_k, score_threshold=score_threshold, max_boxes=max_boxes)
        read_model_json(model)  # refuses a folder whose files do not match their sha256s
        runner = EdgeModel(model)  # the edge's own inference and answer, so both print the same
        task, width, height = runner.task, runner.width, runner.height
        target = out if out is not None else Path("predictions")
        for path in images:
            if path.is_dir():
                raise EdgeopsError(
                    f"{path} is a folder, not an image file: a model folder goes after --model"
                )
            if not path.is_file():
                raise EdgeopsError(f"{path} does not exist: pass image files")
            try:
                with open_image(path) as img:
                    pixels = model_input(img, (width, height))
                    original = to_rgb(img)
            except Exception as e:
                raise EdgeopsError(f"{path} is not a readable image: {e}") from None
            answer = runner.answer(pixels[None], original.size, options)
            written = task.save_answer(answer, original, target, path.stem)
            if as_json:
                # the task's whole answer, as `edge predict` prints it (no task-specific keys dropped here)
                typer.echo(json.dumps({"image": str(path), **answer, "files": [str(w) for w in written]}))
            else:
                typer.echo(
                    f"{path}: {task.summary_line(answer)}"
                    + (f" -> {', '.join(map(str, written))}" if written else "")
                )

    run_main(main)


@app.command()
def serve(
    cron: str = typer.Option(..., help='cron schedule, e.g. "0 3 * * *" (nightly at 03:00)'),
    name: str = typer.Option("edgeops-nightly", help="deployment name"),
) -> None:
    """Serve the pipeline as a Prefect deployment that runs on a cron schedule (blocks; Ctrl-C stops)."""

    def main() -> None:
        from edgeops.orchestration.prefect_local import embedded_defaults

        embedded_defaults()
        from prefect.client.schemas.schedules import CronSchedule
        from pydantic import ValidationError

        try:
            CronSchedule(cron=cron)
        except ValidationError:
            raise EdgeopsError(f'--cron {cron!r} is not a valid cron expression (e.g. "0 3 * * *")') from None
        from flows.pipeline import pipeline

        typer.echo(f"serving deployment edgeops-pipeline/{name} on cron {cron!r}")
        pipeline.serve(name=name, cron=cron, parameters={"project_dir": str(Path(".").resolve())})

    run_main(main)


@app.command()
def deploy(
    repo: str | None = typer.Option(
        None, help="repository the workers clone (default: git remote origin, else this folder)"
    ),
    commit: str | None = typer.Option(None, help="commit the workers run (default: HEAD)"),
    params: Path = typer.Option(Path("params.yaml"), help="the pipeline parameters (team: section)"),
) -> None:
    """Team mode: register the `pipeline`, `retrain` (cron), `promote` and `candidate` deployments on
    PREFECT_API_URL."""

    def main() -> None:
        from edgeops.config import load_params
        from edgeops.orchestration.deploy import deploy_all, require_server, source_of

        config = load_params(params)
        require_server()
        source = source_of(Path("."), repo, commit, typer.echo)
        deploy_all(config, source, typer.echo)
        typer.echo(
            "run one: `prefect deployment run edgeops-team-pipeline/pipeline` (or the Prefect UI's Deployments)"
        )

    run_main(main)


@app.command()
def sweep(
    point: list[str] = typer.Option(
        ..., "--point", help="one flow run per --point: KEY=VALUE[,KEY=VALUE…] (dotted params.yaml keys)"
    ),
    data: str | None = typer.Option(None, help="dataset path in the repository (default: params.yaml's)"),
    task: str | None = typer.Option(None, help="the task (default: params.yaml's)"),
    model: str | None = typer.Option(None, help="the model (default: params.yaml's)"),
    wait: bool = typer.Option(False, help="wait until every run has finished and print their states"),
) -> None:
    """Team mode: fan a sweep out as `pipeline` flow runs that free workers pick up, one per point;
    all land in the same MLflow experiment."""

    def main() -> None:
        from edgeops.orchestration.deploy import parse_point, submit_sweep, wait_for

        points = [parse_point(p) for p in point]
        chosen = {k: v for k, v in {"data": data, "task": task, "model": model}.items() if v is not None}
        ids = submit_sweep(points, chosen, typer.echo)
        if wait:
            states = wait_for(ids, typer.echo)
            if any(s != "Completed" for s in states.values()):
                raise EdgeopsError("some sweep runs did not complete: see their logs in the Prefect UI")

    run_main(main)


def _mount_optional_apps() -> None:
    """Registry and edge commands live in their own modules (the edge agent installs without torch)."""
    try:
        from edgeops.registry.cli import models_app, promote_command

        app.add_typer(models_app, name="models", help="Registered model versions in MLflow")
        app.command("promote")(promote_command)
    except ImportError:
        pass
    try:
        from edgeops.edge.cli import edge_app

        app.add_typer(edge_app, name="edge", help="The edge agent: sync, verify, serve, roll back")
    except ImportError:
        pass


_mount_optional_apps()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
