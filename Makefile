# chainrule: two commands set up everything.
#   make demo   create .venv, install chainrule, train the reference demo (runs/demo/)
#   make test   install the dev extras, run ruff, mypy and the whole test suite
#   make docs   redraw docs/neuron.svg, the graph shown in the README
#   make bench  measure speed and memory against micrograd and PyTorch (bench/RESULTS.md)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck pytest bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/chainrule demo

test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n auto

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py --rounds 3 --write bench/RESULTS.md

# The drawing in the README: the lecture's tanh neuron after backward().
docs: $(VENV)/.installed
	$(BIN)/chainrule graph "tanh(x1*w1 + x2*w2 + b)" \
		--at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432 -o docs/neuron.svg

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
