# Every target bootstraps .venv itself; running one twice installs nothing the second time.
#
# TORCH_SPEC picks the torch build, installed before the package so that pip keeps it:
#   make test TORCH_SPEC="torch==2.13.0"                                   (default; from PyPI on Linux a CUDA build)
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"     (the CPU build)
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu126"   (a CUDA build)
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-all bench docs lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev,ray]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rl_plasticity.demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -m ""

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

docs: $(STAMP)
	$(BIN)/python -m rl_plasticity.reference

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV)
