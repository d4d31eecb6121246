# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RUN    ?= runs/demo

.PHONY: setup demo test bench protos lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup  ## set up, bring the live network up, send exchanges, show the audit head
	$(VENV)/bin/crossroads demo --out $(RUN)

test: setup  ## set up and run every test (lint and types included)
	$(PY) -m pytest -q

bench: setup  ## the benchmarks (not tests), ~35 min: core vs proxy, audit, world, start-up, capacity, 10-min soak; rewrites the end of docs/PERFORMANCE.md
	$(VENV)/bin/crossroads bench all --out runs/bench --performance docs/PERFORMANCE.md $(BENCH_ARGS)

protos: setup  ## regenerate the gRPC modules from protos/*.proto
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. protos/messages.proto protos/services.proto

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

clean:
	rm -rf $(VENV) runs build *.egg-info
