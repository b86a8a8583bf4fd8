# Two commands for a fresh machine: `make start` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
JARS := .flink-lib/flink-connector-kafka.jar .flink-lib/kafka-clients.jar

# `make start REPLAY=1 DEMO_MODE=TRUE` replays the recordings offline with the demo threshold.
REPLAY ?=
SPEED ?= 1
START_ARGS ?= $(if $(REPLAY),--replay --speed $(SPEED),)
export DEMO_MODE

.PHONY: setup start test test-faults lint unit clean
setup: $(INSTALLED) $(JARS)

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(JARS): $(INSTALLED) flink/jars.py
	$(PY) -m flink.jars

start: setup
	$(VENV)/bin/arb start $(START_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	./scripts/install-system-deps.sh
	$(PY) -m pytest --durations=40

# The whole pipeline under injected faults (tests/faults, marker "faults"): ~15 minutes more.
test-faults: setup
	./scripts/install-system-deps.sh
	$(PY) -m pytest -m faults --durations=20

unit: setup
	$(PY) -m pytest -m "not integration"

clean:
	rm -rf var test-output .pytest_cache
