# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: install run test test-fast lint format bench soak clean chromium

$(STAMP): requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

## The example site with the dashboard and a job worker, on the embedded database (or $DATABASE_URL).
run: $(STAMP)
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py setupdemo
	@echo ""
	@echo "  Dashboard: http://127.0.0.1:$(PORT)/msp/jobs/   Admin: http://127.0.0.1:$(PORT)/admin/"
	@echo "  Login: admin / admin (all tenants)   acme-admin / acme (tenant Acme)   globex-admin / globex"
	@echo ""
	@trap 'kill $$WORKER 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runjobworker & WORKER=$$!; \
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

## The whole suite against a real PostgreSQL (embedded unless $DATABASE_URL) and a real Temporal dev server.
test: $(STAMP) chromium
	$(BIN)/ruff check --quiet .
	JOBSCHEDULER_DATA_DIR=$${JOBSCHEDULER_DATA_DIR:-.testdata} $(BIN)/python -m pytest $(PYTEST_ARGS)

## The soak, not in CI: mixed workload and periodic faults for SOAK_MINUTES (default 30), reports as it runs.
soak: $(STAMP)
	JOBSCHEDULER_DATA_DIR=$${JOBSCHEDULER_DATA_DIR:-.testdata} $(BIN)/python -m pytest -s -q -p no:randomly tests/acceptance/soak.py

## Debian's Chromium for the browser tests (tests/dashboard/test_browser.py), installed only when missing.
chromium:
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Ours and every peer on a throw-away PostgreSQL 15, one table with ratios (docs/performance.md).
## The peers run in their own virtualenv, .bench-venv, which the bench builds from bench/peers/requirements.txt.
## BENCH_SMOKE=1 for a run of a few minutes; BENCH_PEERS="pgqueuer chancy" to choose peers.
bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf .testdata .pytest_cache
