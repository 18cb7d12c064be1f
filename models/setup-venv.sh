#!/bin/sh
# Create (idempotently) the Python environment that models/export.py and
# bench/overhead.py run in, and print its python path on stdout.
#
# The venv is made from Debian's /usr/bin/python3 with --system-site-packages, so
# Debian's CPU-only torch/torchvision (python3-torch, python3-torchvision) and onnx
# (python3-onnx) stay importable; only onnxruntime is installed into it.
#
# Environment:
#   VENV           venv directory (default: .deps/venv under the repository root)
#   ORT_VERSION    onnxruntime version to install (default 1.32.0). Use the version of
#                  the libonnxruntime.so that edgebench loads, so bench/overhead.py
#                  compares like with like.
#   ONNX_VERSION   onnx version to install (default 1.17.0): the quantiser of recent
#                  onnxruntime needs onnx >= 1.13, Debian ships 1.12; 1.17 writes IR 10,
#                  which ONNX Runtime 1.18 still reads.
#   ORT_WHEEL_DIR  directory holding onnxruntime wheels; a wheel of ORT_VERSION found
#                  there is installed instead of downloading it from the package index.
#
# All progress goes to stderr; stdout carries only the python path.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
venv=${VENV:-$root/.deps/venv}
ort_version=${ORT_VERSION:-1.32.0}
onnx_version=${ONNX_VERSION:-1.17.0}
wheel_dir=${ORT_WHEEL_DIR:-}
py=$venv/bin/python

log() { echo "setup-venv: $*" >&2; }

if [ ! -x /usr/bin/python3 ]; then
    log "error: /usr/bin/python3 not found (install Debian's python3, python3-torch, python3-torchvision)"
    exit 1
fi

# Already set up with the wanted onnxruntime: nothing to do.
if [ -x "$py" ]; then
    have=$("$py" -c 'import onnxruntime, onnxruntime.quantization, torch, onnx; print(onnxruntime.__version__, onnx.__version__)' 2>/dev/null || true)
    if [ "$have" = "$ort_version $onnx_version" ]; then
        log "$venv ready (onnxruntime $have)"
        echo "$py"
        exit 0
    fi
fi

if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    log "python3-venv missing; installing it with apt-get"
    if [ "$(id -u)" -ne 0 ]; then
        log "error: python3-venv is not installed and this is not root; run: apt-get install python3-venv"
        exit 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv >&2
fi

if [ ! -x "$py" ]; then
    log "creating $venv"
    mkdir -p "$(dirname "$venv")"
    /usr/bin/python3 -m venv --system-site-packages "$venv" >&2
fi

# Prefer a local wheel of the exact version (offline builds); else the index by name.
target="onnxruntime[quantization]==$ort_version"
if [ -n "$wheel_dir" ]; then
    for w in "$wheel_dir"/onnxruntime-"$ort_version"-*.whl; do
        if [ -f "$w" ]; then
            target="$w[quantization]"
            break
        fi
    done
fi

# Keep numpy below 2: Debian's torch is built against numpy 1.x.
constraints=$venv/constraints.txt
echo "numpy<2" >"$constraints"

log "installing $target and onnx==$onnx_version"
"$py" -m pip install --disable-pip-version-check --quiet -c "$constraints" "$target" "onnx==$onnx_version" >&2

if ! "$py" -c 'import onnxruntime, onnxruntime.quantization, torch, torchvision, onnx' >&2; then
    log "error: $venv cannot import onnxruntime, onnxruntime.quantization, torch, torchvision and onnx together"
    exit 1
fi
have=$("$py" -c 'import onnxruntime; print(onnxruntime.__version__)')
if [ "$have" != "$ort_version" ]; then
    log "error: installed onnxruntime $have, wanted $ort_version"
    exit 1
fi
log "$venv ready (onnxruntime $have)"
echo "$py"
