"""The compression report: a table of every variant, the score/latency plot, and the task's sections."""

from __future__ import annotations

from pathlib import Path

from edgeops.paths import split_variant_id
from edgeops.pipeline.selection import LATENCY_HINT, LATENCY_TIE, SCORE_TIE, Candidate, reference
from edgeops.vision import VisionTask


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def speedup(results: dict[str, dict], variant: str, reference: str) -> float | None:
    """Latency of the reference FP32 model (`reference`, selection.reference) with INFERENCE_PRECISION_HINT=f32
    divided by this one's (default hint)."""
    ref, r = results.get(reference, {}), results.get(variant, {})
    if ref.get("status") != "ok" or r.get("status") != "ok":
        return None
    return ref["benchmark"]["f32"]["latency_ms_p50"] / r["benchmark"][LATENCY_HINT]["latency_ms_p50"]


def why_not_chosen(c: Candidate, chosen: Candidate | None, metric: str, prefer: str) -> str:
    """The report's last column: the gates a model failed, or why a model that passed them lost."""
    if not c.passed:
        return "; ".join(c.failures)
    if chosen is None or c is chosen:
        return "pass"
    assert c.latency_ms is not None and chosen.latency_ms is not None and c.score is not None
    if prefer == "accuracy_first" and chosen.score is not None and c.score < chosen.score - SCORE_TIE:
        return f"pass; {c.score - chosen.score:+.4f} {metric}"
    if c.latency_ms > chosen.latency_ms * (1 + LATENCY_TIE):
        return f"pass; {c.latency_ms / chosen.latency_ms:.2f}× slower"
    return "pass; tie: larger or less accurate"


def training_section(metric: str, training: dict[str, dict]) -> list[str]:
    """Which trained model each variant comes from: its training, and every candidate's when there were
    several. training: candidate -> its metrics/train/<candidate>.json."""
    lines: list[str] = []
    for key, t in training.items():
        if t.get("note"):  # the train stage's undertrained_note
            lines += ["", f"**Note ({key}):** {t['note']}."]
    if len(training) == 1:
        key, t = next(iter(training.items()))
        return [
            "",
            f"Every variant comes from `{key}` (best val {metric} {t['best_val']:.4f}, {t['epochs']} epochs, "
            f"stopped: {t['stopped']}).",
            *lines,
        ]
    if not training:
        return []
    return [
        "",
        "## Model candidates (one train stage each; every one goes through every variant above)",
        "",
        f"| candidate | model | input (px) | params (M) | best val {metric} | epochs | seconds | stopped |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {key} | {t['model']} | {t['image_size']} | {t['parameters'] / 1e6:.2f} | {t['best_val']:.4f} "
            f"| {t['epochs']} | {t['seconds']:.0f} | {t['stopped']} |"
            for key, t in training.items()
        ),
        *lines,
    ]


