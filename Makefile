# edgebench: the two commands of the README.
#   make bench   set up everything, then run the `quick` sweep on the CPU
#   make test    install what the tests need, then run the whole test suite
SHELL := /bin/bash
ORT_VERSION ?= 1.32.0
# An older ONNX Runtime the tests also run against (JetPack-era builds are 1.18-1.20).
ORT_OLD_VERSION ?= 1.19.2
CARGO ?= cargo
BIN := target/release/edgebench

.PHONY: bench test deps models build clean-models bench-overhead bench-knee

bench: deps models build
	$(BIN) run --sweep quick

deps:
	scripts/fetch-onnxruntime.sh $(ORT_VERSION) .deps/onnxruntime

models:
	scripts/install-deps.sh bench
	ORT_VERSION=$(ORT_VERSION) models/setup-venv.sh >/dev/null
	.deps/venv/bin/python models/export.py --set quick --out models/build

build:
	$(CARGO) build --release --locked

test:
	scripts/install-deps.sh test
	scripts/fetch-onnxruntime.sh $(ORT_VERSION) .deps/onnxruntime
	scripts/fetch-onnxruntime.sh $(ORT_OLD_VERSION) .deps/onnxruntime-$(ORT_OLD_VERSION)
	scripts/fetch-tflite.sh .deps/tflite
	scripts/test.sh

# Harness overhead: edgebench's p50 against a minimal Python onnxruntime loop, same
# library, same settings, alternating rounds (run it on a quiet machine).
bench-overhead: deps models build
	.deps/venv/bin/python bench/overhead.py --edgebench $(BIN) \
	  --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build --rounds 6 --seconds 10

# `--batch auto` against the full grid 1..64 on the quick models: same knee (within one
# grid step) in at most 40 % of the grid's wall time (run it on a quiet machine).
bench-knee: deps models build
	bench/knee-auto.py --edgebench $(BIN) \
	  --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build

clean-models:
	rm -rf models/build
