# Everything a fresh machine needs (Python 3.11 and the package registries) is installed from here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format migrate simulator bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Offline demo: exchange simulator + Dagster webserver and daemon on http://127.0.0.1:3000, embedded warehouse.
demo: install
	$(PY) -m warehouse_assets demo

## Lint, type check, then the whole test suite (slow end-to-end tests included).
test: lint
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check warehouse_assets warehouse_assets_tests bench
	$(VENV)/bin/ruff format --check warehouse_assets warehouse_assets_tests bench
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix warehouse_assets warehouse_assets_tests bench
	$(VENV)/bin/ruff format warehouse_assets warehouse_assets_tests bench

migrate: install
	$(PY) -m warehouse_assets migrate

simulator: install
	$(PY) -m warehouse_assets.simulator

bench: install
	$(PY) bench/backfill_klines.py

clean:
	rm -rf .data .dagster_home .pytest_cache .mypy_cache .ruff_cache
