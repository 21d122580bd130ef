"""Stage `demo`: write the built-in demo datasets: scikit-learn digits as an image folder
(classification), shapes on textured backgrounds as images/ + masks/ (segmentation) and the same shapes
as boxes in COCO's images/ + annotations.json (detection)."""

from edgeops.console import log, run_main
from edgeops.paths import DEMO_DATA, DEMO_DETECTION_DATA, DEMO_SEGMENTATION_DATA
from edgeops.vision.classification.demo import make_demo_dataset
from edgeops.vision.detection.demo import make_detection_demo
from edgeops.vision.segmentation.demo import make_segmentation_demo


def main() -> None:
    out = make_demo_dataset(DEMO_DATA)
    log(f"demo: wrote {sum(1 for _ in out.rglob('*.*'))} images to {out}")
    out = make_segmentation_demo(DEMO_SEGMENTATION_DATA)
    log(f"demo: wrote {sum(1 for _ in (out / 'images').iterdir())} images + masks to {out}")
    out = make_detection_demo(DEMO_DETECTION_DATA)
    log(f"demo: wrote {sum(1 for _ in (out / 'images').iterdir())} images + COCO boxes to {out}")


if __name__ == "__main__":
    run_main(main, fast_exit=True)
