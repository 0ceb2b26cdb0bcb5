# alliance: the two commands a new user types are `make demo` and `make test`.
# Every target sets up what it needs: uv (installed with pip into .tools/ if missing) and .venv from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
CONFIG ?= config/demo.yml
# the suite's pytest-xdist workers (tests/conftest.py keeps the live-Airflow and fault-campaign modules on one).
# A crashed worker ends the run at once: xdist 3.8's loadgroup scheduler can wait forever after replacing one
# (pytest-dev/pytest-xdist#1323, #1378), and a crash is a failure anyway. TEST_TIMEOUT bounds each pytest run
# (seconds, the whole process group) so that nothing can hold CI until its own limit.
TEST_WORKERS ?= -n 2 --dist loadgroup --max-worker-restart=0
TEST_TIMEOUT ?= 2400
AIRFLOW_PORT ?= 8080
EXECUTOR ?= local
# Every alliance step is a fresh Python process (CLI, Airflow tasks, tests' subprocesses): without bytecode caches
# each one recompiles dbt, GX and Airflow from source (~8 s of CPU), so the venv is byte-compiled at sync and the
# project's own modules may cache theirs even where the shell sets PYTHONDONTWRITEBYTECODE.
unexport PYTHONDONTWRITEBYTECODE
WEBHOOKS_PORT ?= 8780

.PHONY: install demo test lint docs bench bench-transform status sandbox run airflow-demo clean-warehouse help airflow webhooks bench-freshness bench-ingest bench-gate bench-gate-incremental bench-webhooks bench-shopify reliability test-clocks

help:
	@echo "make demo   - run the whole pipeline on embedded defaults (sandbox APIs, embedded Postgres, Airflow)"
	@echo "make test   - run the whole test suite"
	@echo "make test-clocks - the date-touching tests with the clock at 2026-12-31, 2027-03-01, 2030-01-01 (CLOCK_DATES)"
	@echo "make lint   - ruff, and the import contracts (lint-imports, pyproject.toml)"
	@echo "make docs   - dbt docs as one offline HTML file (dbt_project/target/static_index.html)"
	@echo "make bench  - transform benchmark (bench/README.md)"
	@echo "make status - last runs, row counts, warehouse URL"
	@echo "make airflow - a real local Airflow (UI on localhost:$(AIRFLOW_PORT)) with the sandbox APIs"
	@echo "make airflow EXECUTOR=celery - the same on CeleryExecutor: Redis broker, two celery workers"
	@echo "make webhooks - the partner webhook receiver (notifies the local Airflow)"
	@echo "make reliability - fault campaign (RELIABILITY_RUNS=N, default 200; RELIABILITY_JOBS=2 at a time; docs/reliability.md)"
	@echo "make bench-freshness - p50/p95 webhook-to-published latency through a real scheduler (empty, 100k, 1M orders; SIZES=, SAMPLES=)"
	@echo "make bench-webhooks - answer latency of a signed webhook with 300 idle connections held (3 rounds)"
	@echo "make bench-gate - GX + dbt checks as a share of the dbt build (100k and 1M orders)"
	@echo "make bench-gate-incremental - the gate of an incremental run as a share of that build (100k and 1M orders)"
	@echo "make bench-shopify - a 200k-order Shopify backfill: REST paging at 2 calls/s vs one bulk operation (3 rounds)"

$(UV):
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

$(VENV)/.synced-bytecode: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python 3.11 --quiet --compile-bytecode
	@touch $@

install: $(VENV)/.synced-bytecode

demo: install
	$(BIN)/alliance demo --config $(CONFIG)

test: install
	$(BIN)/lint-imports --no-cache
	bash scripts/ensure_debian_packages.sh
	timeout --kill-after=60 $(TEST_TIMEOUT) $(BIN)/pytest -q -p no:cacheprovider --durations=12 $(TEST_WORKERS)
	CLOCK_DATES=2030-01-01 timeout --kill-after=60 $(TEST_TIMEOUT) bash scripts/test_clocks.sh $(TEST_WORKERS) \
	  -m "dates and not dates_pinned"

test-clocks: install
	bash scripts/test_clocks.sh

lint: install
	$(BIN)/ruff check alliance connectors dags devstack tests bench
	$(BIN)/lint-imports --no-cache

docs: install
	$(BIN)/alliance docs --config $(CONFIG)

bench: bench-transform bench-ingest bench-freshness bench-gate bench-gate-incremental bench-webhooks

bench-transform: install
	$(BIN)/python -m bench.transform.run --orders 100000 --orders 1000000 --rounds $${ROUNDS:-3}

bench-gate-incremental: install
	$(BIN)/python -m bench.gate.incremental --orders 100000 --orders 1000000 --rounds $${ROUNDS:-3}

bench-gate: install
	$(BIN)/python -m bench.gate.run --orders 100000 --orders 1000000 --rounds $${ROUNDS:-3}

status: install
	$(BIN)/alliance status --config $(CONFIG)

sandbox: install
	$(BIN)/alliance sandbox --config $(CONFIG)

bench-ingest: install
	$(BIN)/python bench/ingest.py --orders $${ORDERS:-10000}

bench-shopify: install
	$(BIN)/python bench/shopify_backfill.py --orders $${ORDERS:-200000} --rounds $${ROUNDS:-3}

reliability: install
	$(BIN)/python tests/reliability/campaign.py --runs $${RELIABILITY_RUNS:-200}

clean-warehouse: install
	$(BIN)/alliance warehouse stop

airflow: install
	$(BIN)/alliance airflow --config $(CONFIG) --port $(AIRFLOW_PORT) --executor $(EXECUTOR)

webhooks: install
	ALLIANCE_AIRFLOW_API_URL=$${ALLIANCE_AIRFLOW_API_URL:-http://127.0.0.1:$(AIRFLOW_PORT)} \
	  $(BIN)/alliance webhooks --config $(CONFIG) --port $(WEBHOOKS_PORT)

bench-freshness: install
	$(BIN)/python bench/freshness.py --sizes $${SIZES:-0,100000,1000000} --samples $${SAMPLES:-20}

bench-webhooks: install
	$(BIN)/python bench/webhooks.py --rounds $${ROUNDS:-3}
