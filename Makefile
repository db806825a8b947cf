# triageflow — every target documented with `## ` appears in `make help`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INFRA := deploy/local/infra.sh
# Connection defaults for local infrastructure (override in the environment).
export KAFKA_BOOTSTRAP_SERVERS ?= 127.0.0.1:$(or $(TRIAGEFLOW_KAFKA_PORT),9092)
export DATABASE_URL ?= postgresql://triageflow:triageflow@127.0.0.1:$(or $(TRIAGEFLOW_PG_PORT),5432)/triageflow
export TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS ?= $(KAFKA_BOOTSTRAP_SERVERS)
export TRIAGEFLOW_DATABASE_URL ?= $(DATABASE_URL)
export TRIAGEFLOW_PYTHON := $(CURDIR)/$(BIN)/python
PYTEST_ARGS ?=

.PHONY: help
help: ## List every target
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/python: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5,<1"
	uv sync --frozen --all-extras --python $(PYTHON)
	@touch $(BIN)/python

.PHONY: install
install: $(BIN)/python ## Create .venv with the locked dependencies (uv.lock)

.PHONY: lock
lock: ## Re-resolve dependencies into uv.lock
	uv lock

.PHONY: check
check: install ## Lint, format check and type check (never rewrites)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy shared services tests

.PHONY: fmt
fmt: install ## Rewrite code: ruff format and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: infra-up
infra-up: install ## Start local Kafka (KRaft, from Maven jars; plain + SASL_SSL) and PostgreSQL (TLS on), create topics
	bash $(INFRA) up
	bash $(INFRA) up secure
	$(BIN)/triageflow topics create

.PHONY: infra-down
infra-down: ## Stop local Kafka and PostgreSQL
	bash $(INFRA) down

.PHONY: infra-status
infra-status: ## Show whether local Kafka and PostgreSQL are running
	bash $(INFRA) status

.PHONY: test-unit
test-unit: install ## Unit tests only (no servers)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: chromium
chromium: ## Install Debian's chromium if missing (the HTML report test screenshots with it)
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium from Debian's packages (apt-get)..."; \
	    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
	  else \
	    echo "chromium is missing: apt-get install chromium (its test is skipped, failed in CI)" >&2; \
	  fi; }

.PHONY: test
test: install infra-up chromium ## Everything: install, start Kafka + PostgreSQL, run all tests
	$(BIN)/pytest $(PYTEST_ARGS)

CHAOS_BROKERS ?=
.PHONY: chaos
chaos: install ## Fault injection: 5,000 tickets while services, PostgreSQL and Kafka die (CHAOS_BROKERS=1|3; bench/chaos*.json)
	$(BIN)/pytest tests/chaos -m chaos -p no:cacheprovider $(if $(filter 3,$(CHAOS_BROKERS)),-k three_brokers,$(if $(filter 1,$(CHAOS_BROKERS)),-k "not three_brokers",)) $(PYTEST_ARGS)

.PHONY: schemas
schemas: install ## Write the JSON Schema of every event under docs/schemas/
	$(BIN)/triageflow schemas --out docs/schemas

.PHONY: migrate
migrate: install ## Apply the audit store's migrations
	$(BIN)/triageflow db migrate

.PHONY: up
up: infra-up migrate ## Start infrastructure and every service in the background
	$(BIN)/triageflow up

.PHONY: down
down: ## Stop the services started by `make up`
	-$(BIN)/triageflow down

.PHONY: demo
demo: infra-up ## Main job: infrastructure, all services, 562 sample tickets, a summary
	$(BIN)/triageflow demo

.PHONY: bench-classifier
bench-classifier: install ## Banking77 train→test benchmark of the classifier backends (bench/classifier-results.md)
	nice -n 10 $(BIN)/python bench/classifier.py --folds 3 --backend local --backend hybrid

.PHONY: bench-classifier-service
bench-classifier-service: install ## Classifier service through Kafka on Banking77: tickets/s, CPU, latency (after infra-up; bench/classifier-service.md)
	$(BIN)/python bench/classifier_service.py --backend local --backend hybrid \
		--copies 1 --copies 2 --batch-max-records 500 --batch-max-records 32 \
		--dataset ../shared/datasets/banking77

.PHONY: bench
bench: install ## Pipeline throughput/latency vs a raw aiokafka chain (after infra-up; bench/results.md)
	$(BIN)/python bench/pipeline.py
