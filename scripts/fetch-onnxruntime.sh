#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library (with its C API) from the `onnxruntime` wheel
# on PyPI and unpacks it into DEST/lib. Idempotent: does nothing when DEST already holds
# that version.
#   scripts/fetch-onnxruntime.sh VERSION DEST [PLATFORM]
# e.g. scripts/fetch-onnxruntime.sh 1.32.0 .deps/onnxruntime
# PLATFORM: a wheel platform tag for another machine, e.g. manylinux_2_28_aarch64
# (default: this machine's).
set -euo pipefail
version=${1:?usage: fetch-onnxruntime.sh VERSION DEST}
dest=${2:?usage: fetch-onnxruntime.sh VERSION DEST}
lib="$dest/lib/libonnxruntime.so.$version"
if [ -f "$lib" ]; then
  echo "onnxruntime $version already in $dest"
  exit 0
fi
case "${3:-$(uname -m)}" in
  manylinux_*) plat=$3 ;;
  x86_64) plat=manylinux_2_28_x86_64 ;;
  aarch64) plat=manylinux_2_28_aarch64 ;;
  *) echo "fetch-onnxruntime: no onnxruntime wheel for $(uname -m); set [onnxruntime] library" >&2; exit 1 ;;
esac
python=$(command -v python3 || true)
[ -n "$python" ] || { echo "fetch-onnxruntime: python3 with pip is needed" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching onnxruntime $version wheel ($plat)"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform "$plat" --dest "$tmp" "onnxruntime==$version"
whl=$(ls "$tmp"/onnxruntime-*.whl)
mkdir -p "$dest/lib"
"$python" - "$whl" "$dest/lib" <<'PY'
import sys, zipfile, os
whl, out = sys.argv[1], sys.argv[2]
found = False
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if n.startswith("onnxruntime/capi/") and (base.startswith("libonnxruntime.so") or base.startswith("libonnxruntime_providers_shared")):
            with z.open(n) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
            found = found or base.startswith("libonnxruntime.so")
if not found:
    sys.exit(f"{whl} carries no libonnxruntime.so (wheels before 1.19 link it into the Python module only)")
PY
ln -sf "libonnxruntime.so.$version" "$dest/lib/libonnxruntime.so"
echo "onnxruntime $version -> $dest/lib/libonnxruntime.so"
