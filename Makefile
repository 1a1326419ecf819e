# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test install dev lint typecheck bench migrate seed clean test-postgres screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/billing-portal migrate
	$(BIN)/billing-portal seed-demo
	$(BIN)/billing-portal serve

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's chromium for the browser tests..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): run 'sudo apt-get install chromium'."; exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check app tests migrations
	$(BIN)/ruff format --check app tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy app

test: $(STAMP) chromium lint typecheck
	$(BIN)/pytest

# Every page at 1280 and 375 px, light and dark, into screenshots/ (tests/e2e/test_screenshots.py).
screenshots: $(STAMP) chromium
	rm -rf screenshots
	SCREENSHOTS_DIR=$(CURDIR)/screenshots $(BIN)/pytest -q tests/e2e/test_screenshots.py
	@echo "Screenshots in screenshots/ ($$(ls screenshots | wc -l) files)"

test-postgres: $(STAMP)
	$(BIN)/pytest -m db

bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "make bench needs wrk: run 'sudo apt-get install wrk'."; exit 1; fi; \
	fi
	$(BIN)/python -m tests.perf $(BENCH_ARGS)
	@# Without BENCH_ARGS: then the usage API on PostgreSQL with two workers (issue 18's targets).
	@if [ -z "$(BENCH_ARGS)" ]; then \
	  if [ -n "$$TEST_DATABASE_URL" ]; then \
	    $(BIN)/python -m tests.perf --database postgresql --only api --workers 2; \
	  else echo "PostgreSQL part skipped: set TEST_DATABASE_URL=postgresql+asyncpg://... to run it"; fi; \
	fi

clean:
	rm -rf $(VENV) var .pytest_cache
