# Plenary: `make run` serves the app on SQLite, `make test` runs the whole suite. Both set themselves up.
PYTHON ?= python3
VENV   ?= .venv
HOST   ?= 127.0.0.1
PORT   ?= 8000
PY      = $(VENV)/bin/python
PYTEST_ARGS ?=
# `make bench`: the shared peers (Django polls, bare Starlette limits, mail sink) run from a temporary copy of
# BENCH_SHARED with their own interpreter in BENCH_VENV; BENCH_ARGS go to tests/bench/bench.py.
BENCH_SHARED ?= ../shared/bench
BENCH_VENV   ?= .venv-bench
BENCH_ARGS   ?=

.PHONY: run demo test test-fast lint bench migrate worker smtp-sink clean

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Plenary needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PY) -m pip install --quiet -e '.[dev]'
	@$(PY) -c 'import passlib, sys; v = passlib.__version__; sys.exit(0 if v.startswith("1.9") else f"passlib {v} replaced libpass: remove the package that pulls in passlib")'
	@touch $@

run: $(VENV)/.base
	PLENARY_BASE_URL=$${PLENARY_BASE_URL:-http://$(HOST):$(PORT)} $(VENV)/bin/plenary serve --host $(HOST) --port $(PORT)

demo: $(VENV)/.base
	$(VENV)/bin/plenary demo

migrate: $(VENV)/.base
	$(VENV)/bin/plenary migrate

worker: $(VENV)/.base
	$(VENV)/bin/plenary worker

smtp-sink: $(VENV)/.base
	$(VENV)/bin/plenary smtp-sink

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.dev
	$(PY) -m pytest -m "not browser and not slow" $(PYTEST_ARGS)

$(BENCH_VENV)/.installed: $(BENCH_SHARED)/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r $(BENCH_SHARED)/requirements.txt
	@touch $@

bench: $(VENV)/.dev $(BENCH_VENV)/.installed
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk"; exit 2; }
	BENCH_VENV=$(abspath $(BENCH_VENV)) PLENARY_BENCH_SHARED=$(abspath $(BENCH_SHARED)) \
	  $(BENCH_VENV)/bin/python tests/bench/bench.py --app-python $(abspath $(PY)) $(BENCH_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check app tests migrations

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
