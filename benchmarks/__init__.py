"""Benchmarks of the rollback savers against the LangGraph savers they extend.

`python -m benchmarks.run` (or `make bench`) runs every section, prints a
table and writes `benchmarks/results/latest.json`; `--quick` is the small
version the test suite runs. See `benchmarks/run.py` for the sections.
`python -m benchmarks.compare OLD.json NEW.json` tells whether a later run
is worse than an earlier one, figure by figure (`benchmarks/compare.py`).
"""