def markdown(
    task: VisionTask,
    results: dict[str, dict],
    cands: list[Candidate],
    chosen: Candidate | None,
    front: list[str],
    plot: str,
    pictures: dict[str, list[str]] | None = None,
    training: dict[str, dict] | None = None,
    prefer: str = "fastest",
) -> str:
    """results, pictures: `<candidate>/<variant>` -> its evaluation, and the task's pictures of its test
    results as links relative to the report; training: candidate -> its train stage's metrics."""
    hw: dict = next((r["hardware"] for r in results.values() if "hardware" in r), {})
    ref = reference(results)
    lines = [
        f"# Compression report ({task.name}, score = test {task.metric} through OpenVINO)",
        "",
        f"CPU: {hw.get('cpu', '?')} (ISA: {', '.join(hw.get('isa', [])) or '?'}, {hw.get('cores', '?')} cores). "
        "Latency is batch 1, p50; `f32` = FP32 forced with INFERENCE_PRECISION_HINT=f32, `default` = the "
        "runtime's choice (bf16 on CPUs that support it). Speed-up = FP32@f32 p50 of the reference / this "
        f"model's p50 at default. The reference is `{ref}`, the most accurate FP32 model: drops are measured "
        "from it.",
        "",
        f"| candidate / variant | precision | {task.metric} | drop vs {ref} | p50 f32 (ms) | p50 default (ms) | p90 default (ms) "
        "| fps default | size (MB) | speed-up | sparsity | gates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cands:
        r = results[c.name]
        ok = r.get("status") == "ok"
        bench = r.get("benchmark", {})
        sparsity = r.get("compression", {}).get("sparsity")
        mark = " **(selected)**" if chosen and c.name == chosen.name else ""
        mark += " ◆" if c.name in front else ""
        lines.append(
            f"| {c.name}{mark} | {r.get('precision', '–')} | {_fmt(c.score, '.4f')} "
            f"| {_fmt(c.score_drop, '+.4f')} "
            f"| {_fmt(bench.get('f32', {}).get('latency_ms_p50') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('latency_ms_p50') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('latency_ms_p90') if ok else None, '.3f')} "
            f"| {_fmt(bench.get('default', {}).get('throughput_fps') if ok else None, '.0f')} "
            f"| {_fmt(c.size_mb, '.3f')} | {_fmt(speedup(results, c.name, ref), '.2f')}× "
            f"| {_fmt(sparsity, '.1%')} | {why_not_chosen(c, chosen, task.metric, prefer)} |"
        )
    lines += [
        "",
        f"◆ = on the Pareto front (no other model is both faster and better in {task.metric}).",
        "",
    ]
    if chosen:
        rule = "the fastest model that passes every gate"
        if prefer == "accuracy_first":
            rule = (
                "the most accurate model that passes every gate (`gates.prefer: accuracy_first`), "
                f"the fastest of those with equal {task.metric}"
            )
        lines.append(
            f"**Selected: `{chosen.name}`** — {rule} "
            f"(latencies within {2}% count as a tie, won by the smaller, then better-scoring model)."
        )
        lines += task.report_sections(results, chosen.name, ref)
    else:
        lines.append("**No model passes every gate**: relax `gates` in params.yaml or improve the model.")
    lines += training_section(task.metric, training or {})
    lines += ["", f"![{task.metric} vs latency]({plot})", ""]
    shown = [v for v in dict.fromkeys([ref, chosen.name if chosen else ref]) if (pictures or {}).get(v)]
    for variant in shown:
        lines += [f"### Test pictures of `{variant}`", ""]
        lines += [f"![{variant}]({link})" for link in (pictures or {})[variant]] + [""]
    return "\n".join(lines)


def pareto_plot(
    metric: str, cands: list[Candidate], front: list[str], chosen: Candidate | None, path: Path
) -> None:
    """Score vs latency of every model: one colour per model candidate, ◆ on the Pareto front, × failing a
    gate, the selected one circled. With several candidates only the front and the selected are labelled
    (the report's table has them all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(c, c.latency_ms, c.score) for c in cands if c.score is not None and c.latency_ms is not None]
    names = list(dict.fromkeys(split_variant_id(c.name)[0] for c in cands))
    several = len(names) > 1
    fig, ax = plt.subplots(figsize=(7, 4.5) if several else (6, 4))
    for c, latency, score in points:
        candidate, variant = split_variant_id(c.name)
        colour = f"C{names.index(candidate) % 10}" if several else ("C1" if c.name in front else "C0")
        on_front, selected = c.name in front, chosen is not None and c.name == chosen.name
        if not c.passed:  # measured, but a gate rules it out (the report's table says which)
            ax.scatter(latency, score, s=60, marker="x", color=colour if several else "0.55")
        else:
            ax.scatter(latency, score, s=60, marker="D" if on_front else "o", color=colour)
        if selected:
            ax.scatter(latency, score, s=240, facecolors="none", edgecolors="C3", linewidths=1.5)
        if several and not (on_front or selected):
            continue
        label = (c.name if several else variant) + (
            " (selected)" if selected else " (fails a gate)" if not c.passed else ""
        )
        ax.annotate(label, (latency, score), textcoords="offset points", xytext=(5, 5), fontsize=8)
    line = sorted((latency, score) for c, latency, score in points if c.name in front)
    ax.plot([p[0] for p in line], [p[1] for p in line], "--", color="0.4", label="Pareto front")
    for i, candidate in enumerate(names if several else []):
        ax.scatter([], [], s=40, color=f"C{i % 10}", label=candidate)
    ax.set_xlabel(f"latency p50, batch 1, {LATENCY_HINT} precision (ms)")
    ax.set_ylabel(f"test {metric} (OpenVINO)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
