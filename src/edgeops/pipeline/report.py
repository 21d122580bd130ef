"""The compression report: a table of every variant, the score/latency plot, and the task's sections."""

from __future__ import annotations

from pathlib import Path

from edgeops.pipeline.selection import LATENCY_HINT, Candidate
from edgeops.vision import VisionTask


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def speedup(results: dict[str, dict], variant: str) -> float | None:
    """Latency of FP32 with INFERENCE_PRECISION_HINT=f32 divided by this variant's (default hint)."""
    ref, r = results.get("fp32", {}), results.get(variant, {})
    if ref.get("status") != "ok" or r.get("status") != "ok":
        return None
    return ref["benchmark"]["f32"]["latency_ms_p50"] / r["benchmark"][LATENCY_HINT]["latency_ms_p50"]


def training_section(metric: str, training: dict) -> list[str]:
    """Which model every variant comes from; with several candidates, all of them and why the others lost."""
    if not training.get("model"):
        return []
    kept = training.get("candidate", training["model"])  # with @size when trained at another input size
    lines = [
        "",
        f"Every variant comes from `{kept}` (best val {metric} "
        f"{training['best_val_score']:.4f}, {training['epochs']} epochs, stopped: {training['stopped']}).",
    ]
    if training.get("note"):  # the train stage's undertrained_note
        lines += ["", f"**Note:** {training['note']}."]
    candidates = training.get("candidates") or []
    if len(candidates) < 2:
        return lines
    best = max(c["best_val"] for c in candidates)
    lines += [
        "",
        "## Model candidates (train stage: the best FP32 val score is kept, a tie goes to the smaller model, "
        "then the smaller input)",
        "",
        f"| model | input (px) | params (M) | best val {metric} | epochs | seconds | stopped | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    kept_parameters = next((c["parameters"] for c in candidates if c.get("name", c["model"]) == kept), None)
    for c in candidates:
        name = c.get("name", c["model"])
        tie = "tie: larger input" if c["parameters"] == kept_parameters else "tie: larger model"
        why = (
            "**kept**"
            if name == kept
            else (f"val {c['best_val'] - best:+.4f}" if c["best_val"] < best else tie)
        )
        lines.append(
            f"| {name} | {c.get('image_size', '')} | {c['parameters'] / 1e6:.2f} | {c['best_val']:.4f} "
            f"| {c['epochs']} | {c['seconds']:.0f} | {c['stopped']} | {why} |"
        )
    return lines


def markdown(
    task: VisionTask,
    results: dict[str, dict],
    cands: list[Candidate],
    chosen: Candidate | None,
    front: list[str],
    plot: str,
    pictures: dict[str, list[str]] | None = None,
    training: dict | None = None,
    prefer: str = "fastest",
) -> str:
    """pictures: variant -> the task's pictures of its test results, as links relative to the report;
    training: the train stage's metrics/train.json (the model, and every candidate when there were several)."""
    hw: dict = next((r["hardware"] for r in results.values() if "hardware" in r), {})
    lines = [
        f"# Compression report ({task.name}, score = test {task.metric} through OpenVINO)",
        "",
        f"CPU: {hw.get('cpu', '?')} (ISA: {', '.join(hw.get('isa', [])) or '?'}, {hw.get('cores', '?')} cores). "
        "Latency is batch 1, p50; `f32` = FP32 forced with INFERENCE_PRECISION_HINT=f32, `default` = the "
        "runtime's choice (bf16 on CPUs that support it). Speed-up = FP32@f32 p50 / variant@default p50.",
        "",
        f"| variant | precision | {task.metric} | drop vs fp32 | p50 f32 (ms) | p50 default (ms) | p90 default (ms) "
        "| fps default | size (MB) | speed-up | sparsity | gates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cands:
        r = results[c.variant]
        ok = r.get("status") == "ok"
        bench = r.get("benchmark", {})
        sparsity = r.get("compression", {}).get("sparsity")
        mark = " **(selected)**" if chosen and c.variant == chosen.variant else ""
        mark += " ◆" if c.variant in front else ""
        lines.append(
            f"| {c.variant}{mark} | {r.get('precision', '–')} | {_fmt(c.score, '.4f')} "
            f"| {_fmt(c.score_drop, '+.4f')} "
            f"| {_fmt(bench.get('f32', {}).get('latency_ms_p50') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('latency_ms_p50') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('latency_ms_p90') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('throughput_fps') if ok else None, '.0f')} "
            f"| {_fmt(c.size_mb, '.3f')} | {_fmt(speedup(results, c.variant), '.2f')}× "
            f"| {_fmt(sparsity, '.1%')} | {'pass' if c.passed else '; '.join(c.failures)} |"
        )
    lines += [
        "",
        f"◆ = on the Pareto front (no other variant is both faster and better in {task.metric}).",
        "",
    ]
    if chosen:
        rule = "the fastest variant that passes every gate"
        if prefer == "accuracy_first":
            rule = (
                "the most accurate variant that passes every gate (`gates.prefer: accuracy_first`), "
                f"the fastest of those with equal {task.metric}"
            )
        lines.append(
            f"**Selected: `{chosen.variant}`** — {rule} "
            f"(latencies within {2}% count as a tie, won by the smaller, then better-scoring model)."
        )
        lines += task.report_sections(results, chosen.variant)
    else:
        lines.append("**No variant passes every gate**: relax `gates` in params.yaml or improve the model.")
    lines += training_section(task.metric, training or {})
    lines += ["", f"![{task.metric} vs latency]({plot})", ""]
    shown = [
        v for v in dict.fromkeys(["fp32", chosen.variant if chosen else "fp32"]) if (pictures or {}).get(v)
    ]
    for variant in shown:
        lines += [f"### Test pictures of `{variant}`", ""]
        lines += [f"![{variant}]({link})" for link in (pictures or {})[variant]] + [""]
    return "\n".join(lines)


def pareto_plot(
    metric: str, cands: list[Candidate], front: list[str], chosen: Candidate | None, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: list[tuple[str, float, float]] = []
    failed = {c.variant for c in cands if not c.passed}
    for c in cands:
        if c.score is not None and c.latency_ms is not None:
            points.append((c.variant, c.latency_ms, c.score))
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant, latency, acc in points:
        on_front = variant in front
        if variant in failed:  # measured, but a gate rules it out (the report's table says which)
            ax.scatter(latency, acc, s=60, marker="x", color="0.55")
        else:
            ax.scatter(latency, acc, s=60, marker="D" if on_front else "o", color="C1" if on_front else "C0")
        selected = chosen is not None and variant == chosen.variant
        if selected:
            ax.scatter(latency, acc, s=240, facecolors="none", edgecolors="C3", linewidths=1.5)
        label = variant + (" (selected)" if selected else " (fails a gate)" if variant in failed else "")
        ax.annotate(label, (latency, acc), textcoords="offset points", xytext=(5, 5), fontsize=8)
    line = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    ax.plot([p[1] for p in line], [p[2] for p in line], "--", color="C1", label="Pareto front")
    ax.set_xlabel(f"latency p50, batch 1, {LATENCY_HINT} precision (ms)")
    ax.set_ylabel(f"test {metric} (OpenVINO)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
