# Single entry point of the project. `make help` lists the targets.
#   make book            install (if needed), execute every notebook on PROFILE, build HTML
#   make test            install (if needed), run the test suite
# Outputs are file-based: a notebook re-runs only when its source, its profile or
# the package changed; the HTML is rebuilt only when an executed notebook or a
# page changed.

PROFILE ?= default
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

NOTEBOOKS := $(basename $(notdir $(wildcard book/[0-9][0-9]-*.md)))
EXECUTED := $(patsubst %,_build/executed/$(PROFILE)/%.ipynb,$(NOTEBOOKS))
PACKAGE := $(shell find kernels -name '*.py' 2>/dev/null)
PAGES := $(filter-out $(wildcard book/[0-9][0-9]-*.md),$(wildcard book/*.md)) book/references.bib
HTML_STAMP := _build/html/.built-$(PROFILE)

.PHONY: help install notebooks book test site-test sweep lint bench env clean distclean
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  PROFILE=ci|default|paper|paper-smoke selects the parameter profile (now: $(PROFILE))"

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	touch $@

install: $(INSTALLED)  ## create .venv and install the pinned dependencies and the package

test: $(INSTALLED)  ## run the test suite
	$(VENV)/bin/ruff check kernels tests tools benchmarks book/_ext
	$(PY) -m pytest

site-test: $(HTML_STAMP)  ## build the site, then check links, offline use and every page in Chromium
	KERNELS_REQUIRE_SITE=1 $(PY) -m pytest tests/test_site.py -m site

lint: $(INSTALLED)  ## ruff on the package, tests, tools and benchmarks
	$(VENV)/bin/ruff check kernels tests tools benchmarks book/_ext

_build/executed/$(PROFILE)/%.ipynb: book/%.md book/params/$(PROFILE).yml $(PACKAGE) $(INSTALLED) tools/run_notebook.py
	$(PY) tools/run_notebook.py $< --profile $(PROFILE) --output $@

# Later chapters read the surrogates that chapter 03 saves (or its cached data and models).
_build/executed/$(PROFILE)/04-kernel-emergence.ipynb: _build/executed/$(PROFILE)/03-surrogate-training.ipynb
_build/executed/$(PROFILE)/05-prior-artifacts.ipynb: _build/executed/$(PROFILE)/03-surrogate-training.ipynb
_build/executed/$(PROFILE)/06-derivative-training.ipynb: _build/executed/$(PROFILE)/03-surrogate-training.ipynb
_build/executed/$(PROFILE)/06-derivative-training.ipynb: _build/executed/$(PROFILE)/05-prior-artifacts.ipynb
_build/executed/$(PROFILE)/08-inversion.ipynb: _build/executed/$(PROFILE)/03-surrogate-training.ipynb
# ... the decorrelated surrogate that chapter 05 saves and the derivative-informed one of 06.
_build/executed/$(PROFILE)/08-inversion.ipynb: _build/executed/$(PROFILE)/05-prior-artifacts.ipynb
_build/executed/$(PROFILE)/08-inversion.ipynb: _build/executed/$(PROFILE)/06-derivative-training.ipynb
_build/executed/$(PROFILE)/09-real-earth.ipynb: _build/executed/$(PROFILE)/03-surrogate-training.ipynb
_build/executed/$(PROFILE)/09-real-earth.ipynb: _build/executed/$(PROFILE)/06-derivative-training.ipynb

# Parameter sweeps (tools/sweep.py): one summary table per sweep and profile.
SWEEPS := training-size width
SWEEP_TABLES := $(patsubst %,_build/sweeps/$(PROFILE)/%/summary.csv,$(SWEEPS))

_build/sweeps/$(PROFILE)/%/summary.csv: book/sweeps/emergence-point.md book/sweeps/sweeps.yml book/params/$(PROFILE).yml tools/sweep.py $(PACKAGE) $(INSTALLED)
	$(PY) tools/sweep.py $* --profile $(PROFILE)

sweep: $(SWEEP_TABLES)  ## run the parameter sweeps of PROFILE (papermill, resumable)

_build/executed/$(PROFILE)/07-sweeps.ipynb: $(SWEEP_TABLES)

# The back-matter pages read what every chapter wrote.
CHAPTERS := $(filter-out %/90-summary.ipynb %/91-reproducing.ipynb,$(EXECUTED))
_build/executed/$(PROFILE)/90-summary.ipynb: $(CHAPTERS)
_build/executed/$(PROFILE)/91-reproducing.ipynb: $(CHAPTERS)

$(HTML_STAMP): $(EXECUTED) $(PAGES) _config.yml _toc.yml book/_ext/offline.py
	rm -f _build/html/.built-*
	for nb in $(NOTEBOOKS); do cp _build/executed/$(PROFILE)/$$nb.ipynb book/$$nb.ipynb; done
	$(VENV)/bin/jupyter-book build . --path-output . --warningiserror --keep-going
	touch $@

notebooks: $(EXECUTED)  ## execute the notebooks on PROFILE without building the HTML

book: $(HTML_STAMP)  ## execute the notebooks on PROFILE and build the HTML book in _build/html
	@echo "Book ($(PROFILE) profile): $(CURDIR)/_build/html/index.html"

bench: $(INSTALLED)  ## print forward, kernel, surrogate and inversion speed and memory
	$(PY) benchmarks/bench_forward.py
	$(PY) benchmarks/bench_kernels.py
	$(PY) benchmarks/bench_surrogate.py
	$(PY) benchmarks/bench_inversion.py

env: $(INSTALLED)  ## regenerate environment.yml from pyproject.toml
	$(PY) tools/sync_env.py --write

clean:  ## remove the built book and executed notebooks (keeps caches and .venv)
	rm -rf _build/html _build/jupyter_execute _build/executed _build/.doctrees book/*.ipynb

distclean: clean  ## also remove caches, artifacts and the virtual environment
	rm -rf _build $(VENV)
