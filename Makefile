# Two commands for a fresh machine:
#   make serve   set up .venv, migrate, create a first key, serve the demo on 127.0.0.1:8000
#                (its first task downloads SD-Turbo, 2.6 GB, once; offline: random weights)
#   make test    set up .venv and the test services, run the whole suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed before anything that requires torch so that pip does not
# fetch a CUDA build of several GB.
TORCH ?= torch==2.13.0

.PHONY: serve test test-unit lint bench-api bench-queue bench-engine clean

serve: $(VENV)/.serve-installed
	@echo "Serving the demo catalog (config/demo.toml) on http://127.0.0.1:8000/."
	@echo "google-imagen-3 draws with SD-Turbo from the Hugging Face hub: the first task downloads it"
	@echo "(about 2.6 GB, once, into ~/.cache/huggingface; a few minutes on a home connection, progress"
	@echo "below), later starts use the cache. Offline it falls back within seconds to random weights"
	@echo "(noise of the right size) and says so. DARKROOM_DEMO_MODEL=tiny skips the download."
	$(BIN)/darkroom serve --config config/demo.toml --first-key

test: $(VENV)/.test-installed
	bash scripts/test-services.sh
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: $(VENV)/.test-installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

bench-api: $(VENV)/.test-installed
	$(BIN)/python bench/api.py

bench-engine: $(VENV)/.test-installed
	$(BIN)/python bench/engine.py

bench-queue: $(VENV)/.test-installed
	bash scripts/test-services.sh
	$(BIN)/python bench/claims.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.torch-installed: | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	touch $@

$(VENV)/.serve-installed: pyproject.toml $(VENV)/.torch-installed
	$(BIN)/pip install --quiet -e '.[local]'
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.torch-installed
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $@

clean:
	rm -rf $(VENV) data tests/js/node_modules
