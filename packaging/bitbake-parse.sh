#!/usr/bin/env bash
# Parse meta-edgebench with bitbake (`bitbake -p`) against an openembedded-core
# + bitbake checkout of a release the layer declares, optionally with the board
# layers its dynamic-layers/ append to. Prints bitbake's output; exits non-zero
# if bitbake reports an error or a warning about meta-edgebench.
#
#   OE_CORE=... BITBAKE=... [EXTRA_LAYERS="path ..."] packaging/bitbake-parse.sh
#
# OE_CORE: an openembedded-core checkout (or poky's combined tree: its meta/ is used);
# BITBAKE: a bitbake checkout (default: $OE_CORE/bitbake when that exists).
# bitbake refuses to run as root: as root the parse runs as BB_USER (created if
# missing, default "bbparse") on a copy of the layer and source tree. The set-up
# (host tools, locale, user, tree copy) is shared with yocto-check-layer.sh:
# packaging/bitbake-common.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

. packaging/bitbake-common.sh
bb_setup
MACHINE=${MACHINE:-qemuarm64}

work=$(mktemp -d /tmp/bbparse.XXXXXX)
# BBPARSE_KEEP=1 keeps the build directory (and its parse cache) for a look afterwards.
if [ "${BBPARSE_KEEP:-0}" = 1 ]; then
    echo "build directory: $work/build"
else
    trap 'rm -rf "$work"' EXIT
fi
bb_copy_tree "$work/src"

layers="$OE_CORE/meta $work/src/meta-edgebench ${EXTRA_LAYERS:-}"
mkdir -p "$work/build/conf"
{
    echo 'BBPATH = "${TOPDIR}"'
    echo 'BBFILES ?= ""'
    echo "BBLAYERS = \"$layers\""
} >"$work/build/conf/bblayers.conf"
cat >"$work/build/conf/local.conf" <<CONF
MACHINE = "$MACHINE"
DISTRO = ""
BB_NO_NETWORK = "1"
INIT_MANAGER = "systemd"
DISTRO_FEATURES:append = " systemd usrmerge"
CONNECTIVITY_CHECK_URIS = ""
DL_DIR = "$work/downloads"
TMPDIR = "$work/tmp"
${LOCAL_CONF_EXTRA:-}
CONF

run() {
    cd "$work/build"
    export LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8
    export PATH="$BITBAKE/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    export BBPATH="$work/build"
    bitbake -p 2>&1 || return $?
    # What the layer's recipes became (from the parse cache): skips and key settings.
    bitbake-layers show-recipes 'edgebench*' 'packagegroup-edgebench' 2>&1 | sed -n '/^=== /,$p'
    bitbake -e edgebench >env.txt 2>&1 || { grep -E '^(ERROR|WARNING)' env.txt; return 1; }
    grep -E '^(EDGEBENCH_PROFILE|EDGEBENCH_DROPINS|PACKAGECONFIG|RDEPENDS:edgebench|RRECOMMENDS:edgebench|EXTERNALSRC|S|SRC_URI|SRCREV|PV|PACKAGE_ARCH|LICENSE|USERADD_PARAM:edgebench|GROUPADD_PARAM:edgebench|GROUPMEMS_PARAM:edgebench)=' env.txt
    for target in ${GRAPH_TARGETS:-}; do
        bitbake -g "$target" 2>&1 | grep -E '^(ERROR|WARNING)|^NOTE: PN build list' || true
    done
}

out=$(BB_PASS=GRAPH_TARGETS bb_run "$work" run 2>&1) && rc=0 || rc=$?
echo "$out" | grep -v '^NOTE: Started PRServer\|^Loading cache\|^Loaded .* entries from dependency cache\|Parsing recipes\.\.\.$'
if [ $rc -ne 0 ] || echo "$out" | grep -q '^ERROR:'; then
    echo "FAIL: bitbake -p exited with $rc"
    exit 1
fi
if echo "$out" | grep '^WARNING:' | grep -q 'meta-edgebench\|edgebench[-_]'; then
    echo "FAIL: bitbake warned about meta-edgebench"
    exit 1
fi
echo "ok   bitbake -p parsed meta-edgebench ($(basename "$OE_CORE"), MACHINE=$MACHINE)"
