#!/usr/bin/env bash
# aarch64 checks:
#  - the release binary cross-builds with cargo-zigbuild against glibc 2.28
#    (target aarch64-unknown-linux-gnu.2.28), so one binary runs on JetPack 5
#    and 6, Raspberry Pi OS bullseye/bookworm and Mendel; the script checks the
#    highest GLIBC_x.y symbol version it needs;
#  - the stripped binary is under MAX_MIB (default 10) MiB;
#  - `cargo test --lib` passes for aarch64 under qemu-aarch64 (Debian's cross gcc
#    links the tests; CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER runs them).
# Installs what it needs: the rustup target, Debian's cross gcc and qemu-user,
# cargo-zigbuild and zig (PyPI ziglang). Skips (exit 0) when rustup cannot add
# the target. ZIGBUILD=0 builds the release binary with the cross gcc instead
# (then it needs the build machine's glibc, 2.34+ on Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
GLIBC_MAX=2.28
MAX_MIB=${MAX_MIB:-10}
ZIGBUILD=${ZIGBUILD:-1}
ZIGBUILD_VERSION=0.24.1
fail=0

if ! rustup target list --installed | grep -qx "$TARGET"; then
    if ! rustup target add "$TARGET"; then
        echo "skip: rustup cannot add $TARGET (offline?)"
        exit 0
    fi
fi
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-objdump >/dev/null || need+=(binutils-aarch64-linux-gnu)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

# Release binary.
t0=$(date +%s)
if [ "$ZIGBUILD" = 1 ]; then
    if ! cargo zigbuild --version 2>/dev/null | grep -q "$ZIGBUILD_VERSION"; then
        cargo install --locked --quiet cargo-zigbuild --version "$ZIGBUILD_VERSION"
    fi
    if ! command -v zig >/dev/null && ! python3 -c 'import ziglang' 2>/dev/null; then
        python3 -m pip install --quiet --disable-pip-version-check ziglang
    fi
    # zig is the linker here; the gcc settings above are for the tests only.
    env -u CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER -u CC_aarch64_unknown_linux_gnu \
        -u AR_aarch64_unknown_linux_gnu \
        cargo zigbuild --release --locked --target "$TARGET.$GLIBC_MAX"
else
    cargo build --release --locked --target "$TARGET"
fi
bin=target/$TARGET/release/edgebench
echo "ok   release build for $TARGET in $(( $(date +%s) - t0 )) s: $(file -b "$bin" | cut -d, -f1-2)"

stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
aarch64-linux-gnu-strip -o "$stripped" "$bin"
size=$(stat -c %s "$stripped")
limit=$(( MAX_MIB * 1024 * 1024 ))
mib=$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')
if [ "$size" -lt "$limit" ]; then
    echo "ok   stripped binary $mib MiB ($size bytes) < $MAX_MIB MiB"
else
    echo "FAIL: stripped binary $mib MiB ($size bytes) >= $MAX_MIB MiB"
    fail=1
fi

glibc=$(aarch64-linux-gnu-objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -n 1)
echo "     needs ${glibc:-no versioned glibc symbols}; dynamic deps: $(aarch64-linux-gnu-objdump -p "$bin" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"
if [ "$ZIGBUILD" = 1 ] && [ -n "$glibc" ] &&
    [ "$(printf '%s\n' "${glibc#GLIBC_}" "$GLIBC_MAX" | sort -V | tail -n 1)" != "$GLIBC_MAX" ]; then
    echo "FAIL: binary needs $glibc, more than glibc $GLIBC_MAX"
    fail=1
fi

# The release binary runs (under qemu-user).
got=$(qemu-aarch64 -L /usr/aarch64-linux-gnu "$bin" --version 2>&1) || true
want="edgebench $(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')"
if [ "$got" = "$want" ]; then
    echo "ok   qemu-aarch64 $bin --version: $got"
else
    echo "FAIL: qemu-aarch64 $bin --version printed '$got', expected '$want'"
    fail=1
fi

# Unit tests under qemu-user.
t0=$(date +%s)
if cargo test --locked --lib --target "$TARGET"; then
    echo "ok   cargo test --lib --target $TARGET under qemu-aarch64 in $(( $(date +%s) - t0 )) s"
else
    echo "FAIL: cargo test --lib --target $TARGET under qemu-aarch64"
    fail=1
fi
exit $fail
