#!/usr/bin/env bash
# Packs the model set into the archive the image recipes install from
# (Yocto edgebench-models, Buildroot BR2_PACKAGE_EDGEBENCH_MODELS_DIR):
#
#   edgebench-models/manifest.toml, <model files>       from MODELS_DIR (models/build)
#   edgebench-models/coral/manifest.toml, <coral files> configs/coral-models.toml and
#                                                        CORAL_DIR (Coral's .tflite files)
#
# The layout is what the board profiles name: /usr/share/edgebench/models (the
# default) and /usr/share/edgebench/models/coral (the Coral profiles).
#
#   models/pack.sh [--models DIR] [--coral DIR] [--out FILE.tar.gz]
#
# Prints the archive's sha256 for EDGEBENCH_MODELS_SHA256. The archive is reproducible
# (sorted names, fixed owner and mtime), so the same files give the same checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
models=models/build
coral=""
out=models/edgebench-models.tar.gz
while [ $# -gt 0 ]; do
    case "$1" in
        --models) models=$2; shift 2 ;;
        --coral) coral=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        *) echo "usage: models/pack.sh [--models DIR] [--coral DIR] [--out FILE.tar.gz]" >&2; exit 2 ;;
    esac
done
[ -f "$models/manifest.toml" ] || { echo "pack.sh: no manifest.toml in $models (build the models first: models/README.md)" >&2; exit 1; }
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/edgebench-models/coral"
# Model files and manifest, without hidden state files (.export-state.json).
(cd "$models" && find . -path '*/.*' -prune -o -type f -print | sort) | while read -r f; do
    install -D -m 0644 "$models/$f" "$stage/edgebench-models/$f"
done
install -m 0644 configs/coral-models.toml "$stage/edgebench-models/coral/manifest.toml"
if [ -n "$coral" ]; then
    for f in "$coral"/*.tflite; do
        [ -e "$f" ] && install -m 0644 "$f" "$stage/edgebench-models/coral/"
    done
fi
mkdir -p "$(dirname "$out")"
tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -cf - edgebench-models | gzip -n >"$out"
echo "$out"
echo "sha256 $(sha256sum "$out" | cut -d' ' -f1)"
