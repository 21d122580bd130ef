"""Stage `prepare`: validate the dataset with its task's reader, split it, decode it into arrays; the
dataset (fingerprint, source, split sizes) becomes the input of the pipeline's MLflow run."""

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.paths import PREPARED
from edgeops.pipeline import plan
from edgeops.pipeline.prepare import prepare_dataset, read_manifest
from edgeops.registry import live


def main() -> None:
    params = load_params()
    plan.current(params)  # DVC expanded the candidates' stages from it: it must be up to date
    prepare_dataset(params, PREPARED, log)
    live.log_dataset(live.open_pipeline_run(params), read_manifest(PREPARED), params.data.path)


if __name__ == "__main__":
    run_main(main, fast_exit=True)
