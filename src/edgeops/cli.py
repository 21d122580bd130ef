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


def set_data_path(params_file: Path, data: Path) -> None:
    """Write data.path into params.yaml, keeping its comments, so `dvc repro` sees the same input."""
    from ruamel.yaml import YAML

    from edgeops.config import load_params

    load_params(params_file)  # refuse to edit a file that is already invalid
    if not data.is_dir():
        raise EdgeopsError(f"--data {data} is not a folder: pass an ImageFolder (one sub-folder per class)")
    yaml = YAML()
    yaml.preserve_quotes = True
    doc = yaml.load(params_file.read_text())
    doc.setdefault("data", {})["path"] = str(data)
    with open(params_file, "w") as f:
        yaml.dump(doc, f)


def summary_table(root: Path = Path(".")) -> str:
    from edgeops.config import load_params
    from edgeops.paths import REGISTRATION, REPORT, SELECTION, variant_metrics
    from edgeops.report import speedup

    params = load_params(root / "params.yaml")
    results = {}
    for v in params.compress.variants.enabled():
        path = root / variant_metrics(v)
        if path.exists():
            results[v] = json.loads(path.read_text())
    if not results:
        raise EdgeopsError("no results yet: run `edgeops run` (or `dvc repro`) first")
    selection = json.loads((root / SELECTION).read_text()) if (root / SELECTION).exists() else {}
    chosen = selection.get("selected")
    head = f"{'variant':<12}{'precision':<10}{'accuracy':>9}{'p50 f32':>10}{'p50 dflt':>10}{'size MB':>9}{'speed-up':>9}"
    lines = [head, "-" * len(head)]
    for v, r in results.items():
        if r.get("status") != "ok":
            lines.append(f"{v:<12}FAILED: {r.get('error', '')[:60]}")
            continue
        mark = " *" if v == chosen else ""
        lines.append(
            f"{v:<12}{r['precision']:<10}{r['accuracy']:>9.4f}{r['benchmark']['f32']['latency_ms_p50']:>8.3f}ms"
            f"{r['benchmark']['default']['latency_ms_p50']:>8.3f}ms{r['size_mb']:>9.3f}"
            f"{speedup(results, v) or 0:>8.2f}x{mark}"
        )
    hw: dict = next((r["hardware"] for r in results.values() if "hardware" in r), {})
    lines.append(
        f"* selected. p50 = batch-1 latency; 'f32' forces INFERENCE_PRECISION_HINT=f32, 'dflt' is the runtime "
        f"default; speed-up = fp32@f32 / variant@dflt. CPU: {hw.get('cpu', '?')} ({', '.join(hw.get('isa', []))})"
    )
    registration = root / REGISTRATION
    if registration.exists():
        reg = json.loads(registration.read_text())
        lines.append(f"registered: {reg['model_name']} version {reg['version']} ({reg['variant']})")
    lines += [
        f"models:   {root / 'models'}/<variant>/ and models/selected/ (model.xml, model.bin, model.json)",
        f"report:   {root / REPORT}   plots: `dvc plots show`   MLflow UI: `make ui`",
    ]
    return "\n".join(lines)


