# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The app alone (no PyTorch: the image network it runs ships with fingertui); the tests
# and the benches add PyTorch and the test tools (.[dev]).
APP_STAMP := $(VENV)/.installed-app

.PHONY: run test test-fast lint bench clean trunk

$(APP_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(APP_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(APP_STAMP)

run: $(APP_STAMP)
	$(BIN)/fingertui $(ARGS)

# Export the shipped image trunk again from its weights (fingertui/trunks/NOTICE).
trunk: $(STAMP)
	$(BIN)/python -c "from fingertui.learn.backbones import ship_trunk; print(ship_trunk())"

# The tests run in parallel (pytest-xdist): one worker more than there are cores, since
# many tests wait on a subprocess, tmux or the app's own threads, and an idle worker takes
# the next test as soon as it is free (worksteal). PYTEST_ARGS adds to it, e.g.
# PYTEST_ARGS='tests/test_store.py', or XDIST='-n 0' (one process).
WORKERS := $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')
XDIST ?= -n $(WORKERS) --dist worksteal

test: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

# The inner loop: everything but the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check fingertui tests bench
	$(BIN)/ruff format --check fingertui tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
