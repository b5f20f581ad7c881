# fastattn: `make lab` opens the notebooks, `make test` runs the whole suite.
# Both create .venv on first use. Choose the torch build with TORCH, for example
#   make lab TORCH="torch --index-url https://download.pytorch.org/whl/cpu"   (CPU-only, small download)
#   make lab TORCH="torch==2.13.0"                                           (an exact version)
PYTHON ?= python3
TORCH ?= torch
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS := .ci/constraints.txt
STAMP := $(VENV)/.installed

.PHONY: lab test notebooks book strip lint bench gpu-site gpu-check clean-venv

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install --constraint $(CONSTRAINTS) --editable ".[dev,bench,mpc,book]"
	touch $@

# JupyterLab refuses to run as root (common in containers) unless told to; it prints the URL with its token.
lab: $(STAMP)
	@echo "JupyterLab starts below; open the http://127.0.0.1:8888/lab?token=... URL it prints."
	$(BIN)/jupyter lab notebooks/ --ip=127.0.0.1 $$([ "$$(id -u)" -eq 0 ] && echo --allow-root)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

notebooks: $(STAMP)
	$(BIN)/python -m fastattn_lib.notebooks run --out build notebooks/*.ipynb

# The rendered book: every notebook executed with full parameters, then one offline site in build/book.
book: $(STAMP)
	$(BIN)/python -m fastattn_lib.book --out build/book
	@echo "open build/book/index.html in a browser (no server, no network needed)"

strip: $(STAMP)
	$(BIN)/python -m fastattn_lib.notebooks strip notebooks/*.ipynb

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python -m fastattn_lib.bench

# Where there is a network: the pure-Python wheels the panels need (plotly, ipywidgets, ...), for an offline
# GPU machine whose python3 has torch, numpy, numba, pytest and tqdm but not these.
gpu-site: $(STAMP)
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --dest build/gpu-site \
		plotly narwhals ipywidgets comm traitlets widgetsnbextension jupyterlab_widgets

# On the GPU machine: its own python3, the package from this checkout, the wheels above if carried.
gpu-check:
	PYTHONPATH="$$(ls build/gpu-site/*.whl 2>/dev/null | tr '\n' ':').$${PYTHONPATH:+:$$PYTHONPATH}" \
		python3 -m fastattn_lib.gpu_check

clean-venv:
	rm -rf $(VENV)
