"""Training runs as records: each run's config, data snapshot, metrics and predictions, which
one is active, and how two runs compare."""
