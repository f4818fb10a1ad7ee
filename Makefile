# The two commands a new user types:
#   make run    set up what is missing, then open the workstation on a demo project
#   make test   set up what is missing, then run the whole test suite
# Both are idempotent: the second time they reuse what exists and start in seconds.

SHELL := /bin/bash
VENV ?= .venv
DEMO ?= demo-project
PYTEST_ARGS ?=

.PHONY: run test setup venv engine image models test-tools bundle lint clean help

help:
	@echo "make run     set up (virtualenv, container engine, base image, models) and open the TUI on $(DEMO)/"
	@echo "make test    set up the same, then run the test suite"
	@echo "make bundle  build the offline bundle for an air-gapped laptop"

run: setup
	@[ -d $(DEMO)/workspace ] || { $(VENV)/bin/workbench init $(DEMO) >/dev/null && cp packaging/demo/* $(DEMO)/workspace/; }
	$(VENV)/bin/workbench $(DEMO)

test: setup test-tools
	CI=$${CI:-} $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup: venv engine image models

venv:
	@bash packaging/setup-venv.sh

engine:
	@bash packaging/setup-engine.sh

image: venv engine
	@$(VENV)/bin/workbench setup

models: venv
	@if [ -f packaging/embedding-model.sh ]; then bash packaging/embedding-model.sh; fi

test-tools:
	@bash packaging/setup-test-tools.sh

bundle: setup
	@bash packaging/build-bundle.sh

lint:
	$(VENV)/bin/ruff check workbench tests bench

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache
