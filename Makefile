# Two commands do all the set-up on a fresh machine with python3:
#   make demo   - runs the demo on the embedded default (SQLite)
#   make test   - lint, types and the whole test suite
#   make test-fast - the same without the tests marked slow (local work)
#   make bench  - the benchmark suite (not part of make test; ~10 minutes)
#   make test-floors - a fast subset on the lowest dependency versions allowed
#   make notebooks - execute the notebooks and commit-ready outputs (scrubbed)
# Each creates .venv and installs what it needs on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast test-floors lint typecheck coverage pytest bench notebooks clean

# pip >= 25.1 reads dependency groups (--group); the upgrade comes first.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[postgres,agents]' --group dev
	touch $(STAMP)

# The floors: every dependency at the lowest version pyproject.toml allows
# (scripts/floors.py pins each `>=X` to `==X`), in a virtualenv of its own.
FLOORS       := .venv-floors
FLOORS_STAMP := $(FLOORS)/.installed-stamp
FLOORS_TESTS := tests/unit tests/savers/test_conformance.py tests/graph/test_capture.py \
                tests/graph/test_node.py tests/graph/test_recording.py \
                tests/graph/test_rollback.py tests/docs/test_readme.py

$(FLOORS_STAMP): pyproject.toml scripts/floors.py
	rm -rf $(FLOORS)
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) scripts/floors.py > $(FLOORS)/floors.txt
	$(FLOORS)/bin/python -m pip install --quiet -c $(FLOORS)/floors.txt -e '.[postgres,agents]' --group test
	touch $(FLOORS_STAMP)

test-floors: $(FLOORS_STAMP)
	$(FLOORS)/bin/python scripts/floors.py --check
	$(FLOORS)/bin/python -m pytest -m "not slow" -q -p no:cacheprovider $(FLOORS_TESTS)

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

# Execute the notebooks and save them with their outputs, volatile values
# (ids, timestamps, temporary paths) made stable: commit the result.
notebooks: $(STAMP)
	$(BIN)/python scripts/notebooks.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(FLOORS) .mypy_cache .ruff_cache .pytest_cache
