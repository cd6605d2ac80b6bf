# make demo | make test | make bench | make clean
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORE_STAMP := $(VENV)/.installed-core
BENCH_STAMP := $(VENV)/.installed-bench
OUT := out

.PHONY: demo test test-slow bench bench-text bench-scale bench-stream bench-read bench-parts bench-scores bench-dsir bench-dedup bench-evaluate clean sample-data docs \
	designs pruning

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the demo needs only the core dependencies (numpy, pyarrow, faiss-cpu, scipy, typer, rich)
$(CORE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $(CORE_STAMP)

# torch is named with its exact pin in the same command as the [text] extra, so pip never looks
# at a CUDA build (see pyproject.toml)
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[test,text,dask,plots,dsir]"
	touch $(STAMP) $(CORE_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q "torch==2.13.0" -e ".[test,text,dask,plots,dsir,bench]"
	touch $(BENCH_STAMP)

demo: $(CORE_STAMP)
	@bash sample_data/demo.sh $(BIN) $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests dataselect_cli

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

# BENCH_ARGS go to bench_sample.py (e.g. BENCH_ARGS="--n 200000 --k 200"), CLUSTER_ARGS to
# bench_cluster.py, BENCH_TEXT_ARGS to bench_text.py, SCALE_ARGS to bench_scale.py
# (e.g. SCALE_ARGS="--big 2000000 --small 500000"; the default writes 15 GB of data), SCORES_ARGS to
# bench_scores.py (e.g. SCORES_ARGS="--ids 200000 --unsorted"; the default writes a 1 GB dynamics table)
bench: $(BENCH_STAMP) bench-text bench-scale bench-stream bench-parts bench-scores bench-dedup bench-dsir bench-evaluate
	$(BIN)/python bench/bench_sample.py $(BENCH_ARGS)
	$(BIN)/python bench/bench_sample.py --tool-config default $(BENCH_ARGS)
	$(BIN)/python bench/bench_read.py $(READ_ARGS)
	$(BIN)/python bench/bench_cluster.py $(CLUSTER_ARGS)

bench-scale: $(STAMP)
	$(BIN)/python bench/bench_scale.py $(SCALE_ARGS)

# PARTS_ARGS go to bench_parts.py (issue 18: the client's peak RSS with directory outputs, 1e6 and 1e7 rows, local
# and Dask, and the projection to 1e9 rows; e.g. PARTS_ARGS="--sizes 100000000 --d 4 --k 10 --engines local")
bench-parts: $(STAMP)
	$(BIN)/python bench/bench_parts.py $(PARTS_ARGS)

# STREAM_ARGS go to bench_stream.py (e.g. STREAM_ARGS="--n 200000 --repeats 1")
bench-stream: $(STAMP)
	$(BIN)/python bench/bench_stream.py $(STREAM_ARGS)

# READ_ARGS go to bench_read.py (the read into memory of bench_sample.py's file; `make bench` runs it once
# bench_sample.py has written that file; e.g. READ_ARGS="--repeats 1 --threads 4"; with BENCH_ARGS of another size,
# READ_ARGS="--data bench/data/emb_NxD.parquet", the file bench_sample.py names)
bench-read: $(STAMP)
	$(BIN)/python bench/bench_read.py $(READ_ARGS)

bench-scores: $(STAMP)
	$(BIN)/python bench/bench_scores.py $(SCORES_ARGS)

# DEDUP_ARGS go to bench_dedup.py (e.g. DEDUP_ARGS="--n 1000000 --k 500"; the default is 200,000 × 384, k = 200)
bench-dedup: $(STAMP)
	$(BIN)/python bench/bench_dedup.py $(DEDUP_ARGS)

bench-text: $(STAMP)
	$(BIN)/python bench/bench_text.py $(BENCH_TEXT_ARGS)

# DSIR on the standard library's docstrings against the data-selection package (DSIR_ARGS, e.g. "--target xml")
bench-evaluate: $(STAMP)
	$(BIN)/python bench/bench_evaluate.py

bench-dsir: $(STAMP)
	$(BIN)/python bench/bench_dsir.py $(DSIR_ARGS)

sample-data: $(BENCH_STAMP)
	$(BIN)/python sample_data/make_sample_data.py
	$(BIN)/python sample_data/make_texts.py

# evaluate on two real data sets that ship inside scikit-learn; rewrites docs/evaluate/ and docs/sample/
docs: $(BENCH_STAMP)
	$(BIN)/python docs/make_docs.py

# the sampling designs against uniform on five data sets (issue 12's evidence); rewrites docs/designs/
designs: $(BENCH_STAMP)
	$(BIN)/python docs/make_designs.py $(SETS)

# paper A's pruning experiment: prune 10/30/50 % by each per-example score, retrain, against random
# pruning, on digits and stdlib, two held-out splits (about 12 minutes); rewrites docs/pruning/ but its README.md
pruning: $(BENCH_STAMP)
	$(BIN)/python docs/make_pruning.py $(SETS)

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache bench/data *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
