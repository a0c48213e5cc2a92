# Two commands a newcomer needs: `make demo` and `make test`. Each creates .venv when it is
# missing and installs the pinned dependencies (requirements.txt, then allensdk from
# requirements-allensdk.txt with --no-deps, since its own pins clash with ours; its runtime
# dependencies are pinned in requirements.txt) before it runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real neural data for the demo and tests, when a local mirror lies beside the clone.
export WORKBENCH_DATA_MIRROR ?= $(if $(wildcard ../shared/data/SHA256SUMS),$(abspath ../shared/data),)

.PHONY: setup test test-fast test-demo test-paper-scale demo lab bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-allensdk.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-allensdk.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# The suite runs on both cores (pytest-xdist); TEST_WORKERS=0 runs it in one process. The
# demo's end-to-end test (the whole `make demo`, about 10 minutes) runs apart: `make test-demo`.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15 -m "not demo and not paper_scale"

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow and not demo and not paper_scale"

test-demo: $(STAMP)
	$(BIN)/python -m pytest -m demo

# Smoke runs at the paper's full resolution that do not fit the suite (MADA at 512 x 1024: about
# 8 minutes and 17 GB of memory on 2 cores).
test-paper-scale: $(STAMP)
	$(BIN)/python -m pytest -m paper_scale

demo: $(STAMP)
	$(BIN)/workbench demo

# Containers and cloud notebooks run as root, where Jupyter refuses to start without --allow-root.
USER_ID ?= $(shell id -u)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(USER_ID)),--allow-root,)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_metrics.py
	$(BIN)/python benchmarks/bench_extract.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_null.py
	$(BIN)/python benchmarks/bench_methods.py

clean:
	rm -rf $(VENV) .pytest_cache
