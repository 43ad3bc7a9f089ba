# tenantcard: `make demo` runs the whole scenario, `make test` runs every check. Both set themselves up.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
SYSSTAMP := .run/.system-installed

.PHONY: demo test lint typecheck unit bench setup system services-start services-stop clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# System packages (PostgreSQL, SoftHSM2, pcscd + vsmartcard-vpcd, OpenSC, clang + wasm-ld); installs only what is missing.
system: $(SYSSTAMP)

$(SYSSTAMP): scripts/system-packages
	scripts/system-packages
	mkdir -p .run && touch $(SYSSTAMP)

demo: setup system
	$(BIN)/tenantcard demo --json .run/demo-trace.json

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: setup
	$(BIN)/mypy

services-start: system
	scripts/services start

services-stop:
	scripts/services stop

# Lint, types, then the whole suite against real PostgreSQL, SoftHSM2 and pcscd (started here if not running).
test: setup system lint typecheck
	scripts/services start
	scripts/run-pytest; rc=$$?; scripts/services stop-own; exit $$rc

bench: setup system
	bench/run

clean:
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
