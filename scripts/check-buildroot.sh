#!/usr/bin/env bash
# Checks the Buildroot external tree against a Buildroot checkout given as
# BUILDROOT (2026.05 or later; skipped when unset):
#  - utils/check-package reports nothing for the tree's files;
#  - raspberrypi5_defconfig + configs/edgebench-aarch64.fragment merge, and
#    olddefconfig keeps every value of the fragment (dependencies satisfied);
#  - the packages' make metadata evaluates (show-info);
#  - with --rehash (packaging/pin-srcrev.sh) or SOURCE=1: `make edgebench-source`
#    downloads the pinned revision with git and vendors the crates (cargo-package's
#    download step); --rehash writes the tarball's sha256 to edgebench.hash, SOURCE=1
#    checks it, then compiles the vendored source with cargo check, offline (in a
#    namespace without network), to show that the download step brought every crate.
#    Buildroot's own Rust (host-rust-bin, with the target's rust-std) comes from a
#    server the machine may not reach: RUST_FROM_RUSTUP=1 installs the rustc and cargo
#    found on PATH (rustup's, or an unpacked rust-<version> release) in its place. The
#    tarball is cargo vendor's output: check it with the cargo of host-rust-bin's
#    version when the two may differ (cargo 1.95 and 1.96 make the same one).
#    Buildroot makes git tarballs with GNU tar 1.35 or newer: with an older host tar it
#    builds host-tar first, which it downloads from the GNU mirror; without access to
#    that, put a tar >= 1.35 first on PATH (README.md, Buildroot: "GNU tar 1.35").
# No full image build: Buildroot would download its cross toolchain and host tools.
set -euo pipefail
cd "$(dirname "$0")/.."
EXT=$PWD/buildroot

