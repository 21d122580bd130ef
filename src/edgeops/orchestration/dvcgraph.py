"""Read the stage order from dvc.yaml so the Prefect flow never keeps a second DAG."""

from __future__ import annotations

from pathlib import Path

from edgeops.errors import EdgeopsError


def stage_order(root: str | Path = ".") -> list[str]:
    """Stage addresses (e.g. `compress@small_cnn-ptq`) with every dependency before its dependents, and
    otherwise in dvc.yaml's order (so the model candidates train in the order params.yaml lists them)."""
    import networkx as nx
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    try:
        with Repo(str(root)) as repo:
            graph = repo.index.graph  # edges point from a stage to the stages it depends on
            position = {stage: i for i, stage in enumerate(repo.index.stages)}
            ordered = nx.lexicographical_topological_sort(graph.reverse(), key=lambda s: position.get(s, -1))
            return [stage.name for stage in ordered if isinstance(stage, PipelineStage)]
    except DvcException as e:
        raise EdgeopsError(f"dvc.yaml cannot be read: {str(e).splitlines()[0]}") from None
