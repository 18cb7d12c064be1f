#!/usr/bin/env bash
# Pins the revision the image recipes build: Yocto's SRCREV (edgebench_git.bb) and
# Buildroot's EDGEBENCH_VERSION (edgebench.mk) become the current commit (HEAD), which
# must be clean and hold the Cargo.lock, licence files and packaging/docs the recipes
# use. Commit the result. With BUILDROOT set (a Buildroot 2026.05+ checkout) it also
# downloads the pinned revision the way Buildroot does (git + cargo vendor) and writes
# the tarball's sha256 into edgebench.hash; without it, edgebench.hash keeps the old
# entry and scripts/check-buildroot.sh reports it stale.
#
#   packaging/pin-srcrev.sh            pin HEAD
#   packaging/pin-srcrev.sh --check    exit 1 if the pin is stale (scripts/check-yocto.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=meta-edgebench/recipes-edgebench/edgebench/edgebench_git.bb
BR_MK=buildroot/package/edgebench/edgebench.mk
pinned=$(sed -n 's/^SRCREV = "\(.*\)"$/\1/p' "$RECIPE")

# What the pinned revision must agree with the work tree on: the recipes' crate list
# and LIC_FILES_CHKSUM are computed from these files.
FILES=(Cargo.lock LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md)

if [ "${1:-}" = --check ]; then
    if ! git cat-file -e "$pinned^{commit}" 2>/dev/null; then
        echo "FAIL: SRCREV $pinned of $RECIPE is not a commit of this repository (shallow clone?)"
        exit 1
    fi
    stale=""
    for f in "${FILES[@]}"; do
        git show "$pinned:$f" 2>/dev/null | cmp -s - "$f" || stale="$stale $f"
    done
    br=$(sed -n 's/^EDGEBENCH_VERSION = //p' "$BR_MK")
    [ "$br" = "$pinned" ] || stale="$stale $BR_MK(EDGEBENCH_VERSION=$br)"
    if [ -n "$stale" ]; then
        echo "FAIL: the pinned revision ${pinned:0:12} differs from the work tree in:$stale"
        echo "      commit, then run packaging/pin-srcrev.sh and commit again"
        exit 1
    fi
    echo "ok   SRCREV ${pinned:0:12} (Yocto) = EDGEBENCH_VERSION (Buildroot); its ${FILES[*]} match the work tree"
    exit 0
fi

if [ -n "$(git status --porcelain -- "${FILES[@]}" packaging/docs systemd configs src Cargo.toml)" ]; then
    echo "pin-srcrev: commit first: the pin must name a commit holding the current files" >&2
    exit 1
fi
rev=$(git rev-parse HEAD)
sed -i "s/^SRCREV = \".*\"$/SRCREV = \"$rev\"/" "$RECIPE"
sed -i "s/^EDGEBENCH_VERSION = .*/EDGEBENCH_VERSION = $rev/" "$BR_MK"
echo "pinned $rev in $RECIPE and $BR_MK"
if [ -n "${BUILDROOT:-}" ]; then
    scripts/check-buildroot.sh --rehash
else
    hash=buildroot/package/edgebench/edgebench.hash
    {
        echo "# Locally computed: the licence files of the pinned revision. The sha256 of the"
        echo "# download itself (edgebench-<version>-git4-cargo5.tar.gz: the pinned commit plus"
        echo "# its vendored crates) is added by packaging/pin-srcrev.sh with BUILDROOT set, which"
        echo "# runs \`make edgebench-source\` (Buildroot packs it with GNU tar 1.35 or newer)."
        for f in LICENSE-MIT LICENSE-APACHE THIRD-PARTY-LICENSES.md; do
            printf 'sha256  %s  %s\n' "$(git show "$rev:$f" | sha256sum | cut -d' ' -f1)" "$f"
        done
    } >"$hash"
    echo "wrote the licence hashes of $hash; set BUILDROOT to add the download's sha256"
fi
