#!/usr/bin/env bash
# Checks meta-edgebench:
#  - oelint-adv (from PyPI) reports no errors for the layer's recipes and appends;
#  - the committed edgebench-crates.inc matches Cargo.lock;
#  - the recipe's version matches Cargo.toml, and LIC_FILES_CHKSUM matches the file;
#  - with OE_CORE (and BITBAKE) set to checkouts of a release the layer declares:
#    `bitbake -p` with the layer added reports no errors (packaging/bitbake-parse.sh;
#    EXTRA_LAYERS adds board layers). Skipped otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

OELINT_VERSION=9.11.2
LAYER=meta-edgebench
RECIPE_DIR=$LAYER/recipes-edgebench/edgebench
fail=0

if ! command -v oelint-adv >/dev/null || [ "$(oelint-adv --version 2>/dev/null | awk '{print $2}')" != "$OELINT_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
fi

# Suppressed findings, each for a reason:
#  mandatoryvar.HOMEPAGE   the project has no public homepage yet (set HOMEPAGE, drop this)
#  mandatoryvar.SRC_URI    edgebench-models installs a directory built on the host; nothing to fetch
#  vars.inconspaces        only in edgebench-crates.inc, whose layout oe-core's generator fixes
mapfile -t files < <(find "$LAYER" -name '*.bb' -o -name '*.bbappend' | sort)
out=$(oelint-adv --quiet --release=wrynose --mode=all --hide=info --relpaths \
    --constantmods=+packaging/oelint-constants.json \
    --suppress oelint.var.mandatoryvar.HOMEPAGE \
    --suppress oelint.var.mandatoryvar.SRC_URI \
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

# Recipe version = crate version.
crate_version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
recipe=$(ls "$RECIPE_DIR"/edgebench_*.bb)
recipe_version=$(basename "$recipe" .bb | sed 's/^edgebench_//')
if [ "$recipe_version" != "$crate_version" ]; then
    echo "FAIL: $recipe is version $recipe_version, Cargo.toml says $crate_version: git mv the recipe"
    fail=1
else
    echo "ok   recipe version $recipe_version = Cargo.toml"
fi

# LIC_FILES_CHKSUM entries that point into the source tree (file://<path>;beginline;endline;md5).
python3 - "$recipe" <<'PY' || fail=1
import hashlib, re, sys
text = open(sys.argv[1]).read()
m = re.search(r'^LIC_FILES_CHKSUM = "((?:[^"\\]|\\\n)*)"', text, re.M)
bad = 0
for entry in m.group(1).replace("\\\n", " ").split():
    path, *params = entry[len("file://"):].split(";")
    p = dict(x.split("=", 1) for x in params)
    lines = open(path, encoding="utf-8").read().splitlines(True)
    begin, end = int(p.get("beginline", 1)), int(p.get("endline", len(lines)))
    got = hashlib.md5("".join(lines[begin - 1:end]).encode()).hexdigest()
    if got != p["md5"]:
        print(f"FAIL: LIC_FILES_CHKSUM {path} lines {begin}-{end}: md5 {got}, recipe says {p['md5']}"
              f" (line now: {''.join(lines[begin - 1:end]).strip()!r})")
        bad = 1
    else:
        print(f"ok   LIC_FILES_CHKSUM {path} lines {begin}-{end}")
sys.exit(bad)
PY

if [ -n "${OE_CORE:-}" ]; then
    packaging/bitbake-parse.sh || fail=1
else
    echo "skip bitbake -p (set OE_CORE, and BITBAKE unless OE_CORE is poky, to parse the layer)"
fi

exit $fail
