#!/usr/bin/env bash
# The whole test suite (called by `make test`, after the set-up steps).
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEBENCH_ORT_OLD=${EDGEBENCH_ORT_OLD:-.deps/onnxruntime-1.19.2/lib/libonnxruntime.so}
# The TFLite tests skip without their assets; after scripts/fetch-tflite.sh they must run
# (x86-64: the only architecture with a registry build of the library).
if [ "$(uname -m)" = x86_64 ]; then
  export EDGEBENCH_REQUIRE_TFLITE=${EDGEBENCH_REQUIRE_TFLITE:-1}
fi
cargo fmt --all -- --check
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi
