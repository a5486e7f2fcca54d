# Two entry points (see README.md): `make pipeline` and `make test`. Both install into .venv first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
# dvc runs the stages' `phys-ml ...` commands through the shell: the venv's bin must be on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install pipeline test smoke report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, pinned: the CPU build 2.13.0 (an unpinned torch would pull a multi-GB CUDA build).
install: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/phys-ml groundwater install-mf6

pipeline: install
	$(BIN)/dvc repro

test: install
	$(BIN)/python -m pytest -q -n 2 --durations=15

report:
	$(BIN)/phys-ml report

clean:
	rm -rf $(VENV) data/*/ reports/ .dvc/cache .dvc/tmp
