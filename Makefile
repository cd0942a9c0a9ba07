# poolvae: the public interface. `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The install is redone only when the pinned set or the package metadata change.
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
SEED ?= 0

.PHONY: help setup test test-fast lint bench figures clean-venv

help:  ## List every target with one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_%-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP)  ## Create .venv with the pinned requirements and poolvae in editable mode (idempotent)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

test: setup  ## Run the whole test suite (installs what it needs first)
	$(PY) -m pytest

test-fast: setup  ## Run the tests without the slow ones
	$(PY) -m pytest -m "not slow"

lint: setup  ## Check style with ruff
	$(PY) -m ruff check code tests

bench: setup  ## Time every pooling rule (forward+backward) and write results/bench/aggregators.json
	$(PY) -m poolvae.bench --seed $(SEED)

clean-venv:  ## Remove the virtual environment
	rm -rf $(VENV)
