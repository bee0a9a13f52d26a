# Quick start (fresh machine): `make run` runs the main job, `make test` runs the tests.
# Both create .venv and install liqnet with its dependencies on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU build available offline here; `torch>=2.2` in the
# project's dependencies is then already satisfied.
TORCH ?= torch==2.13.0

.PHONY: setup run test bench lint typecheck

$(BIN)/liqnet: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(BIN)/liqnet

setup: $(BIN)/liqnet

# The main job: a built-in scenario and its contagion report (the report runs its twin).
run: setup
	$(BIN)/liqnet run flash_crash --out runs/flash_crash
	$(BIN)/liqnet analyze runs/flash_crash

# The suite, after the checks CI holds the code to: ruff (lint and format) and mypy.
test: lint typecheck
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/world_throughput.py

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# mypy cannot follow setuptools' package-dir mapping through the editable install, so it
# checks a tree of links laid out as the installed package (build/typecheck/liqnet/...).
TYPECHECK := build/typecheck
typecheck: setup
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)/liqnet
	for d in core market protocols agents scenarios analysis; do ln -s "$(CURDIR)/$$d" $(TYPECHECK)/liqnet/$$d; done
	cp core/_root/__init__.py $(TYPECHECK)/liqnet/__init__.py
	cd $(TYPECHECK) && "$(CURDIR)/$(BIN)/mypy" --config-file "$(CURDIR)/pyproject.toml" -p liqnet
