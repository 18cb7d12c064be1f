#!/usr/bin/env bash
# The whole test suite (called by `make test`, after the set-up steps): formatting, the
# crate's unit and integration tests (real ONNX Runtime, TFLite, mosquitto, telemetry
# fixtures), then the packaging checks (systemd units, Yocto layer, Buildroot tree,
# Debian packages, aarch64 cross build with unit tests under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEBENCH_ORT_OLD=${EDGEBENCH_ORT_OLD:-.deps/onnxruntime-1.19.2/lib/libonnxruntime.so}
# The TFLite tests must run, not skip, where the x86-64 test library exists.
[ "$(uname -m)" = x86_64 ] && export EDGEBENCH_REQUIRE_TFLITE=1

status=0
step() {
  echo "== $*"
  local t0=$SECONDS
  if "$@"; then echo "== ok ($((SECONDS - t0)) s): $*"; else echo "== FAILED ($((SECONDS - t0)) s): $*"; status=1; fi
}

step cargo fmt --all -- --check
if cargo nextest --version >/dev/null 2>&1; then
  step cargo nextest run --locked --no-fail-fast
else
  step cargo test --locked --no-fail-fast
fi
step scripts/check-systemd.sh
step scripts/check-licenses.sh
step scripts/check-yocto.sh
step scripts/check-buildroot.sh
step scripts/check-aarch64.sh
step scripts/check-deb.sh
exit $status
