"""Read the stage order from dvc.yaml so the Prefect flow never keeps a second DAG."""

from __future__ import annotations

from pathlib import Path

from edgeops.errors import EdgeopsError

FINAL_STAGE = "register"  # what a pipeline run is for: the stages it needs are the ones that run


def stage_order(root: str | Path = ".", target: str | None = None) -> list[str]:
    """Stage addresses (e.g. `compress@ptq`) with every dependency before its dependents; with a target
    that dvc.yaml has, only it and the stages it needs (the demo stage only when data.path is a demo
    dataset)."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        with Repo(str(root)) as repo:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            ordered = list(reversed(list(nx.topological_sort(graph))))
            final = next((stage for stage in ordered if getattr(stage, "name", None) == target), None)
            if final is not None:  # a dvc.yaml without the target: every stage
                needed = nx.descendants(graph, final) | {final}
                ordered = [stage for stage in ordered if stage in needed]
            return [stage.name for stage in ordered if isinstance(stage, PipelineStage)]
    except DvcException as e:
        raise EdgeopsError(f"dvc.yaml cannot be read: {str(e).splitlines()[0]}") from None
