# Two entry points (see README): `make bench` runs the benchmark suite on its default backend,
# `make test` runs the plugin's own checks. Both create .venv and install everything they need.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
K ?= resnet18
BENCH_JSON ?= results/bench.json
STUBS_VERSION ?= 10.13.0.35.1

.PHONY: venv bench smoke rtx-smoke rtx-versions test lint typecheck typings unit clean

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel

venv: $(BIN)/activate
	$(BIN)/python -m pip install -q -e '.[dev,rtx,modelopt]'
	@# trained ONNX models from outside the project (PP-OCRv4 text detector and recognizer, Silero's
	@# stateful voice-activity detector) for the verdict tests: only the packages' model files are used,
	@# so their own dependencies are not installed
	$(BIN)/python -m pip install -q --no-deps 'rapidocr-onnxruntime==1.4.4' 'silero-vad==6.2.3'
	@# Apache Otava's change-point detection for `pytest-trt report`: without its dependencies, whose
	@# pins (numpy==2.2.0, Google Cloud, Slack) the module it is used for does not need
	$(BIN)/python -m pip install -q --no-deps 'apache-otava==0.8.0'

bench: venv
	mkdir -p $(dir $(BENCH_JSON))
	$(BIN)/python -m pytest benchmarks -k '$(K)' --benchmark-json=$(BENCH_JSON) $(ARGS)

smoke: venv
	mkdir -p results
	$(BIN)/python -m pytest benchmarks -m smoke --benchmark-json=results/smoke.json $(ARGS)

# Real TensorRT-RTX builds of every smoke model and precision (status "built" without a GPU).
rtx-smoke: venv
	mkdir -p results
	$(BIN)/python -m pytest benchmarks -m smoke --trt-backend=tensorrt_rtx --benchmark-json=results/rtx-smoke.json $(ARGS)

# The smoke tier, ResNet18, a segmenter and a user's two-input graph built by every TensorRT-RTX version on
# PyPI, each in its own environment (.rtx/VERSION), then side by side (docs/rtx-versions.md).
rtx-versions: venv
	PY=$(BIN)/python bash .ci/rtx_versions.sh

# TensorRT type stubs pin tensorrt itself, so they are unpacked into typings/ for mypy only
# (installing them would make `import tensorrt` succeed as an empty namespace).
typings: venv
	@if [ ! -f typings/tensorrt/__init__.pyi ]; then \
	  d=$$(mktemp -d) && $(BIN)/python -m pip download -q --no-deps -d $$d tensorrt-stubs==$(STUBS_VERSION) && \
	  $(BIN)/python .ci/trt_stubs.py $$d/*.whl typings; \
	fi

lint: venv
	$(BIN)/ruff check pytest_trt tests benchmarks conftest.py
	$(BIN)/ruff format --check pytest_trt tests benchmarks conftest.py

typecheck: typings
	$(BIN)/mypy

unit: venv
	$(BIN)/python -m pytest tests -q $(ARGS)

# rtx-smoke before smoke: its cases are "built" (skipped), and the run should close on tests that ran.
test: lint typecheck unit rtx-smoke smoke

clean:
	rm -rf $(VENV) typings/tensorrt typings/tensorrt_bindings results .benchmarks .rtx
