# One command each: `make preview STACK=prod` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
FORMAT ?= text
APT_PACKAGES := $(shell grep -v '^\#' .ci/apt-packages.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-tools system-packages preview preview-all lint typecheck unit integration system test clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3.11 -m venv $(VENV) 2>/dev/null || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $@

# checkov pins dependencies that clash with Pulumi's, so it gets a virtualenv of its own.
.venv-checkov/.installed:
	python3.11 -m venv .venv-checkov 2>/dev/null || python3 -m venv .venv-checkov
	.venv-checkov/bin/pip install -q --upgrade pip
	.venv-checkov/bin/pip install -q checkov==3.3.30
	touch $@

setup: $(VENV)/.installed

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

preview: setup
	$(PY) -m tools.preview --stack $(STACK) --format $(FORMAT)

preview-all: setup
	$(PY) -m tools.preview --stack dev --stack staging --stack prod --format $(FORMAT)

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy .

unit: setup-tools system-packages
	$(VENV)/bin/pytest -q -n 2 -m "not integration and not system" tests

integration: setup system-packages
	$(VENV)/bin/pytest -q -m integration tests/integration

# The VMs' whole user data booted in Debian system containers (tests/system/README.md). Needs
# root (namespaces, overlay mounts, nspawn); the Debian root is cached under
# /var/cache/platform-infra between runs.
SYSTEM_PYTEST := $(SUDO) env CI=$${CI:-} PLATFORM_INFRA_SYSTEM_ORDERS=$${PLATFORM_INFRA_SYSTEM_ORDERS:-together} \
	$(VENV)/bin/pytest -q -p no:cacheprovider -m system tests/system

system: setup system-packages
	$(SYSTEM_PYTEST)

# Everything CI runs: lint, types, then every test (integration ones start real servers).
test: lint typecheck setup-tools system-packages
	$(VENV)/bin/pytest -q -n 2 -m "not integration and not system" tests
	$(VENV)/bin/pytest -q -m integration tests/integration
	$(SYSTEM_PYTEST)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
