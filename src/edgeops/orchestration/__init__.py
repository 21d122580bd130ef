"""Running the pipeline: the DVC stage graph, the DVC worker, the local Prefect server."""
