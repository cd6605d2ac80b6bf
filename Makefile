# make demo | make test | make bench | make clean
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT := out

.PHONY: demo test test-slow bench clean sample-data

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,bench]"
	touch $(STAMP)

demo: $(STAMP)
	@bash sample_data/demo.sh $(BIN) $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests dataselect_cli

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

bench: $(STAMP)
	$(BIN)/python bench/bench_sample.py $(BENCH_ARGS)

sample-data: $(STAMP)
	$(BIN)/python sample_data/make_sample_data.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache bench/data *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
