"""bench/run.py, detection part: centernet_det rows, INT8 vs fp32/fp16, pipeline vs bare, verdict (pure logic)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_det", ROOT / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run_det"] = module
    spec.loader.exec_module(module)
    return module


def _det_rows(bench: ModuleType, bare_int8_ms: float = 50.0) -> list[dict]:
    r = bench.make_row
    pipeline = [
        r(bench.DET_MODEL, "fp32", "f32", 90.0, size_mb=9.0),
        r(bench.DET_MODEL, "fp32", "default", 88.0, size_mb=9.0),
        r(bench.DET_MODEL, "fp16", "f32", 92.0, size_mb=4.5),
        r(bench.DET_MODEL, "fp16", "default", 96.0, size_mb=4.5),
        r(bench.DET_MODEL, "ptq", "f32", 61.0, size_mb=2.4),
        r(bench.DET_MODEL, "ptq", "default", 60.0, size_mb=2.4),  # 1.5x vs fp32@f32, 1.6x vs fp16@default
    ]
    bare = {
        "latency_ms_p50": {"fp32@f32": 100.0, "fp32@default": 100.0, "int8@default": bare_int8_ms},
        "size_mb": {"fp32": 9.0, "int8": 2.4},
    }
    return pipeline + bench.bare_rows(bare, bench.DET_BARE_MODEL, "bare_nncf_detection.py")


def test_model_spec_maps_the_detection_names(bench: ModuleType) -> None:
    det = bench.model_spec("centernet_det")
    assert (det.task, det.arch, det.image_size, len(det.labels)) == ("detection", "centernet", 320, 3)
    from edgeops.vision import get_task

    assert det.arch == get_task("detection").defaults.model  # the task's default model, not a copy
    for name in ("ssdlite320", "ssdlite320_raw"):  # whole model with NMS, network only
        ssd = bench.model_spec(name)
        assert (ssd.task, ssd.image_size, len(ssd.labels)) == (bench.SSD_TASK, 320, 91)
    assert "without NMS" in bench.SSD_MODELS["ssdlite320_raw"]
    assert {"centernet_det", "ssdlite320_raw", "unet_seg", "resnet18"} <= set(bench.DEFAULT_MODELS.split(","))
    assert bench.BARE_SCRIPTS["centernet_det"] == ("bare_nncf_detection.py", "centernet_det (bare nncf)")
    assert bench.model_spec("unet_seg").task == "segmentation"  # unchanged


def test_placeholder_targets_have_each_task_shape(bench: ModuleType) -> None:
    det = bench.placeholder_targets("detection", 4, 320)
    assert det.shape == (4, 1, 6) and (det[:, :, 4] == -1).all() and (det[:, :, :4] == 0).all()
    assert bench.placeholder_targets("segmentation", 2, 8).shape == (2, 8, 8)
    assert bench.placeholder_targets("classification", 3, 224).shape == (3,)


def test_speedups_include_int8_vs_fp16(bench: ModuleType) -> None:
    ratios = bench.speedups(_det_rows(bench))
    det = ratios["centernet_det"]
    assert det["int8_vs_fp32_f32"] == pytest.approx(1.5)
    assert det["int8_vs_fp16_f32"] == pytest.approx(92 / 60)
    assert det["int8_vs_fp16_default"] == pytest.approx(1.6)
    assert ratios["centernet_det (bare nncf)"]["int8_vs_fp16_default"] is None  # the bare script has no fp16
    table = bench.format_speedups(ratios)
    assert "INT8 vs fp16@default" in table.splitlines()[0] and "1.60x" in table


def test_detection_summary_ratio_pipeline_over_bare(bench: ModuleType) -> None:
    summary = bench.detection_summary(bench.speedups(_det_rows(bench)))
    assert (summary["model"], summary["image_size"]) == ("centernet_det", 320)
    assert summary["pipeline_int8_vs_f32"] == pytest.approx(1.5)
    assert summary["bare_int8_vs_f32"] == pytest.approx(2.0)
    assert summary["pipeline_over_bare"] == pytest.approx(0.75)
    assert summary["pipeline_int8_vs_fp16_default"] == pytest.approx(1.6)
    assert summary["seed_reference_int8_vs_fp16"] == 3.6
    alone = bench.detection_summary(bench.speedups(_det_rows(bench)[:6]))
    assert alone["bare_int8_vs_f32"] is None and alone["pipeline_over_bare"] is None
    # the segmentation summary is the same function with its own model: unaffected by detection rows
    assert bench.segmentation_summary(bench.speedups(_det_rows(bench)))["pipeline_int8_vs_f32"] is None


def test_targets_for_centernet_det(bench: ModuleType) -> None:
    missed = bench.targets(bench.speedups(_det_rows(bench)), None, ["avx2", "fma"])
    speed = missed["centernet_det_int8_vs_f32"]
    assert speed["target"] is None and speed["met"] is None and speed["measured"] == pytest.approx(1.5)
    assert speed["isa"] == ["avx2", "fma"] and speed["int8_dot_isa"] == []
    vs_bare = missed["centernet_det_pipeline_vs_bare"]
    assert vs_bare["target"] == 0.9 and vs_bare["measured"] == pytest.approx(0.75) and vs_bare["met"] is False
    fp16 = missed["centernet_det_int8_vs_fp16"]
    assert fp16["reference"] == 3.6 and fp16["measured"] == pytest.approx(1.6)
    assert fp16["of_reference"] == pytest.approx(1.6 / 3.6)
    # bare INT8 at 62.5 ms: bare 1.6x, pipeline 1.5x -> 0.9375, met
    met = bench.targets(bench.speedups(_det_rows(bench, bare_int8_ms=62.5)), None, ["avx2"])
    assert met["centernet_det_pipeline_vs_bare"]["met"] is True
    assert met["centernet_det_pipeline_vs_bare"]["measured"] == pytest.approx(1.5 / 1.6)
    absent = bench.targets({}, None)
    assert absent["centernet_det_pipeline_vs_bare"]["met"] is None
    assert absent["centernet_det_int8_vs_fp16"]["measured"] is None
    assert absent["unet_seg_int8_vs_f32"]["target"] == 2.5  # the segmentation targets are unchanged


def test_detection_verdict_explains_where_the_cpu_lands(bench: ModuleType) -> None:
    ratios = bench.speedups(_det_rows(bench))
    lines = bench.detection_verdict(bench.targets(ratios, None, ["avx2"]))
    text = "\n".join(lines)
    assert lines[0] == "centernet_det (320px) INT8 vs fp32@f32: 1.50x"  # no target: no MET / NOT MET
    assert "1.50x / 2.00x = 0.75 (target >= 0.9): NOT MET" in text
    assert "INT8 vs fp16@default: 1.60x, 44% of the seed's reference (3.6x vs FP16 for SSD-300)" in text
    assert "decompressed at load" in text and "compute in f32" in text  # FP16 is f32 compute on CPU
    assert "no VNNI/AMX" in text and "vpdpbusd" in text
    # the detection lines come after the existing ones in the full verdict
    full = bench.verdict(bench.targets(ratios, None, ["avx2"]), ratios)
    assert full[0].startswith("resnet18") and full[-len(lines) :] == lines
    assert bench.detection_verdict(bench.targets({}, None))[0].endswith("not measured in this run")
    no_bare = bench.targets(bench.speedups(_det_rows(bench)[:6]), None, ["avx2"])
    assert any("bare script not run" in line for line in bench.detection_verdict(no_bare))


def test_detection_landing_depends_on_the_isa(bench: ModuleType) -> None:
    without = bench.detection_landing(1.6, 3.6, ["avx2", "fma"])
    assert "no VNNI/AMX" in without and "1.60x vs 3.6x" in without
    with_vnni = bench.detection_landing(3.1, 3.6, ["avx2", "avx512_vnni"])
    assert "present (avx512_vnni)" in with_vnni and "no VNNI/AMX" not in with_vnni
    assert "not recorded" in bench.detection_landing(1.6, 3.6, None)


def test_detection_table(bench: ModuleType) -> None:
    table = bench.format_detection(bench.detection_summary(bench.speedups(_det_rows(bench))))
    header, rule, row = table.splitlines()
    assert header.split()[0] == "detection" and "pipeline/bare" in header and set(rule) <= {"-", " "}
    assert row.split()[:2] == ["centernet_det", "320px"] and "1.50x" in row and "2.00x" in row
    assert row.split()[-1] == "0.75"


def test_plain_batched_nms_keeps_what_torchvision_keeps(bench: ModuleType) -> None:
    import torch
    from torchvision.ops import batched_nms

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(200, 2, generator=generator) * 300
    boxes = torch.cat([corners, corners + 5 + torch.rand(200, 2, generator=generator) * 40], dim=1)
    scores = torch.rand(200, generator=generator)
    classes = torch.randint(0, 5, (200,), generator=generator)
    kept = bench._plain_batched_nms(boxes, scores, classes, 0.5)
    assert 0 < len(kept) < 200  # some boxes overlap, some survive
    assert torch.equal(kept, batched_nms(boxes, scores, classes, 0.5))


def test_ssd_verdict_one_line_per_measured_ssd(bench: ModuleType) -> None:
    ratios = {"ssdlite320_raw": {"int8_vs_fp32_f32": 1.5, "int8_vs_fp16_default": 1.2}, "resnet18": {}}
    (line,) = bench.ssd_verdict(ratios)
    assert line.startswith("ssdlite320_raw (network only (backbone + head)): INT8 vs fp32@f32 1.50x")
    assert "vs fp16@default 1.20x" in line and "3.6x" in line
    assert bench.ssd_verdict({}) == []
