"""Stage `prepare`: validate the dataset with its task's reader, split it, decode it into arrays."""

from edgeops.config import load_params
from edgeops.console import log, run_main
from edgeops.paths import PREPARED
from edgeops.pipeline.prepare import prepare_dataset


def main() -> None:
    prepare_dataset(load_params(), PREPARED, log)


if __name__ == "__main__":
    run_main(main, fast_exit=True)
