"""Team mode's helpers: which stages the pipeline's worker keeps and which a helper runs (pure functions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edgeops.orchestration.fanout import arrange, candidate_of, helper_stages

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["small_cnn", "small_cnn_32", "resnet18"]
STAGES = [
    "demo",
    "prepare",
    "train@small_cnn",
    "train@small_cnn_32",
    "train@resnet18",
    "compress@small_cnn-fp32",
    "compress@small_cnn-qat",
    "compress@small_cnn_32-fp32",
    "compress@small_cnn_32-qat",
    "compress@resnet18-fp32",
    "compress@resnet18-qat",
    "evaluate@small_cnn-fp32",
    "evaluate@small_cnn_32-qat",
    "evaluate@resnet18-qat",
    "select",
    "register",
]


def test_a_stage_belongs_to_the_longest_candidate_key_it_names() -> None:
    assert candidate_of("compress@small_cnn_32-qat", KEYS) == "small_cnn_32"
    assert candidate_of("compress@small_cnn-qat", KEYS) == "small_cnn"
    assert candidate_of("train@resnet18", KEYS) == "resnet18"
    assert candidate_of("select", KEYS) is None
    assert candidate_of("train@mobilenet_v3_small", KEYS) is None


def test_the_first_candidate_stays_with_the_pipeline_and_the_others_go_to_helpers() -> None:
    parts = arrange(STAGES, KEYS)
    assert parts.shared == ["demo", "prepare"]
    assert parts.own == [
        "train@small_cnn",
        "compress@small_cnn-fp32",
        "compress@small_cnn-qat",
        "evaluate@small_cnn-fp32",
    ]
    assert list(parts.helped) == ["small_cnn_32", "resnet18"]
    assert parts.helped["resnet18"] == [
        "train@resnet18",
        "compress@resnet18-fp32",
        "compress@resnet18-qat",
        "evaluate@resnet18-qat",
    ]
    assert parts.final == ["select", "register"]
    # nothing lost, nothing twice
    every = parts.shared + parts.own + [s for stages in parts.helped.values() for s in stages] + parts.final
    assert sorted(every) == sorted(STAGES)


def test_a_helper_runs_the_shared_stages_then_only_its_candidate() -> None:
    assert helper_stages(STAGES, KEYS, "small_cnn_32") == [
        "demo",
        "prepare",
        "train@small_cnn_32",
        "compress@small_cnn_32-fp32",
        "compress@small_cnn_32-qat",
        "evaluate@small_cnn_32-qat",
    ]


def test_collect_cancels_helpers_no_worker_started_and_waits_for_the_rest(tmp_path: Path) -> None:
    """On a real (temporary) Prefect server: a queued helper is cancelled (the pipeline's worker does its
    candidate), a running one is waited for, and one still running at the timeout is cancelled."""
    code = """
import json, threading, time
from edgeops.orchestration.prefect_local import TemporaryServer
with TemporaryServer() as api:
    api.wait_ready()
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running, Scheduled
    from edgeops.orchestration import fanout

    @flow
    def helper() -> None: ...

    with get_client(sync_client=True) as client:
        queued = str(client.create_flow_run(helper, state=Scheduled()).id)
        running = str(client.create_flow_run(helper, state=Running()).id)
        stuck = str(client.create_flow_run(helper, state=Running()).id)

    def finish() -> None:
        time.sleep(2)
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(running, Completed())

    threading.Thread(target=finish).start()
    lines = []
    first = fanout.collect({"a": queued, "b": running}, 60, lines.append, poll=0.5)
    second = fanout.collect({"c": stuck}, 1, lines.append, poll=0.5)
    with get_client(sync_client=True) as client:
        names = [client.read_flow_run(i).state.name for i in (queued, running, stuck)]
    print(json.dumps([first, second, names, lines]))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "EDGEOPS_DEBUG")}
    env |= {"PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    first, second, names, lines = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == {"a": "not started", "b": "Completed"}
    assert second == {"c": "timed out"}
    assert names == ["Cancelled", "Completed", "Cancelling"]
    assert any("no worker free" in line for line in lines)


def test_the_stages_helpers_run_can_come_back_through_dvcs_run_cache() -> None:
    """DVC keeps no run cache for a stage with a persist output (dvc/stage/cache.py) or an uncached plain
    output (Stage.run): every candidate's train, compress and evaluate stage must have neither."""
    from dvc.repo import Repo

    from edgeops.pipeline import plan

    keys = list(plan.read(ROOT))
    with Repo(str(ROOT)) as repo:
        stages = [s for s in repo.index.stages if candidate_of(s.addressing, keys)]
        assert {s.addressing.split("@")[0] for s in stages} == {"train", "compress", "evaluate"}
        for stage in stages:
            assert not [o for o in stage.outs if o.persist], stage.addressing
            plain_uncached = [o for o in stage.outs if not o.use_cache and not (o.is_metric or o.is_plot)]
            assert not plain_uncached, (stage.addressing, plain_uncached)
