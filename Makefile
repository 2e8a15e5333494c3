# The two commands of the README: `make run` and `make test`. Each creates the virtual
# environment and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test lint typecheck unit install clean browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hdsapp needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/hdsapp demo
	$(BIN)/hdsapp run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The audit library is what an outside auditor runs: every branch of it is tested.
unit: $(STAMP)
	$(BIN)/pytest --cov=audit --cov-branch --cov-report=term-missing:skip-covered --cov-fail-under=100

test: lint typecheck unit

# The browser tests (tests/web, marker `browser`) drive Debian's Chromium, never a downloaded one.
browser:
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
