# The verbs README.md and .ci/run use. Everything installs into .venv; nothing needs Docker.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PKGS := core channels ingress dispatcher control sources nerve

.PHONY: help install up lint typecheck check test test-fast kafka-fetch kafka nats bench clean

help:
	@echo "make up         run Nerve embedded (in-memory backend), installing first"
	@echo "make test       the whole suite: unit, contract, integration, e2e, real Kafka and NATS"
	@echo "make check      lint + typecheck"
	@echo "make kafka      a local single-node Kafka (KRaft) in the foreground"
	@echo "make sdk-fetch  install the pinned CloudEvents JS and Go SDKs for tests/interop (cached outside the repo)"
	@echo "make nats       a local nats-server with JetStream in the foreground"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

up: install
	$(BIN)/nerve up $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

check: lint typecheck

# Fetch the pinned Apache Kafka jars from Maven Central into the cache (outside the repo) ahead of the
# tests, so no test spends its timeout on a download.
kafka-fetch: install
	$(BIN)/python scripts/kafka_local.py fetch

# The official CloudEvents SDKs (npm, Go modules) for tests/interop, pinned, into ~/.cache/nerve/sdk.
.PHONY: sdk-fetch
sdk-fetch: install
	$(BIN)/python scripts/sdks.py fetch

test: install kafka-fetch sdk-fetch
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

kafka: kafka-fetch
	$(BIN)/python scripts/kafka_local.py run

nats: install
	$(BIN)/python scripts/nats_local.py run

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
