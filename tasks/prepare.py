"""Stage `prepare`: validate the ImageFolder, split it, decode it into arrays."""

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.data.prepare import prepare_dataset
from edgeops.paths import PREPARED


def main() -> None:
    params = load_params()
    prepare_dataset(params.data, params.seed, PREPARED, log)


if __name__ == "__main__":
    run_main(main, fast_exit=True)
