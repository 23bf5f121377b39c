# gateway-chaos: every target does its own setup when it is missing, and only then.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SCENARIO ?= backend-crash
ARGS ?=

.PHONY: help venv setup browser chaos matrix scorecard test test-fast test-integration library test-gateways lint bench clean schema

help:
	@echo "make chaos SCENARIO=backend-crash   run scenarios/<name>.yaml (ARGS='--set k=v' to override)"
	@echo "make matrix                          the whole library on every gateway profile (chaos matrix; ARGS='--id ID' resumes)"
	@echo "make scorecard                       the README scorecard table of reports/matrix-latest"
	@echo "make test                           all tests: unit, integration, Docker (sets everything up)"
	@echo "make test-fast                      tests/unit only: pure and fast, no Docker"
	@echo "make test-integration               tests/integration: local processes on 127.0.0.1, no Docker"
	@echo "make test-gateways                   the LLM gateway profiles in detail (CI only starts and routes them)"
	@echo "make library                         the whole scenario library, every LLM scenario too (CI runs 3 of them)"
	@echo "make setup | lint | clean"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

setup: $(STAMP)
	$(BIN)/chaos setup

# make exits 2 for any failed recipe, whatever chaos run's own code was (1 FAIL, 2 bad
# input, 3 environment, 4 inconclusive); the line below says which it was. CI that gates
# on the verdict calls `chaos run` itself (docs/ci/).
chaos: setup
	@$(BIN)/chaos run scenarios/$(SCENARIO).yaml $(ARGS) || { code=$$?; \
	  echo "make chaos: chaos run exited $$code (make reports any failure as 2; gate CI on chaos run's own exit code)" >&2; \
	  exit $$code; }

# The whole library on every profile under docker/gateways/ (hours; resumable: ARGS='--id
# ID' skips the cells already done with the same inputs). chaos matrix exits 0 when every
# cell ran, whatever the verdicts: a matrix is a report, not a gate.
matrix: setup
	$(BIN)/chaos matrix $(ARGS)

scorecard: $(STAMP)
	@$(BIN)/chaos matrix --markdown $(or $(ID),latest)

# Debian's chromium renders report.html in the browser tests (Playwright drives it; no
# browser download). Installed only when missing, and only where apt-get can (root).
browser:
	@test -x /usr/bin/chromium || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  { echo "install Debian's chromium for the report browser tests"; exit 1; }

test: setup browser
	$(BIN)/pytest -q --durations=25

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not docker" tests/unit

test-integration: $(STAMP)
	$(BIN)/pytest -q tests/integration

# The scenario library against the reference gateway, each scenario and its mutant, the
# whole LLM library included (CI and `make test` run a representative 3 of scenarios/llm-*).
library: setup
	CHAOS_FULL_LIBRARY=1 $(BIN)/pytest -q tests/docker/test_library.py

# The LLM gateway profiles' behaviour in detail (LiteLLM, Portkey: retries, fallbacks and
# timeouts per error class, against the llm-provider's journal); CI only starts and routes them.
test-gateways: setup
	CHAOS_GATEWAY_DETAILS=1 $(BIN)/pytest -q tests/docker/test_litellm_profile.py tests/docker/test_portkey_profile.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_proxy
	$(BIN)/python -m benchmarks.bench_load

schema: $(STAMP)
	$(BIN)/chaos schema > schemas/scenario.schema.json
	$(BIN)/python -m chaos.matrix.store > schemas/matrix.schema.json

lint: $(STAMP)
	$(BIN)/ruff check chaos tests docker benchmarks
	$(BIN)/mypy chaos

clean:
	-@test -x $(BIN)/chaos && $(BIN)/chaos doctor --sweep
	rm -rf reports/*/ reports/*-latest .pytest_cache .mypy_cache .ruff_cache .hypothesis
