# ltlib: the two commands of the README are `make book` and `make test`; both set up .venv first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ltlib-installed
SCALE  ?= default
FORCE  ?=
export HF_HUB_OFFLINE ?= 1
export PYTHONHASHSEED ?= 0
# One cache per clone (mini models, pinned list checksums): a fresh clone starts from a clean cache.
export LTLIB_CACHE ?= $(CURDIR)/.cache/ltlib

.PHONY: help setup lint browser test test-numeric-alt book notebooks html bench profile sensitivity regime-probes readme reproduce clean distclean

help: ## list the targets
	@grep -E '^[a-z.-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the pinned environment (idempotent)

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON_BOOTSTRAP) >/dev/null || { echo "error: $(PYTHON_BOOTSTRAP) not found; set PYTHON_BOOTSTRAP=/path/to/python3.11 (or 3.12)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	@echo "setup: installing the locked environment into $(VENV) (several GB with torch; pip shows each download)"
	$(PY) -m pip install --progress-bar on --upgrade "pip>=23"
	$(PY) -m pip install --progress-bar on -c requirements.lock -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ltlib)" >/dev/null
	touch $@

lint: setup ## ruff on the library and the tests (rules in pyproject.toml)
	$(VENV)/bin/ruff check ltlib tests

browser: ## headless Chromium for the book tests (apt-get, only when none is on PATH)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null || { \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium; }

# The suite in TEST_PROCS processes (pytest-xdist; TEST_PROCS=1: one process). Each test file stays in one
# process, so its session fixtures (the smoke world, the smoke book) are built once; each process runs one
# torch thread and no worker pool of its own, so processes × threads ≤ cores.
TEST_PROCS ?= 2
PYTEST_PAR = $(if $(filter-out 0 1,$(TEST_PROCS)),-n $(TEST_PROCS) --dist loadfile)
PAR_ENV = $(if $(PYTEST_PAR),OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 LTLIB_WORKERS=1)

test: setup lint browser ## lint, the test suite (unit, end to end, smoke notebooks, strict book build), then test-numeric-alt
	$(PAR_ENV) $(PY) -m pytest $(PYTEST_PAR) --durations=25
	$(ALT_PYTEST)

# The numeric tests once more under torch's non-vectorised kernels on one thread: another CPU's rounding
# (other summation orders, no FMA/AVX), so a tolerance that only one instruction set meets fails here
# (tests/tolerances.py). Its processes steal work (test_priors' slowest cases would otherwise share one:
# 27 s instead of 39 s here). The gloo data-parallel test is left out: its bound is the one the accumulation
# test checks, and two spawned processes cost ~20 s. ALT_KERNELS=avx2 (or avx512) tries another set.
ALT_KERNELS ?= default
NUMERIC_TESTS := tests/test_priors.py tests/test_losses.py tests/test_metrics.py tests/test_adjust.py \
                 tests/test_stage2.py tests/test_engine.py tests/test_seeding.py tests/test_miniworld_tasks.py \
                 tests/test_registry.py tests/test_vpt.py tests/test_faults_numbers.py

ALT_PYTEST = ATEN_CPU_CAPABILITY=$(ALT_KERNELS) OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -p no:cacheprovider \
	  $(if $(PYTEST_PAR),-n $(TEST_PROCS) --dist worksteal) -m "not slow" $(NUMERIC_TESTS) --deselect tests/test_engine.py::test_two_process_gloo_data_parallel_matches_single_process

test-numeric-alt: setup ## rerun the numeric tests under non-vectorised torch kernels, one thread (another CPU)
	$(ALT_PYTEST)

notebooks: setup ## execute every notebook at SCALE (default|smoke); FORCE=1 re-runs up-to-date ones
	$(PY) -m ltlib run-notebooks --setting $(SCALE) $(if $(FORCE),--force)

html: setup ## build the HTML book from the executed notebooks (strict)
	$(PY) -m ltlib.phases "HTML build" -- $(VENV)/bin/jupyter-book build . -W -n --keep-going

book: notebooks html ## run every notebook at the default scale and build the book into _build/html
	@echo "book: file://$(CURDIR)/_build/html/index.html"

bench: setup ## benchmarks into book/data/benchmarks (GPU rows where a GPU is present; run after `make book`)
	$(PY) -m ltlib run-notebooks --setting smoke --out results/executed-smoke --force
	$(PY) -m ltlib bench --out book/data/benchmarks

profile: setup ## make book from a clean cache (mini models, runs) with phase timing, then the warm rebuilds; tables into book/data/profile
	rm -rf .cache runs book/executed _build results/profile
	mkdir -p results/profile
	LTLIB_PHASES=$(CURDIR)/results/profile/phases.jsonl $(MAKE) book
	$(PY) -m ltlib.bench.profile results/profile/phases.jsonl --timings book/executed/timings.csv --out book/data/profile
	$(PY) -m ltlib.bench.rebuild --out book/data/profile/rebuilds.csv --make "$(MAKE)"

sensitivity: notebooks ## the sensitivity grid (~40 min on 2 cores): every claim of notebooks 01/03 in each cell
	$(PY) -m ltlib sensitivity --out results/sensitivity --book-results results/$(SCALE) \
	  --verdicts book/data/sensitivity/verdicts.csv

regime-probes: setup ## what the regime card would cost: one lever at a time in world 0 (~15 min on 2 cores)
	$(PY) -m ltlib.book.regime_probes --out book/data/regime --root results/regime-probes

readme: setup ## rewrite the README's verdict summary from the committed book/data/verdicts.csv
	$(PY) -m ltlib summary --verdicts book/data/verdicts.csv --write-readme README.md

reproduce: setup ## full-scale stage 1 + 2 + notebooks: make reproduce DATASET=places_lt DATA_ROOT=... WEIGHTS_DIR=...
	@test -n "$(DATASET)" -a -n "$(DATA_ROOT)" || { echo "usage: make reproduce DATASET=<imagenet_lt|places_lt|inat2018> DATA_ROOT=<dir> [WEIGHTS_DIR=<dir>] [TRAIN_LIST=<file>] [NPROC=<gpus>] [PARALLEL=1]" >&2; exit 2; }
	$(PY) -m ltlib reproduce --dataset $(DATASET) --data-root $(DATA_ROOT) $(if $(WEIGHTS_DIR),--weights-dir $(WEIGHTS_DIR)) $(if $(TRAIN_LIST),--train-list $(TRAIN_LIST)) $(if $(NPROC),--nproc $(NPROC)) $(if $(PARALLEL),--parallel-backbones)

environment.yml: requirements.lock ## regenerate the conda environment file from the lock
	$(PY) -m ltlib.lockfile requirements.lock > $@.tmp && mv $@.tmp $@

# Tool caches that tests, linters and editors leave in the tree (the book's _config.yml excludes them too).
TOOL_CACHES := .pytest_cache .mypy_cache .ruff_cache .hypothesis htmlcov .coverage .coverage.* .tox .nox *.egg-info

clean: ## remove build output, executed notebooks and tool caches (keeps .venv)
	rm -rf _build book/executed build $(TOOL_CACHES)
	find . \( -name __pycache__ -o -name .ipynb_checkpoints \) -not -path "./$(VENV)/*" -not -path "./.git/*" -prune -exec rm -rf {} +

distclean: clean ## also remove .venv and every cached run / pre-trained mini model
	rm -rf $(VENV) results runs .cache
