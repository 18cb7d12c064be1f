#!/usr/bin/env bash
# Checks meta-edgebench:
#  - oelint-adv (from PyPI) reports no errors for the layer's recipes and appends;
#  - the committed edgebench-crates.inc matches Cargo.lock;
#  - the recipe's version matches Cargo.toml, and LIC_FILES_CHKSUM matches the file;
#  - with OE_CORE (and BITBAKE) set to checkouts of a release the layer declares:
#    `bitbake -p` with the layer added reports no errors (packaging/bitbake-parse.sh;
#    EXTRA_LAYERS adds board layers). Skipped otherwise.
#  - with OE_CORE and YOCTO_CHECK_LAYER=1: yocto-check-layer passes the layer
#    (packaging/yocto-check-layer.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

OELINT_VERSION=9.11.2
LAYER=meta-edgebench
RECIPE_DIR=$LAYER/recipes-edgebench/edgebench
fail=0

if ! command -v oelint-adv >/dev/null || [ "$(oelint-adv --version 2>/dev/null | awk '{print $2}')" != "$OELINT_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
fi

# No suppressed rule except one, for a file we do not write by hand:
#  vars.inconspaces        only in edgebench-crates.inc, whose layout oe-core's generator fixes
mapfile -t files < <(find "$LAYER" -name '*.bb' -o -name '*.bbappend' | sort)
out=$(oelint-adv --quiet --release=wrynose --mode=all --hide=info --relpaths \
    --constantmods=+packaging/oelint-constants.json \
    "${files[@]}" 2>&1 || true)
out=$(echo "$out" | grep -v 'edgebench-crates.inc:[0-9]*:error:oelint.vars.inconspaces' | grep . || true)
errors=$(echo "$out" | grep -c ':error:' || true)
warnings=$(echo "$out" | grep -c ':warning:' || true)
[ -n "$out" ] && echo "$out"
if [ "$errors" -ne 0 ]; then
    echo "FAIL: oelint-adv: $errors error(s)"
    fail=1
else
    echo "ok   oelint-adv $OELINT_VERSION: ${#files[@]} files, 0 errors, $warnings warning(s)"
fi

python3 packaging/gen-crates-inc.py --check || fail=1

# Recipe version (PV = "<crate version>+git") = crate version.
crate_version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
recipe=$RECIPE_DIR/edgebench_git.bb
recipe_version=$(sed -n 's/^PV = "\(.*\)+git"$/\1/p' "$recipe")
if [ "$recipe_version" != "$crate_version" ]; then
    echo "FAIL: $recipe has PV ${recipe_version:-?}+git, Cargo.toml says $crate_version"
    fail=1
else
    echo "ok   recipe PV $recipe_version+git = Cargo.toml"
fi
# The pinned revision holds the Cargo.lock the crate list was made from, and the
# licence files LIC_FILES_CHKSUM names.
packaging/pin-srcrev.sh --check || fail=1

# LIC_FILES_CHKSUM entries that point into the source tree (file://<path>;beginline;endline;md5).
python3 - "$recipe" <<'PY' || fail=1
import hashlib, re, sys
text = open(sys.argv[1]).read()
m = re.search(r'^LIC_FILES_CHKSUM = "((?:[^"\\]|\\\n)*)"', text, re.M)
bad = 0
for entry in m.group(1).replace("\\\n", " ").split():
    path, *params = entry[len("file://"):].split(";")
    p = dict(x.split("=", 1) for x in params)
    # Bytes as bitbake reads them (no newline translation: some licence texts use CRLF).
    lines = open(path, "rb").read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    lines = [l + b"\n" for l in lines]
    begin, end = int(p.get("beginline", 1)), int(p.get("endline", len(lines)))
    got = hashlib.md5(b"".join(lines[begin - 1:end])).hexdigest()
    if got != p["md5"]:
        print(f"FAIL: LIC_FILES_CHKSUM {path} lines {begin}-{end}: md5 {got}, recipe says {p['md5']}"
              f" (first line now: {lines[begin - 1].strip().decode(errors='replace')!r}; scripts/gen-licenses.sh rewrites it)")
        bad = 1
    else:
        print(f"ok   LIC_FILES_CHKSUM {path} lines {begin}-{end}")
sys.exit(bad)
PY

# Models: the archive layout installed by edgebench-models = what the profiles name.
scripts/check-models-layout.sh || fail=1

if [ -n "${OE_CORE:-}" ]; then
    packaging/bitbake-parse.sh || fail=1
else
    echo "skip bitbake -p (set OE_CORE, and BITBAKE unless OE_CORE is poky, to parse the layer)"
fi
# yocto-check-layer generates world signatures four times (tens of minutes): on request.
if [ -n "${OE_CORE:-}" ] && [ "${YOCTO_CHECK_LAYER:-0}" = 1 ]; then
    packaging/yocto-check-layer.sh || fail=1
else
    echo "skip yocto-check-layer (set OE_CORE and YOCTO_CHECK_LAYER=1)"
fi

exit $fail
