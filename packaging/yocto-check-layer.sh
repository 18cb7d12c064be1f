#!/usr/bin/env bash
# Run openembedded-core's yocto-check-layer on meta-edgebench, in a build directory
# made with oe-init-build-env (MACHINE qemuarm64 unless MACHINE is set, BB_NO_NETWORK),
# against an openembedded-core + bitbake checkout of a release the layer declares.
# Only meta-edgebench is checked, with openembedded-core alone: its dynamic layers
# stay inactive. Prints yocto-check-layer's output, then one line per test;
# exits non-zero when a test fails or yocto-check-layer does not finish.
#
#   OE_CORE=... BITBAKE=... packaging/yocto-check-layer.sh
#
# OE_CORE: an openembedded-core checkout (or poky's combined tree);
# BITBAKE: a bitbake checkout (default: $OE_CORE/bitbake when that exists).
# LOCAL_CONF_EXTRA: lines appended to local.conf. YCL_KEEP=1 keeps the build directory.
# Each signature test generates the signatures of a world build: expect tens of
# minutes on a small machine.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
. packaging/bitbake-common.sh
bb_setup
MACHINE=${MACHINE:-qemuarm64}

work=$(mktemp -d /tmp/yocto-check-layer.XXXXXX)
if [ "${YCL_KEEP:-0}" = 1 ]; then
    echo "build directory: $work/build"
else
    trap 'rm -rf "$work"' EXIT
fi
bb_copy_tree "$work/src"

check() {
    set -e
    cd "$work"
    export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8
    export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    # Adds bitbake and openembedded-core's scripts (yocto-check-layer) to PATH.
    set +u
    . "$OE_CORE/oe-init-build-env" "$work/build" "$BITBAKE" >/dev/null
    set -u
    cat >>conf/local.conf <<CONF

MACHINE = "$MACHINE"
BB_NO_NETWORK = "1"
DL_DIR = "$work/downloads"
SSTATE_DIR = "$work/sstate-cache"
$LOCAL_CONF_EXTRA
CONF
    yocto-check-layer --no-auto-dependency --output-log "$work/yocto-check-layer.log" \
        "$work/src/meta-edgebench"
}
export MACHINE LOCAL_CONF_EXTRA="${LOCAL_CONF_EXTRA:-}"
start=$(date +%s)
BB_PASS="MACHINE LOCAL_CONF_EXTRA" bb_run "$work" check && rc=0 || rc=$?
echo "yocto-check-layer exited with $rc after $(( $(date +%s) - start )) s"

# One line per test: unittest logs "test_x (module.Class.test_x)", then " ... result".
echo "Results:"
awk '/^INFO: (test_[a-z_]+|setUpClass) \(/ { name = $2; sub(/^\(/, "", $3); sub(/\..*/, "", $3); mod = $3; next }
     /^INFO: +\.\.\. / && name != "" { sub(/^INFO: +\.\.\. /, ""); printf "  %s.%s: %s\n", mod, name, $0; name = "" }
     /^INFO: [^ ]+ \.\.\. (PASS|FAIL|SKIPPED)/ { sub(/^INFO: /, ""); print "  layer " $0 }' \
    "$work/yocto-check-layer.log" || true
if [ $rc -ne 0 ]; then
    echo "FAIL: yocto-check-layer on meta-edgebench (exit $rc)"
    exit 1
fi
echo "ok   yocto-check-layer passed meta-edgebench ($(basename "$OE_CORE"), MACHINE=$MACHINE)"
