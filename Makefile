# mlsys developer entry points. Everything installs itself into .venv and
# node_modules; nothing needs Docker or AWS credentials.
#   make run    train the default model if there is no champion yet, then serve it locally
#   make test   lint, format check, types, tests (unit, integration, infrastructure)
#   make bench  performance benchmarks with same-run baselines
#   make docs   regenerate docs/configuration.md from the settings declarations
#   make clean-clone-test  clone the committed HEAD into a temp dir and run make test there
#   make image-check  build the training image on a local Debian base and train in it offline (root, Docker)
#   make dist   build the mlsys wheel and sdist into dist/ (pip install 'dist/mlsys-*.whl[serve]')
#   make serve-image-check  build Dockerfile.serve on a local Debian base and query it (root, Docker)
#   make requirements  rewrite the requirements files from the pins in pyproject.toml
#   make aws-local-test  the synthesized stack end to end in SAM's Lambda emulator + moto (root, Docker)
#   make deploy-localstack  cdk bootstrap/deploy/destroy onto LocalStack on this host (Python 3.13)
#   make destroy  delete a deployed stage (STAGE=dev) and print what it keeps and how to remove it

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

.PHONY: help run train serve test lint typecheck pytest bench synth lambda-package clean clean-clone-test image-check aws-local-test deploy-localstack destroy docs \
	dist serve-image-check requirements wheelhouse

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

# Inference function bundle for Lambda: wheels for the Lambda platform, not the build
# host's, so no Docker is needed. $(1): the wheels' machine (aarch64 for the deployed arm64
# functions; x86_64 for `make aws-local-test`'s emulator), $(2): the directory.
LAMBDA_SOURCES := lambda_inference/requirements.txt lambda_inference/requirements-tracing.txt $(VENV)/.runtime $(wildcard mlsys/*.py mlsys/*/*.py lambda_inference/*.py)
define lambda_bundle
	rm -rf $(2) && mkdir -p $(2)
	$(PIP) install --platform manylinux_2_28_$(1) --platform manylinux2014_$(1) --only-binary=:all: \
		--python-version $(LAMBDA_PYTHON) --implementation cp --target $(2) \
		-r lambda_inference/requirements.txt
	$(PIP) install --platform manylinux_2_28_$(1) --platform manylinux2014_$(1) --only-binary=:all: \
		--python-version $(LAMBDA_PYTHON) --implementation cp --target $(2) --no-deps \
		-r lambda_inference/requirements-tracing.txt
	cp -r mlsys lambda_inference $(2)/
	@# Local-only code (the command line, mlsys serve, the background log writer, the file
	@# scorer of mlsys predict and its pyarrow) stays out.
	rm -rf $(2)/lambda_inference/local $(2)/mlsys/cli $(2)/mlsys/__main__.py \
		$(2)/lambda_inference/scoring.py
	find $(2) -name '__pycache__' -prune -exec rm -rf {} +
	@touch $(2)/.built
endef

$(LAMBDA_BUILD)/.built: $(LAMBDA_SOURCES)
	$(call lambda_bundle,aarch64,$(LAMBDA_BUILD))

$(LAMBDA_BUILD)-x86_64/.built: $(LAMBDA_SOURCES)
	$(call lambda_bundle,x86_64,$(LAMBDA_BUILD)-x86_64)

lambda-package: $(LAMBDA_BUILD)/.built

# The wheel and sdist, built offline with the venv's pinned setuptools (no build isolation).
dist: $(VENV)/.dev
	rm -rf dist
	$(PY) -m build --no-isolation --outdir dist .

# Wheels of the `serve` extra's dependencies for this machine's Python, so the test that
# installs the wheel into a fresh venv resolves its dependencies with --no-index (offline).
WHEELHOUSE := .build/wheelhouse
$(WHEELHOUSE)/.built: lambda_inference/requirements.txt lambda_inference/local/requirements.txt $(VENV)/bin/python
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	$(PIP) download --only-binary=:all: --dest $(WHEELHOUSE) \
		-r lambda_inference/requirements.txt -r lambda_inference/local/requirements.txt
	@touch $@

wheelhouse: $(WHEELHOUSE)/.built

requirements: $(VENV)/bin/python
	$(PY) -m scripts.requirements

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

pytest: $(VENV)/.dev node_modules/.installed lambda-package wheelhouse
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

# Opt-in like image-check: Dockerfile.serve from the wheel, on the same local base; the
# container must answer /health and /stream for a model trained here.
serve-image-check: dist
	scripts/serve_image_check.sh

# The synthesized stack run on this machine (scripts/aws_local_test.sh): installs Docker,
# debootstrap and the SAM CLI when missing, so it needs root (or sudo); not part of
# `make test`, run by .ci/run after it. Functions run in the machine's own architecture:
# on x86_64 from a bundle built by the same recipe for x86_64, on arm64 from the deployed
# bundle itself (an emulated arm64 under qemu-user-static 7.2 segfaults in the runtime).
# The synthesized CI stack is not used, so the repository name below only lets synthesis pass.
AWS_LOCAL_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
AWS_LOCAL_SYNTH := .build/aws-local-synth
AWS_LOCAL_BUNDLE := $(if $(filter arm64,$(AWS_LOCAL_ARCH)),$(LAMBDA_BUILD),$(LAMBDA_BUILD)-x86_64)
aws-local-test: $(VENV)/.dev node_modules/.installed lambda-package $(AWS_LOCAL_BUNDLE)/.built
	rm -rf $(AWS_LOCAL_SYNTH)
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		npx cdk synth --quiet --no-staging --output $(AWS_LOCAL_SYNTH) \
		-c github_repository=mlsys-local/aws-local-test >/dev/null
	LAMBDA_PYTHON=$(LAMBDA_PYTHON) AWS_LOCAL_ARCH=$(AWS_LOCAL_ARCH) \
		scripts/aws_local_test.sh $(AWS_LOCAL_SYNTH) $(AWS_LOCAL_BUNDLE)

# Opt-in, not in CI: the app deployed onto LocalStack running on this host, then destroyed
# (scripts/deploy_localstack.sh: needs Python 3.13; prints what was created and what mocked).
deploy-localstack: $(VENV)/.dev node_modules/.installed lambda-package
	scripts/deploy_localstack.sh

# Deletes the stage's two stacks from the AWS account of your credentials (cdk asks first),
# then lists what they keep on purpose -- model store, system log, image repository, the
# account's shared API Gateway logging role and GitHub OIDC provider -- with the commands
# that remove them (scripts/retained.py). FORCE=1 skips cdk's question (no terminal).
STAGE ?= dev
CDK := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 PATH=$(CURDIR)/$(VENV)/bin:$$PATH npx cdk
destroy: $(VENV)/.dev node_modules/.installed lambda-package
	@set -e; out="$$(mktemp -d)"; trap 'rm -rf "$$out"' EXIT; \
	$(CDK) synth --quiet --output "$$out/cdk.out" -c stage=$(STAGE) >/dev/null; \
	$(PY) scripts/retained.py record --template-dir "$$out/cdk.out" \
		--stack mlsys-$(STAGE) --stack mlsys-$(STAGE)-ci > "$$out/retained.json"; \
	$(CDK) destroy --all --app "$$out/cdk.out" $(if $(FORCE),--force); \
	$(PY) scripts/retained.py show "$$out/retained.json"

clean:
	rm -rf $(VENV) node_modules .build cdk.out dist .mypy_cache .ruff_cache .pytest_cache
