# lbauto — the two commands a newcomer needs are `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
LBAUTO := $(VENV)/bin/lbauto
# Some shells and CI images set PYTHONDONTWRITEBYTECODE=1. The tests start hundreds of Python
# processes and pytest rewrites every test module: without cached bytecode each one compiles
# lbauto (and the test modules) from source again, about 4 s of the unit tier's CPU alone.
export PYTHONDONTWRITEBYTECODE :=
# The unit tier on every core (pytest-xdist; its tests share nothing). The integration tier
# runs alone: its labs share the host's namespaces, ports and CPU-sensitive timings.
UNIT_PARALLEL ?= -n auto --dist worksteal

.PHONY: bootstrap demo test test-fast lint bench clean

bootstrap:
	@VENV=$(VENV) scripts/bootstrap.sh

## demo: run lbauto's main job on its embedded default
demo: bootstrap
	$(LBAUTO) demo

## test: lint, type-check, the unit tier with its coverage report and floor, then the
## integration tier (needs root; without root it is skipped, in CI a missing part fails)
# Coverage is measured on the unit tier only: the same figure on every machine, root or not,
# and the integration tests (real traffic, timers) run untraced, at full speed. The floor is
# [tool.coverage.report] fail_under in pyproject.toml (pytest-cov reads it).
test: bootstrap lint
	$(PY) -m pytest tests/unit -q $(UNIT_PARALLEL) --cov --cov-report=term
	$(PY) -m pytest tests/integration -q --durations=15

## test-fast: the unit tier only (no root, about 40 s of CPU); no coverage: tracing takes
## about three times the CPU, and this is the loop you run while editing
test-fast: bootstrap
	$(PY) -m pytest tests/unit -q $(UNIT_PARALLEL)

## lint: ruff, ruff format, mypy --strict over lbauto, napalm_frr, tests and bench
lint: bootstrap
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## bench: every benchmark (bench/run: under 15 minutes; the lab ones need root), figures beside
## their peers, written into docs/benchmarks.md's generated section
bench: bootstrap
	$(PY) bench/run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

## clab-images: build the containerlab images (FRR, agent, DIP/client hosts) locally, with no
## registry: debootstrap a bookworm base from the host's Debian mirror, then docker build
## (root, and a running dockerd: containerlab/dockerd.sh start). See docs/containerlab.md.
.PHONY: clab-images
clab-images: bootstrap
	containerlab/images/build.sh
