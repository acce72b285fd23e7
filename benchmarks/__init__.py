"""Benchmarks of the rollback savers against the LangGraph savers they extend.

`python -m benchmarks.run` (or `make bench`) runs every section, prints a
table and writes `benchmarks/results/latest.json`; `--quick` is the small
version the test suite runs. See `benchmarks/run.py` for the sections.
"""
