#!/usr/bin/env bash
# Checks the Buildroot external tree against a Buildroot checkout given as
# BUILDROOT (2026.05 or later; skipped when unset):
#  - utils/check-package reports nothing for the tree's files;
#  - raspberrypi5_defconfig + configs/edgebench-aarch64.fragment merge, and
#    olddefconfig keeps every value of the fragment (dependencies satisfied);
#  - the packages' make metadata evaluates (show-info), and onnxruntime-bin
#    stops with a clear error while its wheel is unset.
# No build: Buildroot would download its toolchain and host tools.
set -euo pipefail
cd "$(dirname "$0")/.."
EXT=$PWD/buildroot

if [ -z "${BUILDROOT:-}" ]; then
    echo "skip Buildroot checks (set BUILDROOT to a Buildroot 2026.05+ checkout)"
    exit 0
fi
BUILDROOT=$(cd "$BUILDROOT" && pwd)
need=()
for t in rsync bc make file; do command -v $t >/dev/null || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import magic, flake8' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check python-magic flake8

fail=0
out=$(cd "$EXT" && "$BUILDROOT/utils/check-package" -b external.desc Config.in external.mk \
    package/*/Config.in package/*/*.mk configs/* 2>&1)
if echo "$out" | grep -q '^0 warnings generated'; then
    echo "ok   check-package: $(echo "$out" | head -n 1)"
else
    echo "FAIL: check-package:"
    echo "$out"
    fail=1
fi

O=$(mktemp -d)
trap 'rm -rf "$O"' EXIT
make -s -C "$BUILDROOT" BR2_EXTERNAL="$EXT" O="$O" raspberrypi5_defconfig >/dev/null
(cd "$O" && "$BUILDROOT/support/kconfig/merge_config.sh" -m .config "$EXT/configs/edgebench-aarch64.fragment" >/dev/null 2>&1)
make -s -C "$O" olddefconfig >/dev/null 2>&1
while IFS= read -r line; do
    case "$line" in '#'* | '') continue ;; esac
    if ! grep -qxF "$line" "$O/.config"; then
        echo "FAIL: olddefconfig dropped '$line' (got: $(grep "^${line%%=*}=" "$O/.config" || echo unset))"
        fail=1
    fi
done <"$EXT/configs/edgebench-aarch64.fragment"
[ $fail = 0 ] && echo "ok   raspberrypi5_defconfig + edgebench-aarch64.fragment: all values kept"

wheel=/nonexistent/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl
info=$(make -s -C "$O" BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL="$wheel" edgebench-show-info onnxruntime-bin-show-info 2>&1)
if echo "$info" | python3 -c '
import json, sys
pk = {}
for line in sys.stdin:
    if line.startswith("{"):
        pk.update(json.loads(line))
assert pk["edgebench"]["version"] and "host-rustc" in pk["edgebench"]["dependencies"], pk["edgebench"]
assert pk["onnxruntime-bin"]["version"] == "1.32.0", pk["onnxruntime-bin"]
print("ok   show-info: edgebench %s (deps %s), onnxruntime-bin %s" % (
    pk["edgebench"]["version"], " ".join(pk["edgebench"]["dependencies"]), pk["onnxruntime-bin"]["version"]))
'; then :; else
    echo "FAIL: show-info:"
    echo "$info" | tail -n 5
    fail=1
fi
out=$(make -s -C "$O" onnxruntime-bin-show-info 2>&1 || true)
if grep -q 'BR2_PACKAGE_ONNXRUNTIME_BIN_WHEEL is empty' <<<"$out"; then
    echo "ok   onnxruntime-bin without a wheel stops with a clear error"
else
    echo "FAIL: onnxruntime-bin without a wheel did not stop with the expected error"
    fail=1
fi
exit $fail
