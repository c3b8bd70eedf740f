# Two commands matter: `make demo` and `make test`. Both set up whatever is missing first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export LSLAPICFG ?= $(CURDIR)/monitor/lsl_api.cfg
export PYTHONUNBUFFERED := 1

.PHONY: demo test setup lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.txt tools/ensure-system-deps.sh
	bash tools/ensure-system-deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: anything else asking for torch then finds it satisfied (no CUDA download).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	# LibEMG is only the reference our feature tests compare against; its own dependencies pull GUI stacks and numpy<2
	$(PY) -m pip install --quiet --no-deps libemg==2.0.3
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neurofusion demo $(DEMO_ARGS)

# Two test processes (pytest-xdist), a file's tests kept together so its fixtures are built once: most of the suite's
# time is real-time streaming and process start-up, which two processes overlap on two cores. The window tests
# (tests/gui) run afterwards in one process: in an xdist worker, a subset of them crashed Qt's event processing in
# 2 of 8 runs (never in one process; not yet understood, see the closing note of 2026-12-06).
# PYTEST_ARGS="-n 0" runs the first part in one process too.
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -n 2 --dist loadfile --ignore=tests/gui $(PYTEST_ARGS)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/gui $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# the quick set into build/benchmarks/summary.json; BENCH_ARGS="--all" runs every benchmark (docs/benchmarks.md)
bench: $(STAMP)
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
