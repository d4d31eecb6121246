# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
RUN    ?= runs/demo
# Debian's Chromium opens the generated reports in tests/test_reports_in_browser.py.
CHROMIUM := /usr/bin/chromium

.PHONY: setup demo test bench protos lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# A file target: make installs Chromium only when it is absent, so a set-up machine pays nothing.
# apt-get speaks only when it fails; where it cannot install (not root, no apt), set-up goes on
# and the browser tests say why they are skipped (in CI they fail instead).
$(CHROMIUM):
	@echo "make setup: installing Debian's chromium (absent from $(CHROMIUM))"
	@log=$$( { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium; } 2>&1 ) \
		|| { echo "$$log" | tail -20; echo "make setup: could not install chromium; the report browser tests will skip"; }

setup: $(STAMP) $(CHROMIUM)

demo: setup  ## set up, bring the live network up, send exchanges, show the audit head
	$(VENV)/bin/crossroads demo --out $(RUN)

# Two workers (pytest-xdist): every test brings up what it needs on free ports in its own folder.
test: setup  ## set up and run every test (lint and types included), on two worker processes
	$(PY) -m pytest -q -n 2

bench: setup  ## the benchmarks (not tests), ~35 min: core vs proxy, audit, world, start-up, capacity, 10-min soak; rewrites the end of docs/PERFORMANCE.md
	$(VENV)/bin/crossroads bench all --out runs/bench --performance docs/PERFORMANCE.md $(BENCH_ARGS)

protos: setup  ## regenerate the gRPC modules from protos/*.proto
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. protos/messages.proto protos/services.proto

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

clean:
	rm -rf $(VENV) runs build *.egg-info
