# lbauto — the two commands a newcomer needs are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
LBAUTO := $(VENV)/bin/lbauto

.PHONY: bootstrap demo test test-fast lint bench clean

bootstrap:
	@VENV=$(VENV) scripts/bootstrap.sh

## demo: run lbauto's main job on its embedded default
demo: bootstrap
	$(LBAUTO) demo

## test: lint, type-check, then every test (integration tests need root)
test: bootstrap lint
	$(PY) -m pytest tests -q

## test-fast: unit tests only (no root, seconds)
test-fast: bootstrap
	$(PY) -m pytest tests/unit -q

lint: bootstrap
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: bootstrap
	$(PY) bench/bench_core.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
