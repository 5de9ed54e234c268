# One entry point for a fresh machine: `make test` and `make demo` create .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint typecheck unit demo schema bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@echo "installing the project and its tools into $(VENV) (pip's output: $(VENV)/pip.log)"
	@$(BIN)/python -m pip install --quiet --upgrade pip > $(VENV)/pip.log 2>&1 \
	  || { cat $(VENV)/pip.log; exit 1; }
	@$(BIN)/python -m pip install --quiet -e '.[dev]' >> $(VENV)/pip.log 2>&1 \
	  || { cat $(VENV)/pip.log; exit 1; }
	touch $(STAMP)

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

# The whole gateway against a simulated printer and the reference API, in a temp dir.
# Headless: make demo DEMO_ARGS="--duration 60"
demo: $(STAMP)
	$(BIN)/printer-gateway demo $(DEMO_ARGS)

# Benchmarks print figures and ratios against a baseline measured in the same run.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks.uplink
	$(BIN)/python -m benchmarks.control
	$(BIN)/python -m benchmarks.backlog
	$(BIN)/python -m benchmarks.footprint
	$(BIN)/python -m benchmarks.webapp
	$(BIN)/python -m benchmarks.mqtt
	$(BIN)/python -m benchmarks.estimate

schema: $(STAMP)
	$(BIN)/python -m console.schema > docs/records.schema.json
	$(BIN)/python -m console.openapi > docs/openapi.json
	$(BIN)/python -m console.config_doc --write docs/configuration.md

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
