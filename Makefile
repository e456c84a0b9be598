# mmtrain developer targets. `make help` lists them.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# The torch pair to install first. Empty it for PyPI's default build: make install TORCH_PINS=
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
# Test processes (pytest-xdist): one per core, at most 4; TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= auto

.PHONY: help install browser test test-slow lint format demo bench bench-eval bench-caption bench-data bench-train bench-quality bench-retrieval clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(strip $(TORCH_PINS)),$(BIN)/pip install -q $(TORCH_PINS))
	$(BIN)/pip install -q -e '.[dev,cluster,retrieval,loggers,hf]' $(TORCH_PINS)
	touch $@

install: $(STAMP) ## Create .venv and install mmtrain with dev, cluster, retrieval and loggers extras (idempotent)

# Debian's chromium renders the HTML gallery in its test; installed when missing and we are root with apt.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ; } || \
		echo "chromium not available: the gallery's browser test will skip"

test: $(STAMP) browser ## Run the test suite (fast part)
	$(BIN)/python -m pytest -m "not slow and not gpu" -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile)

test-slow: $(STAMP) browser ## Run the slow tests
	$(BIN)/python -m pytest -m "slow and not gpu" -q

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check mmtrain tests scripts
	$(BIN)/ruff format --check mmtrain tests scripts

format: $(STAMP) ## Format with ruff
	$(BIN)/ruff check --fix mmtrain tests scripts
	$(BIN)/ruff format mmtrain tests scripts

demo: $(STAMP) ## Preprocess shapes, train, evaluate on test, caption a few images
	DEMO_OUT=$(DEMO_OUT) bash scripts/demo.sh

bench-eval: $(STAMP) ## Benchmark metrics against pycocoevalcap (JSON)
	$(BIN)/python scripts/bench_eval.py

bench-caption: $(STAMP) ## Benchmark decoding: KV cache vs none, and vs Hugging Face transformers (JSON, docs/benchmarks.md)
	$(BIN)/pip install -q -e '.[bench,hf]' $(TORCH_PINS)
	$(BIN)/python scripts/bench_caption.py

bench-train: $(STAMP) ## Benchmark training throughput: mmtrain fit vs a bare PyTorch loop (JSON, docs/benchmarks.md)
	$(BIN)/python scripts/bench_train.py

bench-data: $(STAMP) ## Benchmark the data path on real COCO photos: store vs JPEG loader, workers, feature cache (JSON)
	$(BIN)/python scripts/bench_data.py

bench-retrieval: $(STAMP) ## Benchmark image search: FAISS IVF-Flat vs exact search, 1M synthetic vectors (JSON; ~10 min)
	$(BIN)/python scripts/bench_retrieval.py

QUALITY_SEEDS ?= 0
bench-quality: $(STAMP) ## Quality on shapes: every fusion, SCST and ITC against their targets, QUALITY_SEEDS="0 1 2" (JSON, docs/benchmarks.md; ~45 min a seed)
	$(BIN)/python scripts/bench_quality.py --seeds $(QUALITY_SEEDS)

bench: bench-eval bench-caption bench-data bench-train bench-retrieval ## Re-run the speed benchmarks; each replaces its section of docs/benchmarks.md (bench-quality's stays until make bench-quality)

clean: ## Remove run outputs (keeps .venv)
	rm -rf runs outputs multirun
