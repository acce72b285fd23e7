# Two commands do all the set-up on a fresh machine with python3:
#   make demo   - runs the demo on the embedded default (SQLite)
#   make test   - lint, types and the whole test suite
#   make test-fast - the same without the tests marked slow (local work)
#   make bench  - the benchmark suite (not part of make test; ~10 minutes)
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast lint typecheck coverage pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/unasync.py --check

typecheck: $(STAMP)
	$(BIN)/mypy --strict langgraph_rollback

pytest: $(STAMP)
	$(BIN)/python -m pytest

# The unit tests of the I/O-free core cover every branch of it.
coverage: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q -p no:cacheprovider --cov=langgraph_rollback.core --cov-branch --cov-report=term:skip-covered --cov-fail-under=100

test: lint typecheck coverage pytest

# For local work: lint, types and every test not marked slow (the kill
# matrix, notebooks, many-process and subprocess tests run in `make test`).
test-fast: lint typecheck
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
