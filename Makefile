# One-command set-up: every target creates .venv and installs the project on first use.
# Elsewhere than this project's machines, get torch's CPU build with e.g.
#   make test TORCH_SPEC=torch PIP_TORCH_ARGS="--index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: install demo test test-all lint bench clean recbole-venv browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

# what running recsys needs (the demo), without the test and lint tools
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[serve]"
	touch $(RUN_STAMP)

install: $(STAMP)

## demo: validate the embedded MovieLens-100k, build the index, recommend for user 1, print the funnel
demo:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory $(RUN_STAMP) && \
	$(BIN)/recsys data validate && \
	$(BIN)/recsys build-index --out artifacts/default --no-reranker && \
	$(BIN)/recsys query --artifacts artifacts/default --user 1 && \
	$(BIN)/recsys evaluate --artifacts artifacts/default && \
	echo "make demo: done in $$(( $$(date +%s) - start )) s. recsys is installed in $(VENV): run" \
	     "'source $(VENV)/bin/activate' (or call $(BIN)/recsys) to use it."

## browser: Debian's chromium for the web inspector's browser tests (installed where we are root with apt;
## elsewhere those tests skip and say so)
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "make browser: no chromium installed here; the browser tests will skip"

## test: the default suite (slow tests excluded); test-all: everything
test: $(STAMP) browser
	$(BIN)/python -m pytest -q

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -q -m ""

## bench: peers side by side on the real data (needs ../shared/data or DATA_DIR=...)
DATA_DIR ?= ../shared/data
bench: $(STAMP)
	for d in movielens-100k instacart rees46; do $(BIN)/python benchmarks/run.py --dataset $$d --data-dir $(DATA_DIR) || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info

## recbole-venv: RecBole 1.2.1 in its own environment (.venv-recbole) for benchmarks/recbole_peers.py
recbole-venv:
	test -x .venv-recbole/bin/python || $(PYTHON) -m venv .venv-recbole
	.venv-recbole/bin/python -m pip install -q $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	.venv-recbole/bin/python -m pip install -q "recbole==1.2.1" "numpy<2" "pandas<2.2" "scipy<1.13"
