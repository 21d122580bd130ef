"""Readable descriptions of the registered model and its versions (Markdown, shown by the MLflow UI)."""

from __future__ import annotations

from typing import Any

MAX_LABELS = 30


def _labels(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_LABELS])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > MAX_LABELS else "")


def model_description(task: str, labels: list[str], metric: str) -> str:
    return (
        f"edgeops **{task}** model: an OpenVINO IR taking one u8 NHWC RGB image, with its `model.json` "
        f"contract; also loadable as an MLflow pyfunc (u8 RGB images (N, H, W, 3) of any size in, one "
        f"answer per image out).\n\n"
        f"Labels ({len(labels)}): {_labels(labels)}.\n\n"
        f"Metric: test {metric}. Versions are promoted by alias (`@staging`, `@production`) behind the "
        f"gates of params.yaml; `edgeops models history` prints the promotion history."
    )


def version_description(
    result: dict[str, Any],
    fp32_score: float,
    labels: list[str],
    selection: dict[str, Any],
    lineage: dict[str, str],
) -> str:
    """What a version is, how good and fast, which gates it passed, and where it came from."""
    metric = result["metric"]
    default = result["benchmark"].get("default", {})
    f32 = result["benchmark"].get("f32", {})
    gates = {k: v for k, v in selection.get("gates", {}).items() if v is not None}
    name = f"{result['candidate']}/{result['variant']}" if "candidate" in result else result["variant"]
    verdict = selection.get("variants", {}).get(name, {})
    gate_line = (
        ", ".join(f"{k} {v}" for k, v in gates.items()) + (" — all passed" if verdict.get("passed") else "")
        if gates
        else "none configured"
    )
    lines = [
        f"**{result['task']}**, `{name}` ({result['precision']}), selected by edgeops among "
        f"{len(selection.get('variants', {}))} models (candidates × compression variants).",
        "",
        f"- test {metric}: {result['score']:.4f} (reference FP32 `{selection.get('reference', 'fp32')}` {fp32_score:.4f}, drop {fp32_score - result['score']:+.4f})",
        f"- latency p50: {default.get('latency_ms_p50', float('nan')):.3f} ms (runtime default precision), "
        f"{f32.get('latency_ms_p50', float('nan')):.3f} ms (f32 hint); size {result['size_mb']:.2f} MB",
        f"- gates: {gate_line}",
        f"- labels ({len(labels)}): {_labels(labels)}",
        f"- dataset: {lineage['data_path']}, fingerprint `{lineage['dataset_fingerprint'][:16]}…`, "
        f"DVC md5 `{lineage['data_dvc_md5']}`",
        f"- code: git `{lineage['git_commit'][:12]}`, dvc.lock sha256 `{lineage['dvc_lock_sha256'][:12]}`",
        f"- hardware: {result.get('hardware', {}).get('cpu', 'unknown CPU')}",
    ]
    return "\n".join(lines)
