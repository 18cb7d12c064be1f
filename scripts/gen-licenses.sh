#!/usr/bin/env bash
# Regenerates what depends on the licences of the crates in Cargo.lock:
#  - THIRD-PARTY-LICENSES.md (cargo-about: each licence's text and the crates under it),
#    installed with the binary by the .deb, the Yocto recipe and the Buildroot package;
#  - the combined licence of the binary: LICENSE in the Yocto recipe and
#    EDGEBENCH_LICENSE in the Buildroot package;
#  - LIC_FILES_CHKSUM's md5 of LICENSE-MIT, LICENSE-APACHE and the notice.
# Rerun after any Cargo.lock change (new crate, update), then commit;
# scripts/check-licenses.sh (make test) fails until the files match.
#
#   scripts/gen-licenses.sh           rewrite the files
#   scripts/gen-licenses.sh --check   exit 1, naming the files, if any is stale
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cargo-tool.sh about >/dev/null

RECIPE=meta-edgebench/recipes-edgebench/edgebench/edgebench_git.bb
BR_MK=buildroot/package/edgebench/edgebench.mk
NOTICE=THIRD-PARTY-LICENSES.md

if [ "${1:-}" = --check ]; then
    # Regenerate in place, compare with what was there, and put the originals back.
    keep=$(mktemp -d)
    for f in "$RECIPE" "$BR_MK" "$NOTICE"; do
        mkdir -p "$keep/$(dirname "$f")"
        [ -f "$f" ] && cp "$f" "$keep/$f"
    done
    restore() { for f in "$RECIPE" "$BR_MK" "$NOTICE"; do [ -f "$keep/$f" ] && cp "$keep/$f" "$f" || rm -f "$f"; done; rm -rf "$keep"; }
    trap restore EXIT
    "$0" >/dev/null
    stale=""
    for f in "$RECIPE" "$BR_MK" "$NOTICE"; do
        cmp -s "$f" "$keep/$f" || stale="$stale $f"
    done
    if [ -n "$stale" ]; then
        echo "FAIL: licence files out of date with Cargo.lock:$stale"
        echo "      run scripts/gen-licenses.sh and commit the result"
        exit 1
    fi
    echo "ok   $NOTICE, recipe LICENSE and Buildroot EDGEBENCH_LICENSE match Cargo.lock"
    exit 0
fi

cargo about generate --frozen -c packaging/licenses/about.toml \
    packaging/licenses/notice.hbs -o "$NOTICE.tmp" 2>/tmp/gen-licenses.$$ ||
    { cat /tmp/gen-licenses.$$; rm -f /tmp/gen-licenses.$$ "$NOTICE.tmp"; exit 1; }
mv "$NOTICE.tmp" "$NOTICE"
ids=$(cargo about generate --frozen -c packaging/licenses/about.toml packaging/licenses/ids.hbs 2>/dev/null |
    grep . | sort -u | tr '\n' ' ')
rm -f /tmp/gen-licenses.$$

python3 - "$RECIPE" "$BR_MK" "$NOTICE" $ids <<'PY'
import hashlib, re, sys
recipe, mk, notice, *ids = sys.argv[1:]
md5 = lambda p: hashlib.md5(open(p, "rb").read()).hexdigest()
# Yocto: SPDX ids joined with "&"; Buildroot: comma-separated, own part first.
yocto = "(MIT | Apache-2.0) & " + " & ".join(ids)
br = "MIT or Apache-2.0 (edgebench), " + ", ".join(ids) + " (linked crates)"
text = open(recipe).read()
text = re.sub(r'^LICENSE = ".*"$', f'LICENSE = "{yocto}"', text, count=1, flags=re.M)
for name, path in (("MIT", "LICENSE-MIT"), ("APACHE", "LICENSE-APACHE"), ("THIRD", notice)):
    text = re.sub(rf'(file://{re.escape(path)};md5=)[0-9a-f@A-Z_]+', rf'\g<1>{md5(path)}', text)
open(recipe, "w").write(text)
text = open(mk).read()
text = re.sub(r'^EDGEBENCH_LICENSE = .*$', f'EDGEBENCH_LICENSE = {br}', text, count=1, flags=re.M)
open(mk, "w").write(text)
print(f"LICENSE = \"{yocto}\"")
PY
echo "wrote $NOTICE ($(grep -c '^- ' "$NOTICE") entries), $RECIPE, $BR_MK"
