# mlsys developer entry points. Everything installs itself into .venv and
# node_modules; nothing needs Docker or AWS credentials.
#   make run    train the default model if there is no champion yet, then serve it locally
#   make test   lint, format check, types, tests (unit, integration, infrastructure)
#   make bench  performance benchmarks with same-run baselines
#   make docs   regenerate docs/configuration.md from the settings declarations
#   make clean-clone-test  clone the committed HEAD into a temp dir and run make test there
#   make image-check  build the training image on a local Debian base and train in it offline (root, Docker)

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
HOST ?= 127.0.0.1
PORT ?= 8080
LAMBDA_BUILD := .build/lambda
# Lambda's newest Python runtime; onnxruntime, numpy and orjson publish cp314 aarch64 wheels.
LAMBDA_PYTHON ?= 3.14

.PHONY: help run train serve test lint typecheck pytest bench synth lambda-package clean clean-clone-test image-check docs

help:
	@grep -E '^#   make' Makefile | sed 's/^#   //'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime only: what `make run` needs (training + inference).
$(VENV)/.runtime: $(VENV)/bin/python training_job/requirements.txt lambda_inference/requirements.txt lambda_inference/local/requirements.txt pyproject.toml
	$(PIP) install -r training_job/requirements.txt -r lambda_inference/requirements.txt \
		-r lambda_inference/local/requirements.txt
	@# The build backend warns that an editable install shadows same-named folders: that is the point here.
	PYTHONWARNINGS=ignore $(PIP) install --no-deps -e .
	@touch $@

# Everything `make test` needs.
$(VENV)/.dev: $(VENV)/.runtime requirements.txt requirements-dev.txt
	$(PIP) install -r requirements-dev.txt
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: $(VENV)/.runtime
	@if $(VENV)/bin/mlsys models show champion >/dev/null 2>&1; then \
		echo "champion exists; skipping training (run 'make train' to retrain)"; \
	else \
		$(VENV)/bin/mlsys train; \
	fi
	$(VENV)/bin/mlsys serve --host $(HOST) --port $(PORT)

train: $(VENV)/.runtime
	$(VENV)/bin/mlsys train

serve: $(VENV)/.runtime
	$(VENV)/bin/mlsys serve --host $(HOST) --port $(PORT)

# Inference function bundle for arm64 Lambda: wheels for the Lambda platform,
# not the build host's, so no Docker is needed.
$(LAMBDA_BUILD)/.built: lambda_inference/requirements.txt lambda_inference/requirements-tracing.txt $(VENV)/.runtime $(wildcard mlsys/*.py mlsys/*/*.py lambda_inference/*.py)
	rm -rf $(LAMBDA_BUILD) && mkdir -p $(LAMBDA_BUILD)
	$(PIP) install --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --only-binary=:all: \
		--python-version $(LAMBDA_PYTHON) --implementation cp --target $(LAMBDA_BUILD) \
		-r lambda_inference/requirements.txt
	$(PIP) install --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --only-binary=:all: \
		--python-version $(LAMBDA_PYTHON) --implementation cp --target $(LAMBDA_BUILD) --no-deps \
		-r lambda_inference/requirements-tracing.txt
	cp -r mlsys lambda_inference $(LAMBDA_BUILD)/
	@# Local-only code (the command line, mlsys serve, the background log writer, the file
	@# scorer of mlsys predict and its pyarrow) stays out.
	rm -rf $(LAMBDA_BUILD)/lambda_inference/local $(LAMBDA_BUILD)/mlsys/cli $(LAMBDA_BUILD)/mlsys/__main__.py \
		$(LAMBDA_BUILD)/lambda_inference/scoring.py
	find $(LAMBDA_BUILD) -name '__pycache__' -prune -exec rm -rf {} +
	@touch $@

lambda-package: $(LAMBDA_BUILD)/.built

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev node_modules/.installed lambda-package
	$(VENV)/bin/pytest -n 2 tests

test: lint typecheck pytest

# jsii prints a full-screen banner on Node 20 (end-of-life upstream); Node 20 still runs it
# correctly and is what this project supports as its minimum, so the banner is silenced.
synth: $(VENV)/.dev node_modules/.installed lambda-package
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk synth --quiet

# docs/configuration.md is generated from the declarations (mlsys/knobs.py, infra/config.py).
docs: $(VENV)/.dev
	$(PY) -m scripts.configuration_reference

bench: $(VENV)/.dev lambda-package
	$(PY) -m benchmarks

# Fresh-machine proof: only committed files (no .venv, node_modules or build
# outputs from this tree) in a temporary clone, set up from nothing by `make test`.
clean-clone-test:
	@set -e; tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	git clone --quiet --no-hardlinks "$(CURDIR)" "$$tmp/mlsys"; \
	echo "clean clone of $$(git -C "$$tmp/mlsys" rev-parse --short HEAD) in $$tmp/mlsys"; \
	start=$$(date +%s); \
	$(MAKE) --no-print-directory -C "$$tmp/mlsys" test PYTHON="$(PYTHON)"; \
	echo "clean-clone-test: make test passed in $$(( $$(date +%s) - start )) s"

# Opt-in, never part of `make test`/CI: needs root, a Docker engine and debootstrap, but no
# image registry (the base is debootstrapped locally). See scripts/image_check.sh.
image-check:
	scripts/image_check.sh

clean:
	rm -rf $(VENV) node_modules .build cdk.out .mypy_cache .ruff_cache .pytest_cache
