# edgebench: the two commands of the README.
#   make bench   set up everything, then run the `quick` sweep on the CPU
#   make test    install what the tests need, then run the whole test suite
SHELL := /bin/bash
ORT_VERSION ?= 1.32.0
# An older ONNX Runtime the tests also run against (JetPack-era builds are 1.18-1.20).
ORT_OLD_VERSION ?= 1.19.2
CARGO ?= cargo
BIN := target/release/edgebench

.PHONY: bench test chaos deps models build clean-models bench-overhead bench-fleet-load bench-fleet-crash bench-knee

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
	integrations/node-red/install.sh
	integrations/grafana/setup-venv.sh
	scripts/fetch-onnxruntime.sh $(ORT_VERSION) .deps/onnxruntime
	scripts/fetch-onnxruntime.sh $(ORT_OLD_VERSION) .deps/onnxruntime-$(ORT_OLD_VERSION)
	scripts/fetch-tflite.sh .deps/tflite
	scripts/test.sh

# The chaos suite at full size (make test runs it bounded): 200 power cuts, 50 broker
# kill -9 per persistence setting, partitions, a full disk, 1,000 back-to-back sweeps.
# Needs root (the disk-full test mounts a small tmpfs). Figures: `CHAOS ...` lines.
chaos:
	scripts/install-deps.sh test
	scripts/fetch-onnxruntime.sh $(ORT_VERSION) .deps/onnxruntime
	set -o pipefail; EDGEBENCH_CHAOS_POWER_CUTS=200 EDGEBENCH_CHAOS_BROKER_KILLS=50 EDGEBENCH_CHAOS_SOAK_SWEEPS=1000 \
	  $(CARGO) test --locked --test chaos -- --nocapture --test-threads=1 2>&1 | tee target/chaos.log
	@grep '^CHAOS' target/chaos.log

# Harness overhead: edgebench's p50 against a minimal Python onnxruntime loop, same
# library, same settings, alternating rounds (run it on a quiet machine).
bench-overhead: deps models build
	.deps/venv/bin/python bench/overhead.py --edgebench $(BIN) \
	  --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build --rounds 6 --seconds 10

# Fleet store: ingest from 1,000 simulated boards (mosquitto_sub vs collect into SQLite
# and PostgreSQL, same run), and 50 kill -9 of the collector during a stream per engine.
bench-fleet-load:
	scripts/install-deps.sh test
	bench/fleet-load.sh

bench-fleet-crash:
	scripts/install-deps.sh test
	bench/fleet-crash.sh

# Longer run of the command-parsing fuzz test (make test runs 4,000 cases).
fuzz-commands:
	EDGEBENCH_FUZZ_ITERS=$${EDGEBENCH_FUZZ_ITERS:-200000} cargo test --release --lib mqtt::fuzz -- --nocapture

# `--batch auto` against the full grid 1..64 on the quick models: same knee (within one
# grid step) in at most 40 % of the grid's wall time (run it on a quiet machine).
bench-knee: deps models build
	bench/knee-auto.py --edgebench $(BIN) \
	  --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build

clean-models:
	rm -rf models/build

# `edgebench report` over 1,000,000 generated result records (bench/report-records.py):
# wall and CPU time of the tables and of the HTML, peak memory.
.PHONY: bench-report
bench-report: build
	bench/report.sh
