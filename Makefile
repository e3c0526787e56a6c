# make demo   set up (idempotent), then run the whole demo (local Kafka, topics, workers, scan service)
# make test   set up, then the whole test suite; the tests start their own Kafka broker and PostgreSQL
# make broker-up / broker-down / broker-status   the local single-node Kafka (KRaft) alone
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
OCOP := $(VENV)/bin/ocop-trace
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit broker-up broker-down broker-status

setup:
	@scripts/setup.sh

demo: setup
	@if $(OCOP) demo --help >/dev/null 2>&1; then \
	  $(OCOP) demo; \
	else \
	  $(OCOP) broker up && $(OCOP) topics create; \
	fi

test: setup
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests

test-unit: setup
	$(VENV)/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests/unit

broker-up: setup
	@$(OCOP) broker up

broker-down:
	@$(OCOP) broker down

broker-status:
	@$(OCOP) broker status
