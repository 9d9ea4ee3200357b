# streambill developer commands. Every target does its own set-up on a fresh machine
# (Debian, as root): system packages, the .venv, the Kafka jars. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KAFKA_VERSION := 4.1.1
KAFKA_LIBS ?= $(HOME)/.cache/streambill/kafka-$(KAFKA_VERSION)/libs
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PYTEST_ARGS ?= --timeout=300

# `make test` and `make demo` talk only to the services `streambill services up` starts
# here (state in .state/, ports below), whatever STREAMBILL_* the caller's shell has.
KAFKA_PORT ?= 19092
KAFKA_CONTROLLER_PORT ?= 19093
REDIS_PORT ?= 16379
LOCAL := STREAMBILL_KAFKA_LIBS_DIR=$(KAFKA_LIBS) \
	STREAMBILL_KAFKA_PORT=$(KAFKA_PORT) \
	STREAMBILL_KAFKA_CONTROLLER_PORT=$(KAFKA_CONTROLLER_PORT) \
	STREAMBILL_REDIS_PORT=$(REDIS_PORT) \
	STREAMBILL_BOOTSTRAP_SERVERS=127.0.0.1:$(KAFKA_PORT) \
	STREAMBILL_REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0
STREAMBILL := $(LOCAL) $(BIN)/streambill

.PHONY: help setup system-packages lint test chaos demo down

help:
	@echo "make demo   set up, start Kafka + Redis, run the whole product once (streambill demo), stop"
	@echo "            KEEP=1 keeps services and demo processes running; DEMO_ARGS='--events 50000'"
	@echo "make test   set up, lint, start services, run the whole test suite, stop services"
	@echo "make chaos  only the chaos suite (its own Kafka and Redis; STREAMBILL_CHAOS_* size it)"
	@echo "make setup  system packages, .venv with streambill[dev], Kafka $(KAFKA_VERSION) jars and tools"
	@echo "make lint   ruff check + mypy (the same command CI runs)"
	@echo "make down   stop the services started by 'streambill services up'"

# The jars are resolved again whenever services/kafka/pom.xml is newer than the stamp,
# so a libs directory from before a dependency joined the pom (kafka-tools) is completed.
KAFKA_JARS := $(KAFKA_LIBS)/.resolved
setup: system-packages $(VENV)/.installed $(KAFKA_JARS)

# Debian packages, installed only when a command is missing (so a second run is quick).
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

$(KAFKA_JARS): services/kafka/pom.xml
	mvn -q -B -f services/kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(KAFKA_LIBS)
	@test -f $(KAFKA_LIBS)/kafka-tools-$(KAFKA_VERSION).jar
	@touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy

# Services come down whatever happens (trap); pytest's exit code is the result, and
# pytest's "no tests collected" (5) counts as a failure, never as a pass.
test: setup lint
	@trap '$(STREAMBILL) services down' EXIT; \
	$(STREAMBILL) services up || exit 1; \
	status=0; $(LOCAL) $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: that is a failure"; exit 1; fi; \
	exit $$status

# The services come down again at the end (trap) unless KEEP=1, which also keeps the
# demo's worker, projector and API running. DEMO_ARGS go to `streambill demo`.
# The chaos suite starts, kills and flushes its own Kafka and Redis (ports 49092/49093
# and 46379 unless STREAMBILL_CHAOS_*_PORT say otherwise); `make test` runs it too.
chaos: setup
	$(LOCAL) $(BIN)/pytest $(PYTEST_ARGS) tests/chaos

demo: setup
	@trap '[ -n "$(KEEP)" ] || { echo "== streambill services down"; $(STREAMBILL) services down; }' EXIT; \
	echo "== streambill services up"; $(STREAMBILL) services up || exit 1; \
	echo "== streambill topics create"; $(STREAMBILL) topics create || exit 1; \
	echo "== streambill demo $(if $(KEEP),--keep )$(DEMO_ARGS)"; \
	$(STREAMBILL) demo $(if $(KEEP),--keep) $(DEMO_ARGS)

down:
	@if [ -x $(BIN)/streambill ]; then $(STREAMBILL) services down; fi
