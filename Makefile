# Build / test entry points for vrg-analysis (GNU make).
#   make venv      install .venv (pinned by constraints.txt: CPU torch 2.13.0)
#   make mathjax   local MathJax 3 copy for the offline book
#   make data      Debian's Fashion-MNIST package (installed when missing, as root on Debian)
#   make execute   execute every notebook once into book/notebooks/ (nbmake with the notebooks'
#                  own CI-sized defaults; papermill with notebooks/params/$(PARAMS)/ otherwise)
#   make book      build the Jupyter Book into _build/html
#   make test      ruff + pytest + execute (nbmake, each notebook once) + strict book build
#   make clean     remove _build and book/notebooks
# Do NOT set MPLBACKEND=Agg here: glued figures would become text (the design page's pitfalls).

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

NOTEBOOKS   := $(wildcard notebooks/*.ipynb)
EXECUTED    := $(patsubst notebooks/%.ipynb,book/notebooks/%.ipynb,$(NOTEBOOKS))
# The pages that collect what the chapters write (findings, verdict tables) execute last.
COLLECTORS  := book/notebooks/scorecard.ipynb book/notebooks/claims.ipynb
ORDERED     := $(filter-out $(COLLECTORS),$(EXECUTED)) $(filter $(COLLECTORS),$(EXECUTED))
# The slowest chapters first (measured in `make test`'s --durations), so that two workers that
# steal work from each other finish together instead of one waiting on a long chapter started last.
SLOW_FIRST  := quality_vs_steps testbed_models predicted_vs_measured ablation beyond_the_paper \
               when_vrg_helps guidance audit_calibration optimisers
SLOW_NBS    := $(filter $(EXECUTED),$(patsubst %,book/notebooks/%.ipynb,$(SLOW_FIRST)))
CI_ORDER    := $(SLOW_NBS) $(filter-out $(SLOW_NBS) $(COLLECTORS),$(EXECUTED))
NBMAKE_TIMEOUT ?= 1200
# Tests and notebooks run in JOBS processes of one thread each: on 2 cores, two single-threaded
# workers finish sooner than one process with two threads, and several multi-threaded processes
# on few cores slow each other down many times over (spinning OpenMP threads).
JOBS        ?= 2

MATHJAX_VERSION := 3.2.2
MATHJAX_DIR     := book/assets/mathjax
MATHJAX_JS      := $(MATHJAX_DIR)/tex-mml-chtml.js

# First chapter of _toc.yml, printed after `make book`.
FIRST_CHAPTER := _build/html/book/notebooks/claims.html

.PHONY: venv mathjax data execute book test clean

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

# ---------------------------------------------------------------- data
# Fashion-MNIST comes from Debian's dataset-fashion-mnist (IDX files, about 31 MB); nothing is
# downloaded at run time. Installed here when missing and this is Debian run as root.
FASHION_DIR := /usr/share/datasets/fashion-mnist
data:
	@if [ -f $(FASHION_DIR)/train-images-idx3-ubyte.gz ]; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
	  echo "Fashion-MNIST is missing: install Debian's package with" \
	       "'sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist'" \
	       "or set VRG_FASHION_MNIST_DIR to a folder with its four IDX files" >&2; exit 1; \
	fi

# ---------------------------------------------------------------- chromium
# `make test` loads every page of the built book in headless Chromium (tests/check_book.py:
# Selenium with Debian's chromedriver, nothing downloaded at run time). Installed here when
# missing and this is Debian run as root (131 packages, about a minute after `apt-get update`).
.PHONY: chromium
chromium:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then exit 0; fi; \
	if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "Chromium or chromedriver is missing: install Debian's packages with" \
	       "'sudo apt-get update && sudo apt-get install -y chromium chromium-driver'" >&2; exit 1; \
	fi

# ---------------------------------------------------------------- execute
# Every notebook executes once, in the folder of its executed copy (book/notebooks/), so the
# findings and verdict tables the chapters write land beside them (claims/, verdicts/). With the
# quick parameter set nbmake is the runner (the notebooks' own defaults); with another set,
# papermill with notebooks/params/$(PARAMS)/<notebook>.yaml where it exists.
execute: $(VENV_STAMP)
	rm -rf book/notebooks && mkdir -p book/notebooks
	cp $(NOTEBOOKS) book/notebooks/
	@# Without the official VRG files (never shipped) that chapter becomes a page saying so.
	$(BIN)/python -m vrg_analysis official-files --notice book/notebooks/official_cifar10.ipynb
ifeq ($(PARAMS),quick)
	OMP_NUM_THREADS=1 $(PYTEST) -p no:cacheprovider -n $(JOBS) --dist worksteal --nbmake \
	  --overwrite --durations=0 --nbmake-timeout=$(NBMAKE_TIMEOUT) $(CI_ORDER)
	$(PYTEST) -p no:cacheprovider --nbmake --overwrite --nbmake-timeout=$(NBMAKE_TIMEOUT) \
	  $(filter $(COLLECTORS),$(EXECUTED))
else
	@set -e; for nb in $(ORDERED); do \
	  name=$$(basename $$nb .ipynb); \
	  params=$(PARAM_DIR)/$$name.yaml; \
	  echo "papermill $$name ($(PARAMS))"; \
	  $(PAPERMILL) --cwd book/notebooks -k python3 $$( [ -f $$params ] && echo "-f $$params" ) \
	    $$nb $$nb; \
	done
endif

# ---------------------------------------------------------------- book
book: venv mathjax data execute
	$(JB) build .
	@echo "Open _build/html/index.html"
	@echo "First chapter: $(abspath $(FIRST_CHAPTER))"

# ---------------------------------------------------------------- test
test: venv mathjax data chromium
	$(RUFF) check .
	@# --dist loadfile: a test file's module-scoped fixtures (a chapter run) are computed once,
	@# not once per worker
	OMP_NUM_THREADS=1 $(PYTEST) -n $(JOBS) --dist loadfile --durations=15 tests
	$(MAKE) --no-print-directory execute PARAMS=quick
	$(JB) build . -W --keep-going --all
	$(BIN)/python tests/check_book.py _build/html --screenshots _build/screenshots

# ---------------------------------------------------------------- clean
clean:
	rm -rf _build book/notebooks
