# Labelwise: `make demo` runs the closed loop on bundled data, `make test` runs the tests.
# Both do all set-up on a fresh machine (Debian packages, the project venv, the Label Studio venv).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
LS_VENV := .venv-labelstudio
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup venv labelstudio-install labelstudio-start labelstudio-stop lint test test-unit test-faults demo \
        bench up down status clean

setup: venv labelstudio-install

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/system-deps.sh
	bash scripts/system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

labelstudio-install: $(LS_VENV)/.installed

$(LS_VENV)/.installed: scripts/labelstudio.sh
	bash scripts/labelstudio.sh install

labelstudio-start: labelstudio-install
	bash scripts/labelstudio.sh start

labelstudio-stop:
	bash scripts/labelstudio.sh stop

# Static checks; `make test` runs them first. mypy reads its file list from pyproject.toml.
lint: venv
	$(BIN)/ruff check src flows tasks deployments
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS)

# The fault suite alone (docs/reliability.md); `make test` runs it too.
test-faults: setup
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

DEMO_CONFIG := $(CURDIR)/.labelwise/demo.yaml
TASK ?= detect

# `make demo TASK=classify` / `TASK=segment`: the same loop on the digits as a classification
# set / with instance masks.
demo: setup
	$(BIN)/python -m deployments.demo --task $(TASK) --write-config $(DEMO_CONFIG)
	LABELWISE_PROJECT=$$($(BIN)/python -m deployments.demo --task $(TASK) --print-project) \
		LABELWISE_CONFIG=$(DEMO_CONFIG) bash scripts/services.sh up
	set -a; . .labelwise/run/env; set +a; $(BIN)/python -m deployments.demo --task $(TASK) --config $(DEMO_CONFIG)

bench: setup
	$(BIN)/labelwise bench scoring

up: setup
	bash scripts/services.sh up

down:
	bash scripts/services.sh down

status:
	bash scripts/services.sh status

clean: down
	rm -rf .labelwise .pytest_cache
