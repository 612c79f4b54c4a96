"""Public benchmarks, read from their installed packages: evaluation asks their items and
curation keeps their questions out of the training data."""
