# The two commands of the README: `make demo` and `make test`. Everything else is a step of them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/techbot
export TECHBOT_CACHE_DIR := $(CACHE)
# The PostgreSQL tests use the server on this machine when it answers (CI's case).
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test setup venv rasa model catalogs messages emulator browser loadbalancer lint typecheck clean

# The demo itself needs no Node.js; the emulator is for the benchmarks the README names after it.
demo: setup model
	@scripts/emulator-install.sh || echo "(skipped the Telegram emulator: install Node.js, then" \
	  "run make emulator before the benchmarks)" >&2
	$(BIN)/techbot db upgrade >/dev/null
	$(BIN)/techbot seed demo
	$(BIN)/techbot demo

test: setup model emulator browser loadbalancer
	@if [ -z "$$TECHBOT_TEST_DATABASE_URL" ] && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then \
	  export TECHBOT_TEST_DATABASE_URL=$(PG_TEST_URL); fi; \
	$(BIN)/ruff check . && $(BIN)/mypy && \
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

setup: venv rasa catalogs

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 not found: install it or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

rasa:
	@scripts/rasa-env.sh

model: venv rasa
	$(BIN)/techbot nlu train

catalogs: venv
	$(BIN)/pybabel compile -d locales -D messages

# After adding or changing a t("...") text: re-extract the template and add the new messages to
# every catalog (untranslated until a translator fills them; tests/test_catalogs.py says which).
messages: venv
	$(BIN)/pybabel -q extract -F babel.cfg -k t -k plural:1,2 --no-location --sort-output --no-wrap \
	  -o locales/messages.pot .
	$(BIN)/pybabel -q update -i locales/messages.pot -d locales -D messages --no-wrap \
	  --ignore-obsolete --no-fuzzy-matching

emulator:
	@scripts/emulator-install.sh

# Debian's Chromium for the agent console's browser test (Playwright downloads no browser here).
browser:
	@scripts/browser-install.sh

# Debian's HAProxy for the replicas test: three `techbot run` behind one address.
loadbalancer:
	@scripts/loadbalancer-install.sh

lint:
	$(BIN)/ruff check .
typecheck:
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .rasa-venv .data nlu/models .mypy_cache .pytest_cache .ruff_cache
