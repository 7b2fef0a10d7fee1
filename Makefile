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
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml) $(wildcard tools/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages --group dev
	@touch $@

install: $(VENV)/.installed ## create .venv with the four services, shared/ and the dev tools (embedded servers included)

lock: | $(UV) ## refresh uv.lock after changing dependencies
	$(UV) lock

run: install ## start broker, a database per service and the four services; Ctrl-C stops everything
	$(VENV)/bin/kariz-dev run

# make demo LEADS=200 CONCURRENCY=8 SEED=3; ARGS="--deals-url http://..." points it elsewhere.
LEADS ?= 300
CONCURRENCY ?= 16
SEED ?= 7
demo: install ## drive synthetic leads through the running Kariz (`make run`) and print the funnel it recorded
	KARIZ_TOKEN=$${KARIZ_TOKEN:-$$($(VENV)/bin/kariz-dev token --user demo@kariz.example --role admin)} \
	$(VENV)/bin/kariz-load --leads $(LEADS) --concurrency $(CONCURRENCY) --seed $(SEED) $(ARGS)

backends: install ## start only the embedded broker and a database per service
	$(VENV)/bin/kariz-dev backends

test: install prometheus ## every test: unit, integration (real embedded broker and database), end-to-end, operations
	$(PY) -m pytest

test-faults: install ## crashes (SIGKILL under 1,000 leads), dependency restarts, outages, poison messages
	$(PY) -m pytest -m faults

bench: install ## throughput, latency, scaling and cost against the raw ceiling; about 30 min with the defaults (README, Performance)
	$(VENV)/bin/kariz-bench $(ARGS)

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

# Root installs Debian's package directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

prometheus: ## install Prometheus and promtool from Debian's packages if missing (tests/operations needs them)
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

k8s-files: install ## regenerate dashboards, PrometheusRule and KafkaTopics under deploy/ from the code
	$(PY) deploy/generate.py

k8s: install ## render every Kubernetes overlay into .kariz-data/k8s/<overlay>.yaml
	@mkdir -p .kariz-data/k8s
	@for overlay in deploy/k8s/overlays/*/; do name=$$(basename $$overlay); \
	  $(VENV)/bin/kubectl kustomize $$overlay > .kariz-data/k8s/$$name.yaml && echo ".kariz-data/k8s/$$name.yaml"; done

clean: ## remove the virtual environment and local data
	rm -rf $(VENV) $(TOOLS) .kariz-data .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install lock run demo bench backends test test-faults test-unit lint format asyncapi dlq prometheus k8s-files k8s clean
