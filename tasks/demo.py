"""Stage `demo`: write the built-in demo dataset (scikit-learn digits) as an ImageFolder."""

from edgeops.console import log, run_main
from edgeops.data.demo import make_demo_dataset
from edgeops.paths import DEMO_DATA


def main() -> None:
    out = make_demo_dataset(DEMO_DATA)
    log(f"demo: wrote {sum(1 for _ in out.rglob('*.*'))} images to {out}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
