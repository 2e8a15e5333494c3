# The two commands of the README: `make run` and `make test`. Each creates the virtual
# environment and installs what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: run test lint typecheck unit install clean browser system-deps

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

test: system-deps lint typecheck unit

# What the tests drive besides Python: Debian's Chromium for the browser tests (never a downloaded
# browser) and SoftHSM2 for the PKCS#11 key provider. Installed with apt when missing.
SYSTEM_DEPS := /usr/bin/chromium:chromium /usr/lib/softhsm/libsofthsm2.so:softhsm2
system-deps:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  test -e "$${dep%%:*}" || missing="$$missing $${dep##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "install these packages for the full suite:$$missing"; fi; \
	fi

browser: system-deps

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
