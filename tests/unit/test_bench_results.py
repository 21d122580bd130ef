"""bench/run.py: result rows, speed-ups, targets and the printed table (pure logic, no timing)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    return module


def _rows(bench: ModuleType) -> list[dict]:
    r = bench.make_row
    return [
        r("resnet18", "fp32", "f32", 30.0, 35.0, 40.0, 46.0),
        r("resnet18", "fp32", "default", 15.0, 18.0, 80.0, 46.0),
        r("resnet18", "fp16", "f32", 31.0, 36.0, 39.0, 23.0),
        r("resnet18", "ptq", "f32", 8.0, 9.0, 130.0, 11.5),
        r("resnet18", "ptq", "default", 7.5, 9.0, 135.0, 11.5),
        r("tiny", "fp32", "f32", 1.0, 1.2, 900.0, 1.0),
    ]


def test_row_has_the_documented_fields(bench: ModuleType) -> None:
    row = bench.make_row("m", "fp32", "f32", 1.0)
    expected = {"model", "variant", "precision_hint", "latency_ms_p50", "latency_ms_p90", "throughput_fps"}
    assert expected | {"size_mb", "accuracy"} <= set(row)
    assert row["accuracy"] is None and row["source"] == "measured"


def test_combine_rounds_takes_medians(bench: ModuleType) -> None:
    rounds = [
        {"latency_ms_p50": 10.0, "latency_ms_p90": 12.0},
        {"latency_ms_p50": 50.0, "latency_ms_p90": 90.0},  # a slice hit by outside load
        {"latency_ms_p50": 11.0, "latency_ms_p90": 13.0},
    ]
    stats = bench.combine_rounds(rounds, [100.0, 20.0, 110.0])
    assert stats == {"latency_ms_p50": 11.0, "latency_ms_p90": 13.0, "throughput_fps": 100.0}
    even = bench.combine_rounds(rounds[:2], [1.0, 3.0])
    assert even["latency_ms_p50"] == 30.0 and even["throughput_fps"] == 2.0


def test_speedups_use_int8_at_default_hint(bench: ModuleType) -> None:
    ratios = bench.speedups(_rows(bench))
    assert set(ratios) == {"resnet18"}  # "tiny" has no INT8 row
    assert ratios["resnet18"]["int8_vs_fp32_f32"] == pytest.approx(30.0 / 7.5)
    assert ratios["resnet18"]["int8_vs_fp32_default"] == pytest.approx(15.0 / 7.5)
    assert ratios["resnet18"]["size_ratio_fp32_over_int8"] == pytest.approx(46.0 / 11.5)


def test_speedups_accept_the_bare_int8_name_and_missing_values(bench: ModuleType) -> None:
    rows = bench.bare_rows({"latency_ms_p50": {"fp32@f32": 33.0, "fp32@default": 15.0, "int8@default": 7.5}})
    ratios = bench.speedups(rows)[bench.BARE_MODEL]
    assert ratios["int8_vs_fp32_f32"] == pytest.approx(4.4)
    assert ratios["size_ratio_fp32_over_int8"] is None
    sized = {"latency_ms_p50": {"fp32@f32": 2.0, "fp32@default": 1.0, "int8@default": 1.0}}
    sized["size_mb"] = {"fp32": 46.0, "int8": 11.5}
    assert bench.speedups(bench.bare_rows(sized))[bench.BARE_MODEL]["size_ratio_fp32_over_int8"] == 4.0


def test_targets_speedup_and_pipeline_overhead(bench: ModuleType) -> None:
    ratios = bench.speedups(_rows(bench))
    timing = {
        "wall_seconds": 100.0,
        "work_seconds": 90.0,
        "overhead_fraction": 0.1,
        "stages_run": ["train"],
    }
    result = bench.targets(ratios, timing)
    assert result["resnet18_int8_vs_f32"] == {"target": 3.0, "measured": pytest.approx(4.0), "met": True}
    assert result["pipeline_overhead"]["met"] is True and result["pipeline_overhead"]["measured"] == 0.1
    slow = bench.targets({"resnet18": {"int8_vs_fp32_f32": 2.5}}, {"overhead_fraction": 0.5})
    assert slow["resnet18_int8_vs_f32"]["met"] is False and slow["pipeline_overhead"]["met"] is False
    missing = bench.targets({}, None)
    assert missing["resnet18_int8_vs_f32"]["met"] is False
    assert missing["pipeline_overhead"]["measured"] is None
    lines = bench.verdict(slow | {"pipeline_overhead": missing["pipeline_overhead"]}, {})
    assert "NOT MET" in lines[0] and "pipeline_timing.json" in lines[1]


def test_table_formats_every_row_and_dashes_for_missing(bench: ModuleType) -> None:
    rows = [*_rows(bench), bench.make_row("demo", "ptq", "default", 0.1734, accuracy=0.99256)]
    table = bench.format_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    assert table[0].split()[:3] == ["model", "variant", "hint"]
    assert "0.173" in table[-1] and "0.9926" in table[-1] and " - " in table[-1]
    assert len({len(line.rstrip()) for line in table[:2]}) == 1  # header and rule line up
    speed = bench.format_speedups(bench.speedups(rows))
    assert "4.00x" in speed and "2.00x" in speed


def test_demo_rows_read_pipeline_metrics(bench: ModuleType, tmp_path: Path) -> None:
    bench_entry = {"latency_ms_p50": 0.2, "latency_ms_p90": 0.3, "throughput_fps": 5000.0, "size_mb": 0.19}
    metrics = {
        "variant": "ptq",
        "status": "ok",
        "accuracy": 0.99,
        "accuracy_f32": 0.98,
        "benchmark": {"f32": bench_entry, "default": {**bench_entry, "latency_ms_p50": 0.25}},
    }
    (tmp_path / "ptq.json").write_text(json.dumps(metrics))
    (tmp_path / "qat.json").write_text(json.dumps({"variant": "qat", "status": "failed"}))
    rows = bench.demo_rows(tmp_path, "small_cnn (demo)")
    assert [(r["variant"], r["precision_hint"], r["accuracy"]) for r in rows] == [
        ("ptq", "f32", 0.98),
        ("ptq", "default", 0.99),
    ]
    assert all(r["source"] == "pipeline metrics" for r in rows)
    params = tmp_path / "params.yaml"
    params.write_text("train: {model: small_cnn}\ndata: {image_size: 32}\n")
    assert bench.demo_model_name(params) == "small_cnn (demo, 32px)"
    assert bench.demo_model_name(tmp_path / "missing.yaml") == "small_cnn (demo)"


def test_write_json_atomic(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "results.json"
    bench.write_json_atomic(out, {"rows": []})
    assert json.loads(out.read_text()) == {"rows": []}
    assert not list(out.parent.glob("*.tmp"))
