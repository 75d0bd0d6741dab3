# Build / test entry points for vrg-analysis (GNU make).
#   make venv      install .venv (pinned by constraints.txt: CPU torch 2.13.0)
#   make mathjax   local MathJax 3 copy for the offline book
#   make execute   run notebooks/*.ipynb with papermill into book/notebooks/
#   make book      build the Jupyter Book into _build/html
#   make test      ruff + pytest + nbmake + execute + strict book build
#   make clean     remove _build and book/notebooks
# Do NOT set MPLBACKEND=Agg here: glued figures would become text (see STACK.md).

SHELL := bash
.DELETE_ON_ERROR:
.DEFAULT_GOAL := book

export HF_HUB_OFFLINE := 1
# Study artifacts (profiles, sampled comparisons) are cached by parameters, input hashes and the
# library source (vrg_analysis/cache.py): a rebuild after a prose edit reruns nothing. Inside
# _build, so a fresh clone (and `make clean`) starts empty.
export VRG_CACHE_DIR ?= $(CURDIR)/_build/cache
# numpy/scipy's OpenBLAS on one thread: on a busy 2-core machine two BLAS threads made a 64 x 64
# eigendecomposition 30x slower (measured while building issue 6); torch keeps its own threads.
export OPENBLAS_NUM_THREADS ?= 1

PYTHON3     ?= python3
VENV        := .venv
VENV_STAMP  := $(VENV)/.installed
BIN         := $(VENV)/bin
PIP         := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
PAPERMILL   := $(BIN)/papermill
JB          := $(BIN)/jupyter-book
PYTEST      := $(BIN)/pytest
RUFF        := $(BIN)/ruff

# Notebook parameters: notebooks/params/$(PARAMS)/<notebook>.yaml, passed only when it exists
# (quick: each notebook's own defaults, the CI-sized values of its `parameters` cell).
PARAMS      ?= quick
PARAM_DIR   := notebooks/params/$(PARAMS)
# Records the PARAMS value used last, so switching PARAMS reruns the notebooks.
PARAM_STAMP := book/notebooks/.params

NOTEBOOKS   := $(wildcard notebooks/*.ipynb)
EXECUTED    := $(patsubst notebooks/%.ipynb,book/notebooks/%.ipynb,$(NOTEBOOKS))
LIB_SRC     := $(wildcard vrg_analysis/*.py vrg_analysis/*/*.py) $(wildcard benchmarks/results/*.json)

MATHJAX_VERSION := 3.2.2
MATHJAX_DIR     := book/assets/mathjax
MATHJAX_JS      := $(MATHJAX_DIR)/tex-mml-chtml.js

# First chapter of _toc.yml, printed after `make book`.
FIRST_CHAPTER := _build/html/book/notebooks/claims.html

.PHONY: venv mathjax execute book test clean FORCE

# ---------------------------------------------------------------- venv
venv: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON3) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) --upgrade pip
	$(PIP) install -c $(CONSTRAINTS) -e '.[test]'
	touch $@

# ---------------------------------------------------------------- mathjax
# Only the es5 build is kept (tex-mml-chtml.js plus the fonts/extensions it loads
# lazily: output/chtml/fonts/woff-v2, input/tex/extensions, a11y, sre, ui).
# Without npm/network this warns and the book still builds (math then needs a CDN).
mathjax: $(MATHJAX_JS)

$(MATHJAX_JS):
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	if command -v npm >/dev/null 2>&1 \
	   && (cd "$$tmp" && timeout 180 npm pack --silent --fetch-retries=1 mathjax@$(MATHJAX_VERSION)) >/dev/null 2>&1 \
	   && tar -xzf "$$tmp/mathjax-$(MATHJAX_VERSION).tgz" -C "$$tmp" package/es5 package/LICENSE \
	   && test -f "$$tmp/package/es5/tex-mml-chtml.js"; then \
	  rm -rf $(MATHJAX_DIR) && mkdir -p $(MATHJAX_DIR) \
	  && cp -R "$$tmp/package/es5/." $(MATHJAX_DIR)/ \
	  && cp "$$tmp/package/LICENSE" $(MATHJAX_DIR)/LICENSE \
	  && echo "MathJax $(MATHJAX_VERSION) installed in $(MATHJAX_DIR)"; \
	else \
	  echo "WARNING: could not fetch mathjax@$(MATHJAX_VERSION) with npm;" \
	       "the book builds but math will not render offline." >&2; \
	fi

# ---------------------------------------------------------------- execute
execute: $(EXECUTED)

book/notebooks:
	mkdir -p $@

$(PARAM_STAMP): FORCE | book/notebooks
	@test "$$(cat $@ 2>/dev/null)" = "$(PARAMS)" || echo "$(PARAMS)" > $@

book/notebooks/%.ipynb: notebooks/%.ipynb $(LIB_SRC) $(wildcard $(PARAM_DIR)/*.yaml) \
		$(PARAM_STAMP) | $(VENV_STAMP) book/notebooks
	$(PAPERMILL) --cwd notebooks -k python3 \
		$(if $(wildcard $(PARAM_DIR)/$*.yaml),-f $(PARAM_DIR)/$*.yaml) $< $@

# The scorecard collects the verdict tables the audit notebooks write (book/notebooks/verdicts/).
book/notebooks/scorecard.ipynb: $(filter book/notebooks/audit_%,$(EXECUTED))

# The claims page collects the findings the study notebooks write (book/notebooks/claims/) and
# the audit verdicts.
CLAIM_SOURCES := quality_vs_steps ablation predicted_vs_measured published_profiles optimisers \
	beyond_the_paper
book/notebooks/claims.ipynb: $(filter $(CLAIM_SOURCES:%=book/notebooks/%.ipynb),$(EXECUTED)) \
	$(filter book/notebooks/audit_%,$(EXECUTED))

# ---------------------------------------------------------------- book
book: venv mathjax execute
	$(JB) build .
	@echo "Open _build/html/index.html"
	@echo "First chapter: $(abspath $(FIRST_CHAPTER))"

# ---------------------------------------------------------------- test
test: venv mathjax
	$(RUFF) check .
	$(PYTEST) tests
	$(PYTEST) --nbmake --nbmake-timeout=600 notebooks/
	$(MAKE) --no-print-directory execute
	$(JB) build . -W --keep-going --all

# ---------------------------------------------------------------- clean
clean:
	rm -rf _build book/notebooks
