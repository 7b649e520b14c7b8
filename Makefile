# chainrule: two commands set up everything.
#   make demo   create .venv, install chainrule, train the reference demo (runs/demo/);
#               needs only Python 3.10+ and make
#   make test   check the prerequisites (tools/preflight.py: Graphviz, Chromium), install
#               the dev extras and the explorer's runtime, run ruff, mypy and the tests
#   make docs   build the documentation site into site/ (mkdocs --strict; the explorer too)
#   make drawing  redraw docs/neuron.svg, the graph shown in the README and the guides
#   make bench  measure speed and memory against micrograd and PyTorch (bench/RESULTS.md);
#               installs the bench extras first (JAX among them: ~600 MB, not needed by tests)
#   make bench-vmap  only issue 19's section (chainrule.vmap against NumPy, PyTorch, JAX)
#   make screenshots  the explorer guide's pictures of the explorer (docs/explorer-*.png)
#   make explorer  put the explorer's browser runtime into the package with npm ci (for a
#               wheel or a site that ships it; without it, `chainrule explore` fetches the
#               runtime itself, with Python, into a per-user cache)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test preflight runtime lint typecheck pytest bench bench-vmap docs drawing explorer \
	screenshots clean

# The explorer's browser runtime: Pyodide and Viz.js from npm, at the versions pinned in
# explorer/package-lock.json, copied beside the page (src/chainrule/explorer/static/vendor).
VENDOR := src/chainrule/explorer/static/vendor
PYODIDE_FILES := pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json

explorer: $(VENDOR)/.installed

$(VENDOR)/.installed: explorer/package.json explorer/package-lock.json
	cd explorer && npm ci --no-audit --no-fund --loglevel=error
	rm -rf $(VENDOR)
	mkdir -p $(VENDOR)/pyodide $(VENDOR)/viz
	cd explorer/node_modules/pyodide && cp $(PYODIDE_FILES) README.md ../../../$(VENDOR)/pyodide/
	cp explorer/node_modules/@viz-js/viz/dist/viz.js explorer/node_modules/@viz-js/viz/README.md $(VENDOR)/viz/
	@touch $@

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

# The prerequisites first, before anything is installed or run.
test: preflight
	@$(MAKE) --no-print-directory lint typecheck pytest

preflight:
	@$(PYTHON) tools/preflight.py

# The browser tests need the explorer's runtime: from static/vendor if `make explorer`
# put it there, else fetched by Python from the npm registry into the per-user cache.
runtime: $(VENV)/.installed-dev
	$(BIN)/chainrule explore --fetch

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples bench tools
	$(BIN)/ruff format --check src tests examples bench tools

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev runtime
	$(BIN)/python -m pytest -n auto

# The benchmarks' extras too (bench in pyproject.toml: JAX for issue 19's anchor), never
# the dev extras' business: `make test` does not need them.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

bench: $(VENV)/.installed-bench runtime
	$(BIN)/python bench/run.py --rounds 3 --write bench/RESULTS.md
	$(BIN)/python bench/explorer.py --rounds 5 --write bench/RESULTS.md

# Issue 19's section of bench/RESULTS.md alone, in a few minutes.
bench-vmap: $(VENV)/.installed-bench
	$(BIN)/python bench/run.py --rounds 3 --only vmap --write bench/RESULTS.md

# The explorer guide's pictures (docs/explorer.md), both views at 1280x800 (needs Chromium).
screenshots: $(VENV)/.installed-dev runtime
	$(BIN)/python bench/explorer.py --rounds 1 --screenshots docs

# The drawing in the README and the guides: the lecture's tanh neuron after backward().
drawing: $(VENV)/.installed
	$(BIN)/chainrule graph "tanh(x1*w1 + x2*w2 + b)" \
		--at x1=2,x2=0,w1=-3,w2=1,b=6.8813735870195432 -o docs/neuron.svg

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[docs]'
	@touch $@ $(VENV)/.installed

# The documentation site (mkdocs.yml, docs/): guides and the API reference from the
# docstrings, built with --strict into site/, and the explorer as a static page beside
# them (site/explorer/), so the whole folder can be published on any static host.
docs: $(VENV)/.installed-docs
	$(BIN)/mkdocs build --strict --site-dir site
	$(BIN)/chainrule explore --fetch
	$(BIN)/chainrule explore --site site/explorer

clean:
	rm -rf $(VENV) $(VENDOR) explorer/node_modules build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
