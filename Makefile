# Set-up is part of every target: a fresh machine needs only `make quickstart` or `make test`.
PYTHON ?= python3

.PHONY: setup quickstart test bench

setup:
	@# torch first, pinned, and only where none is installed: a bare `torch` requirement would pull
	@# the CUDA wheels (several GB) on a CPU machine, and a user's own CUDA build must stay untouched.
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "torch==2.13.0"
	@$(PYTHON) -m pip install --quiet -e ".[dev]"

quickstart: setup
	$(PYTHON) -m nas study run quickstart

test: setup
	$(PYTHON) -m pytest tests

bench: setup
	$(PYTHON) benchmarks/cost_speed.py
	$(PYTHON) benchmarks/mixer_speed.py
