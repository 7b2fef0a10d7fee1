# Kariz: everyday commands. `make run` starts everything; `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.9
VENV := .venv
PY := $(VENV)/bin/python
export UV_PYTHON ?= 3.11
export UV_LINK_MODE ?= copy

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard tools/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages --group dev
	@touch $@

install: $(VENV)/.installed ## create .venv with the four services, shared/ and the dev tools (embedded servers included)

lock: | $(UV) ## refresh uv.lock after changing dependencies
	$(UV) lock

run: install ## start broker, database and the four services; Ctrl-C stops everything
	$(VENV)/bin/kariz-dev run

backends: install ## start only the embedded broker and database
	$(VENV)/bin/kariz-dev backends

test: install ## every test: unit, integration (real embedded broker and database) and end-to-end
	$(PY) -m pytest

test-unit: install ## unit tests only (no servers)
	$(PY) -m pytest -m "not integration and not e2e"

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy shared/src services/*/src tools/*/src

format: install ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

asyncapi: install ## regenerate docs/asyncapi/<service>.json and docs/events/<topic>.schema.json from the code
	$(VENV)/bin/kariz-asyncapi --out docs/asyncapi --events-out docs/events

# Against the dev stack (no KARIZ_KAFKA_BOOTSTRAP_SERVERS) the embedded broker cannot produce idempotently.
dlq: install ## list dead letters; make dlq ARGS="replay --topic T.dlq --offset P:N" replays (see README)
	@if [ -z "$$KARIZ_KAFKA_BOOTSTRAP_SERVERS" ]; then \
		export KARIZ_KAFKA_ENABLE_IDEMPOTENCE=$${KARIZ_KAFKA_ENABLE_IDEMPOTENCE:-false}; fi; \
	$(VENV)/bin/kariz-dlq $(or $(ARGS),list)

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) $(TOOLS) .kariz-data .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install lock run backends test test-unit lint format asyncapi dlq clean
