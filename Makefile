# One command each: `make preview STACK=prod` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
FORMAT ?= text
APT_PACKAGES := $(shell grep -v '^\#' .ci/apt-packages.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-runtime setup-tools system-packages preview preview-all lint typecheck unit integration test lock clean

# Dependencies come from uv.lock (pyproject.toml says what; `make lock` refreshes the lock).
# uv is taken from PATH, or installed once from PyPI into .uv/ (pip, no other download).
# Everything the set-up prints goes to stderr, so `make preview FORMAT=json` prints JSON only.
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.uv/bin/uv)
# `make test PYTHON=3.13` picks the interpreter (any uv finds: PATH, pyenv, ...).
PYTHON ?=
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet $(if $(PYTHON),--python $(PYTHON))

.uv/bin/uv:
	@python3 -m venv .uv >&2 && .uv/bin/pip install -q uv==$(UV_VERSION) >&2

# The preview needs the runtime only (the program's own dependencies: what `pulumi up` installs).
$(VENV)/.runtime: pyproject.toml uv.lock | $(UV)
	@$(UV_SYNC) --inexact >&2
	@touch $@

# The tests add the `test` group: pytest, ruff, mypy, the validators and the real clients.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	@$(UV_SYNC) --group test >&2
	@touch $(VENV)/.runtime $@

lock: | $(UV)
	$(UV) lock
	$(UV) export --frozen --no-hashes --no-dev --format requirements-txt --quiet -o requirements.txt

# checkov pins dependencies that clash with Pulumi's, so it gets a virtualenv of its own.
.venv-checkov/.installed: | $(UV)
	$(UV) venv --quiet $(if $(PYTHON),--python $(PYTHON)) .venv-checkov
	VIRTUAL_ENV=.venv-checkov $(UV) pip install --quiet checkov==3.3.30
	touch $@

setup: $(VENV)/.installed

setup-runtime: $(VENV)/.runtime

setup-tools: setup .venv-checkov/.installed

# The integration tests start the real servers. A policy-rc.d keeps Debian from starting them
# as system services on install (the tests start their own on loopback).
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  created=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
	    $(SUDO) chmod +x /usr/sbin/policy-rc.d; created=1; fi; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing >/dev/null; status=$$?; \
	  [ -z "$$created" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; \
	  exit $$status; \
	fi

preview: setup-runtime
	@$(PY) -m tools.preview --stack $(STACK) --format $(FORMAT)

preview-all: setup-runtime
	@$(PY) -m tools.preview --all --format $(FORMAT)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: setup
	$(VENV)/bin/mypy .

unit: setup-tools system-packages
	$(VENV)/bin/pytest -q -n 2 -m "not integration" tests

integration: setup system-packages
	$(VENV)/bin/pytest -q -m integration tests/integration

# Everything CI runs: lint, types, then every test (integration ones start real servers).
test: lint typecheck setup-tools system-packages
	$(VENV)/bin/pytest -q -n 2 -m "not integration" tests
	$(VENV)/bin/pytest -q -m integration tests/integration

clean:
	rm -rf $(VENV) .uv .pytest_cache .mypy_cache .ruff_cache