fail=0
# Without Buildroot: every package has a .hash, none opts out of hash checking, the
# hash of the pinned edgebench download names the pinned version, and the crate's
# release profile does not strip behind Buildroot's back.
for pkg in "$EXT"/package/*/; do
    name=$(basename "$pkg")
    [ -f "$pkg/$name.hash" ] || { echo "FAIL: package $name has no $name.hash"; fail=1; }
done
if grep -rn 'BR_NO_CHECK_HASH_FOR' "$EXT"; then
    echo "FAIL: BR_NO_CHECK_HASH_FOR in the external tree"
    fail=1
fi
version=$(sed -n 's/^EDGEBENCH_VERSION = //p' "$EXT/package/edgebench/edgebench.mk")
# edgebench-<version>-git4-cargo5.tar.gz in Buildroot 2026.05 (the suffixes name the
# format versions of the git download and of the vendoring).
if [ "${1:-}" != --rehash ] &&
    ! grep -Eq "  edgebench-$version-git[0-9]+(-cargo[0-9]+)?\.tar\.gz$" "$EXT/package/edgebench/edgebench.hash"; then
    # Only Buildroot (with GNU tar 1.35) makes the tarball whose hash this is.
    echo "note edgebench.hash has no sha256 for the pinned edgebench-${version:0:12} download yet: run packaging/pin-srcrev.sh with BUILDROOT set"
fi
grep -q '^EDGEBENCH_CARGO_ENV = CARGO_PROFILE_RELEASE_STRIP=false' "$EXT/package/edgebench/edgebench.mk" ||
    { echo "FAIL: edgebench.mk does not leave stripping to Buildroot"; fail=1; }
[ $fail = 0 ] && echo "ok   .hash for every package, none skipped; strip left to Buildroot"

if [ -z "${BUILDROOT:-}" ]; then
    echo "skip Buildroot checks that need a checkout (set BUILDROOT to a Buildroot 2026.05+ checkout)"
    exit $fail
fi
BUILDROOT=$(cd "$BUILDROOT" && pwd)
# The host tools Buildroot's dependency check asks for (support/dependencies), as
# Debian packages.
need=()
for t in rsync bc make file cpio unzip wget patch git perl bzip2 g++; do
    command -v $t >/dev/null || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -c 'import magic, flake8' 2>/dev/null ||
    python3 -m pip install --quiet --disable-pip-version-check python-magic flake8

out=$(cd "$EXT" && "$BUILDROOT/utils/check-package" -b external.desc Config.in external.mk \
    package/*/Config.in package/*/*.mk package/*/*.hash configs/* 2>&1)
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

info=$(make -s -C "$O" edgebench-show-info onnxruntime-bin-show-info 2>&1)
if echo "$info" | python3 -c '
import json, sys
pk = {}
for line in sys.stdin:
    if line.startswith("{"):
        pk.update(json.loads(line))
e, o = pk["edgebench"], pk["onnxruntime-bin"]
assert e["version"] and "host-rustc" in e["dependencies"], e
assert o["version"] == "1.32.0", o
print("ok   show-info: edgebench %s (deps %s), onnxruntime-bin %s" % (
    e["version"][:12], " ".join(e["dependencies"]), o["version"]))
'; then :; else
    echo "FAIL: show-info:"
    echo "$info" | tail -n 5
    fail=1
fi

if [ "${1:-}" = --rehash ] || [ "${SOURCE:-0}" = 1 ]; then
    # Buildroot's own check (support/dependencies/check-host-tar.sh): GNU tar >= 1.35,
    # else it builds host-tar, whose source it must download first.
    tarv=$(tar --version 2>/dev/null | sed -n '1s/^tar (GNU tar) \([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
    old_tar=""
    if [ -z "$tarv" ] || [ "${tarv% *}" -lt 1 ] || { [ "${tarv% *}" = 1 ] && [ "${tarv#* }" -lt 35 ]; }; then
        old_tar="$(command -v tar) is $(tar --version 2>/dev/null | head -n 1 || echo 'not GNU tar')"
        echo "note $old_tar, older than 1.35: Buildroot builds host-tar first (its source comes from the GNU mirror)"
    fi
    dl=$(mktemp -d)
    echo "BR2_DL_DIR=\"$dl\"" >>"$O/.config"
    if [ "${1:-}" = --rehash ]; then
        # The download's own hash is what is being computed: let Buildroot skip checking
        # it this once (the board's defconfig forces hash checks for every download).
        sed -i 's/^BR2_DOWNLOAD_FORCE_CHECK_HASHES=y$/# BR2_DOWNLOAD_FORCE_CHECK_HASHES is not set/' "$O/.config"
    fi
    make -s -C "$O" olddefconfig >/dev/null 2>&1
    if [ "${RUST_FROM_RUSTUP:-0}" = 1 ]; then
        # rust-bin's layout with an install.sh that links the toolchain of the rustc on PATH.
        fake=$O/rust-from-rustup
        mkdir -p "$fake/std/stub"
        printf '#!/bin/sh\nfor a; do case $a in --prefix=*) p=${a#--prefix=};; esac; done\nt=$(rustc --print sysroot)\nmkdir -p "$p/bin"\nfor b in rustc cargo rustdoc; do ln -sf "$t/bin/$b" "$p/bin/$b"; done\n' >"$fake/install.sh"
        rv=$(sed -n 's/^RUST_BIN_VERSION = //p' "$BUILDROOT/package/rust-bin/rust-bin.mk")
        mkdir -p "$fake/std/rust-std-$rv-aarch64-unknown-linux-gnu"
        printf '#!/bin/sh\nexit 0\n' >"$fake/std/rust-std-$rv-aarch64-unknown-linux-gnu/install.sh"
        chmod +x "$fake/install.sh" "$fake"/std/*/install.sh
        echo "HOST_RUST_BIN_OVERRIDE_SRCDIR = $fake" >"$O/local.mk"
    fi
    name=$(make -s -C "$O" printvars VARS=EDGEBENCH_SOURCE | sed -n 's/^EDGEBENCH_SOURCE=//p')
    tarball=$dl/edgebench/$name
    # --rehash: not checked this once (BR_NO_CHECK_HASH_FOR on the command line, nothing
    # in the tree); SOURCE=1 checks it against edgebench.hash, hash checks forced.
    nocheck=()
    [ "${1:-}" = --rehash ] && nocheck=(BR_NO_CHECK_HASH_FOR="$name")
    t0=$(date +%s)
    if ! make -C "$O" "${nocheck[@]}" edgebench-source >"$O/source.log" 2>&1; then
        tail -n 20 "$O/source.log"
        if [ -n "$old_tar" ] && grep -q 'host-tar\|/tar-1\.[0-9]*\.cpio' "$O/source.log"; then
            echo "FAIL: make edgebench-source: $old_tar and Buildroot could not fetch the source of"
            echo "      host-tar; put GNU tar 1.35 or newer first on PATH (README.md, Buildroot: \"GNU tar 1.35\")"
        elif grep -q "ERROR: $name has wrong sha256 hash" "$O/source.log"; then
            echo "FAIL: make edgebench-source: $name differs from the sha256 in edgebench.hash"
            echo "      (a stale pin: run packaging/pin-srcrev.sh with BUILDROOT set and commit)"
        elif grep -q "ERROR: No hash found for $name" "$O/source.log"; then
            echo "FAIL: make edgebench-source: edgebench.hash has no sha256 for $name:"
            echo "      run packaging/pin-srcrev.sh with BUILDROOT set and commit"
        else
            echo "FAIL: make edgebench-source"
        fi
        rm -rf "$dl"
        exit 1
    fi
    sum=$(sha256sum "$tarball" | cut -d' ' -f1)
    cargo_v=$("$O/host/bin/cargo" --version 2>/dev/null | cut -d' ' -f2)
    echo "ok   make edgebench-source in $(( $(date +%s) - t0 )) s with $(tar --version | head -n 1), cargo ${cargo_v:-?}: $name ($(du -k "$tarball" | cut -f1) KiB, $(tar tzf "$tarball" | sed -n 's|^[^/]*/VENDOR/\([^/]*\)/.*|\1|p' | sort -u | wc -l) vendored crates)"
    echo "     sha256 $sum"
    if [ "${1:-}" != --rehash ]; then
        # Buildroot's check-hash prints one line per checked hash of the download.
        if grep -q "^$name: OK (sha256: $sum)" "$O/source.log"; then
            echo "ok   Buildroot checked the download against edgebench.hash (sha256 OK)"
        else
            echo "FAIL: no sha256 check of $name in Buildroot's output"
            fail=1
        fi
    fi
    if [ "${1:-}" = --rehash ]; then
        printf '# Locally computed: the git download of the pinned revision with its crates\n# vendored (make edgebench-source; packaging/pin-srcrev.sh)\nsha256  %s  %s\n' \
            "$sum" "$(basename "$tarball")" >"$EXT/package/edgebench/edgebench.hash"
        for f in LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md; do
            printf 'sha256  %s  %s\n' "$(git show "$version:$f" | sha256sum | cut -d' ' -f1)" "$f" \
                >>"$EXT/package/edgebench/edgebench.hash"
        done
        echo "wrote $EXT/package/edgebench/edgebench.hash"
    fi
    # The build step needs nothing from the network: build the vendored tree offline.
    src=$(mktemp -d)
    tar -C "$src" -xzf "$tarball"
    if (cd "$src"/edgebench-* && unshare -n env CARGO_HOME="$src/cargo-home" \
            sh -c 'cargo fetch --offline --locked && cargo check --offline --locked --bin edgebench' >"$src/build.log" 2>&1); then
        echo "ok   the vendored source resolves and compiles offline (unshare -n: cargo fetch and cargo check --offline --locked)"
    else
        tail -n 15 "$src/build.log"
        echo "FAIL: the vendored source does not build offline"
        fail=1
    fi
    rm -rf "$src" "$dl"
fi
exit $fail
