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
# missing, default "bbparse") on a copy of the layer and source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD

: "${OE_CORE:?set OE_CORE to an openembedded-core or poky checkout}"
OE_CORE=$(cd "$OE_CORE" && pwd)
BITBAKE=${BITBAKE:-$OE_CORE/bitbake}
BITBAKE=$(cd "$BITBAKE" && pwd)
[ -x "$BITBAKE/bin/bitbake" ] || { echo "no bitbake in $BITBAKE"; exit 2; }
[ -d "$OE_CORE/meta/conf" ] || { echo "no meta/conf in $OE_CORE"; exit 2; }
MACHINE=${MACHINE:-qemuarm64}

# Host tools bitbake's sanity check asks for, and the en_US.UTF-8 locale it runs under:
# installed (Debian / Ubuntu, as root) when missing, instead of failing on them.
host_packages=(gawk wget diffstat unzip texinfo chrpath socat cpio xz-utils zstd lz4 file
    locales python3 python3-jinja2 python3-subunit python3-pexpect python3-git git
    build-essential)
missing=()
for p in "${host_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "bitbake needs: ${missing[*]} (install them as root)"; exit 2; }
    echo "installing for bitbake: ${missing[*]}"
    # One apt at a time on a shared machine (the lock file is harmless elsewhere).
    DEBIAN_FRONTEND=noninteractive flock /tmp/apt.lock apt-get -o DPkg::Lock::Timeout=600 \
        install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
    [ "$(id -u)" = 0 ] || { echo "bitbake needs the en_US.UTF-8 locale (locale-gen as root)"; exit 2; }
    sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen
    grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen || echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
    locale-gen >/dev/null
fi
BB_USER=${BB_USER:-bbparse}

work=$(mktemp -d /tmp/bbparse.XXXXXX)
# BBPARSE_KEEP=1 keeps the build directory (and its parse cache) for a look afterwards.
if [ "${BBPARSE_KEEP:-0}" = 1 ]; then
    echo "build directory: $work/build"
else
    trap 'rm -rf "$work"' EXIT
fi
# The layer and the source tree it builds from (without build outputs).
mkdir -p "$work/src"
tar -C "$SRC" --exclude=./target --exclude=./.git --exclude=./.deps -cf - . | tar -C "$work/src" -xf -
# A git checkout, as users have: externalsrc then hashes the tree with git (without
# git it walks every file, and warns about the test fixtures' dangling symlinks).
git -C "$work/src" init -q
git -C "$work/src" add -A
git -C "$work/src" -c user.name=bbparse -c user.email=bbparse@localhost commit -q -m snapshot

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

if [ "$(id -u)" = 0 ]; then
    id "$BB_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$BB_USER"
    chown -R "$BB_USER" "$work"
    chmod 755 "$work"
    export -f run
    out=$(su "$BB_USER" -s /bin/bash -c "work='$work' BITBAKE='$BITBAKE' GRAPH_TARGETS='${GRAPH_TARGETS:-}' bash -c run" 2>&1) && rc=0 || rc=$?
else
    out=$(run) && rc=0 || rc=$?
fi
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