@app.command()
def run(
    data: Path | None = typer.Option(
        None, help="ImageFolder to train on (written to data.path in params.yaml)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="the pipeline parameters"),
) -> None:
    """Run the whole pipeline (the DVC stages, driven by a Prefect flow) and print the results."""

    def main() -> None:
        from edgeops.config import load_params
        from edgeops.data.imagefolder import scan_image_folder
        from edgeops.paths import DEMO_DATA
        from edgeops.prefect_local import TemporaryServer, embedded_defaults

        config = load_params(params)
        data_path = data if data is not None else Path(config.data.path)
        if data_path != DEMO_DATA:  # the demo stage makes the demo data
            # DVC hashes the folder before prepare runs: fail on a broken layout now, in our words
            scan_image_folder(data_path)
        if not (Path("dvc.yaml").is_file() and Path("flows/pipeline.py").is_file()):
            raise EdgeopsError(
                f"{Path.cwd()} is not an edgeops project (no dvc.yaml and flows/): cd into your edgeops clone"
            )
        if data is not None:
            set_data_path(params, data)
            typer.echo(f"params.yaml: data.path = {data}")
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
        from edgeops import registry
        from edgeops.config import load_params
        from edgeops.prefect_local import TemporaryServer, embedded_defaults

        config = load_params(params)
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
def summary() -> None:
    """Print the results table of the last pipeline run."""
    run_main(lambda: typer.echo(summary_table()))


@app.command("validate-data")
def validate_data(
    path: Path = typer.Argument(..., help="ImageFolder to check"),
    params: Path = typer.Option(
        Path("params.yaml"), help="pipeline parameters (split, sizes); defaults if absent"
    ),
    image_size: int | None = typer.Option(
        None, help="decode and resize to this size (default: data.image_size)"
    ),
) -> None:
    """Check a dataset the way the prepare stage will (layout, class sizes, every image), without running it."""

    def main() -> None:
        from edgeops.config import Params, load_params
        from edgeops.data.imagefolder import load_images, scan_image_folder
        from edgeops.data.split import stratified_split

        config = load_params(params) if params.exists() else Params()
        folder = scan_image_folder(path)
        stratified_split(folder, config.data.split, config.seed, config.data.min_images_per_class)
        load_images(folder, folder.samples, image_size or config.data.image_size)
        counts: dict[str, int] = {}
        for s in folder.samples:
            counts[folder.classes[s.label]] = counts.get(folder.classes[s.label], 0) + 1
        if folder.ignored:
            typer.echo(f"ignored: {'; '.join(folder.ignored)}")
        typer.echo(f"ok: {len(folder.samples)} images, {len(folder.classes)} classes: {counts}")

    run_main(main)


@app.command()
def predict(
    images: list[Path] = typer.Argument(..., help="image files"),
    model: Path = typer.Option(
        Path("models/selected"), help="model folder (model.xml, model.bin, model.json)"
    ),
    top_k: int = typer.Option(3, min=1, help="how many labels to print per image"),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines"),
) -> None:
    """Classify images with an exported model, through the OpenVINO runtime."""

    def main() -> None:
        import numpy as np

        from edgeops.data.imagefolder import load_rgb
        from edgeops.runtime import compile_model, read_model_json, softmax

        contract = read_model_json(model)
        labels = contract["labels"]
        _, height, width, _ = contract["input"]["shape"]
        compiled = compile_model(model)
        for path in images:
            if not path.is_file():
                raise EdgeopsError(f"{path} is not a file")
            try:
                pixels = load_rgb(path, (width, height))
            except Exception as e:
                raise EdgeopsError(f"{path} is not a readable image: {e}") from None
            scores = softmax(np.asarray(compiled([pixels[None]])[compiled.output(0)]).reshape(-1))
            best = np.argsort(-scores)[:top_k]
            if as_json:
                typer.echo(
                    json.dumps({"image": str(path), "top": [[labels[i], float(scores[i])] for i in best]})
                )
            else:
                typer.echo(f"{path}: " + ", ".join(f"{labels[i]} {scores[i]:.3f}" for i in best))

    run_main(main)


@app.command()
def serve(
    cron: str = typer.Option(..., help='cron schedule, e.g. "0 3 * * *" (nightly at 03:00)'),
    name: str = typer.Option("edgeops-nightly", help="deployment name"),
) -> None:
    """Serve the pipeline as a Prefect deployment that runs on a cron schedule (blocks; Ctrl-C stops)."""

    def main() -> None:
        from edgeops.prefect_local import embedded_defaults

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


def _mount_optional_apps() -> None:
    """Registry and edge commands live in their own modules (the edge agent installs without torch)."""
    try:
        from edgeops.cli_models import models_app, promote_command

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
