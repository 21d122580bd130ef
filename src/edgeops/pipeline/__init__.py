"""The pipeline stages\x27 logic: prepare, train, compress, export, evaluate, benchmark, select, report."""
