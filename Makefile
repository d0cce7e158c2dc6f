# One entry point for people and CI. `make run` and `make test` work on a fresh machine:
# each installs what it needs into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REQS   := requirements-dev.txt functions/requirements.txt training/requirements.txt model_handler/requirements.txt

.PHONY: install test lint format run bench bench-accuracy clean

install: $(STAMP)

$(STAMP): $(REQS) pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# Type-checked code: strict for functions/ (pyproject.toml), basic for the rest.
TYPED := functions local deploy scripts training bench

## test: lint (ruff, mypy), then every test (unit, integration, end to end)
test: lint
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy $(TYPED)
	cd model_handler && ../$(PY) -m mypy --config-file ../pyproject.toml --cache-dir ../.mypy_cache .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

## run: the whole system on this machine (the embedded default); offline: make run ARGS=--sample-data
run: install
	$(PY) -m local $(ARGS)

## bench: every benchmark; each prints a ratio against a baseline measured in the same run
bench: install
	for b in bench/*.py; do [ $$b = bench/accuracy.py ] || $(PY) $$b || exit 1; done

## bench-accuracy: the training recipe on real photos (Fashion-MNIST, about an hour on 2 cores)
bench-accuracy: install
	$(PY) bench/accuracy.py $(ARGS)

## deploy, sam-venv, resolve-images, teardown: see deploy/tools.mk (`test` also needs sam-venv)
include deploy/tools.mk

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .aws-sam
