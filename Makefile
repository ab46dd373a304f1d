# `make run` starts DataMate on this machine; `make test` runs the test suite.
PYTHON ?= $(shell python3.11 -c pass >/dev/null 2>&1 && echo python3.11 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install run test lint bundle bundle-check clean

install: $(VENV)/.installed

# Reinstalls only when requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/pip || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	touch $@

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py up

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The designer (frontend/) is built into static/designer/, which is committed: `make run`
# needs no Node. Both targets install exactly the lockfile's packages.
bundle:
	cd frontend && npm ci --no-audit --no-fund && npm run build

# Fails if static/designer/ differs from a fresh build of frontend/ (CI runs it).
bundle-check:
	frontend/check-bundle.sh

clean:
	rm -rf $(VENV) var
