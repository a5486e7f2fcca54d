# Two entry points (see README.md): `make pipeline` and `make test`. Both install into .venv first, from uv.lock.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
export DVC_NO_ANALYTICS := 1
# dvc runs the stages' `phys-ml ...` commands through the shell: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

# uv.lock as pip requirements with their hashes, for Linux x86_64 / CPython 3.11.
EXPORT = $(BIN)/uv export --frozen --extra dev --no-emit-project --format requirements-txt --no-header --quiet

.PHONY: install lock check-lock pipeline test report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(BIN)/uv: $(BIN)/python
	$(BIN)/pip install -q uv==$(UV_VERSION)

# Exactly the locked versions, nothing resolved again. torch first and apart: the lock names the CPU build
# 2.13.0+cpu, which these machines keep in /opt/wheels (pip's find-links); pip cannot hash-check a wheel that
# the lock knows by path. Then every other locked package, hash-checked, then this package without its deps.
install: $(BIN)/uv
	$(EXPORT) --no-hashes --no-annotate | grep '^torch==' > $(VENV)/torch-lock.txt
	$(BIN)/pip install -q --no-deps -r $(VENV)/torch-lock.txt
	$(EXPORT) --no-emit-package torch -o $(VENV)/lock.txt
	$(BIN)/pip install -q --no-deps --require-hashes -r $(VENV)/lock.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/phys-ml groundwater install-mf6

# Refresh uv.lock after a change to pyproject.toml (pins that still satisfy it are kept);
# `make lock UPGRADE=1` moves every pin to the newest allowed version. Then rerun the pipeline and commit
# uv.lock with the new dvc.lock: other versions can give other bytes.
lock: $(BIN)/uv
	$(BIN)/uv lock $(if $(UPGRADE),--upgrade)

# uv's own check: fails when uv.lock no longer satisfies pyproject.toml (run `make lock`).
check-lock: $(BIN)/uv
	$(BIN)/uv lock --check

pipeline: install
	$(BIN)/dvc repro

test: install check-lock
	$(BIN)/python -m pytest -q -n 2 --durations=15

report:
	$(BIN)/phys-ml report

clean:
	rm -rf $(VENV) data/*/ reports/ .dvc/cache .dvc/tmp
