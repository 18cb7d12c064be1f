#!/usr/bin/env bash
# The model archive (models/pack.sh) installed by the edgebench-models recipe's own
# do_install gives every board profile the model directory and manifest it names:
# each profile's [models] dir / manifest (default /usr/share/edgebench/models) exists in
# the installed tree, and `edgebench models` lists the models from it.
set -euo pipefail
cd "$(dirname "$0")/.."
RECIPE=meta-edgebench/recipes-edgebench/edgebench-models/edgebench-models_0.1.0.bb
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

models/pack.sh --models tests/fixtures/models --out "$work/models.tar.gz" >/dev/null
mkdir -p "$work/unpack" "$work/image"
tar -C "$work/unpack" -xzf "$work/models.tar.gz"
# The recipe's do_install, run with the variables bitbake would give it.
{
    echo 'bbfatal() { echo "bbfatal: $*" >&2; exit 1; }'
    sed -n '/^do_install() {/,/^}/p' "$RECIPE"
    echo do_install
} | sed -e "s|\${S}|$work/unpack/edgebench-models|g" -e "s|\${D}|$work/image|g" \
        -e 's|${datadir}|/usr/share|g' -e 's|${EDGEBENCH_MODELS_URI}|models.tar.gz|g' |
    bash || { echo "FAIL: edgebench-models do_install"; exit 1; }

for profile in configs/*.toml; do
    case "$profile" in configs/coral-models.toml) continue ;; esac
    read -r dir manifest < <(python3 - "$profile" <<'PY'
import sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb")).get("models", {})
d = m.get("dir") or "/usr/share/edgebench/models"
print(d, m.get("manifest") or d + "/manifest.toml")
PY
)
    if [ -d "$work/image$dir" ] && [ -f "$work/image$manifest" ]; then
        echo "ok   $profile: $manifest installed"
    else
        echo "FAIL: $profile names $dir and $manifest; the models recipe installs: $(cd "$work/image" && find . -name manifest.toml | tr '\n' ' ')"
        fail=1
    fi
done
# And the default profile's manifest lists models the daemon finds there.
if [ -x target/debug/edgebench ]; then
    out=$(target/debug/edgebench models --json --set models.dir="$work/image/usr/share/edgebench/models" \
        --set models.manifest="$work/image/usr/share/edgebench/models/manifest.toml" 2>&1) || true
    if echo "$out" | grep -q '"tiny_cnn"'; then
        echo "ok   edgebench models reads the installed manifest"
    else
        echo "FAIL: edgebench models on the installed tree: $out"
        fail=1
    fi
fi
exit $fail
