#!/usr/bin/env bash
# aarch64 checks:
#  - the release binary cross-builds with cargo-zigbuild against glibc 2.28
#    (target aarch64-unknown-linux-gnu.2.28), so one binary runs on JetPack 5
#    and 6, Raspberry Pi OS bullseye/bookworm and Mendel; the script checks the
#    highest GLIBC_x.y symbol version it needs;
#  - the stripped binary is under MAX_MIB (default 10) MiB;
#  - a real sweep runs under qemu-aarch64: the aarch64 binary with ONNX Runtime 1.19.2's
#    aarch64 library (PyPI wheel) and the committed tiny models; records checked;
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

# A real sweep under qemu-user: the aarch64 binary, ONNX Runtime's aarch64 library from
# the PyPI wheel, the committed tiny models; a few timed runs per configuration, records
# checked. ONNX Runtime 1.19.2, not 1.32.0: 1.32.0's aarch64 library crashes Debian 12's
# qemu-user 7.2 inside dlopen (SIGSEGV before any edgebench code runs; a C program that
# only calls dlopen crashes the same way), while 1.19.2 loads and runs.
ORT_A64=1.19.2
ort_dir=.deps/onnxruntime-$ORT_A64-aarch64
scripts/fetch-onnxruntime.sh "$ORT_A64" "$ort_dir" manylinux_2_28_aarch64 >/dev/null
sweep=$(mktemp -d)
cat >"$sweep/edgebench.toml" <<TOML
[onnxruntime]
library = "$PWD/$ort_dir/lib/libonnxruntime.so"
[models]
dir = "$PWD/tests/fixtures/models"
[store]
dir = "$sweep/store"
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.1
max_s = 30.0
cooldown_max_s = 0.0
TOML
t0=$(date +%s)
if (cd "$sweep" && qemu-aarch64 -L /usr/aarch64-linux-gnu "$OLDPWD/$bin" run --config edgebench.toml \
        --models tiny_cnn,tiny_seg --batch 1,4 --threads 1 --out r.jsonl >out.txt 2>&1) &&
    python3 - "$sweep/r.jsonl" "$ORT_A64" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
res = [r for r in recs if r.get("record") == "result"]
assert len(res) == 4, f"{len(res)} results, expected 4 (2 models x 2 batches)"
for r in res:
    assert r["status"] == "ok", r
    assert r["runtime"] == "onnxruntime" and r["runtime_version"] == sys.argv[2], r
    assert r["ep"] == "cpu" and r["batch"] in (1, 4) and r["iterations"] >= 5, r
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_max"], r
    assert r["throughput_ips"] > 0, r
for r in res:
    print(f"     {r['model']:9} batch {r['batch']}: {r['iterations']} runs, p50 {r['latency_ms_p50']:.2f} ms, "
          f"{r['throughput_ips']:.1f} inferences/s (emulated)")
PY
then
    echo "ok   aarch64 sweep under qemu-aarch64 with ONNX Runtime $ORT_A64 (aarch64 wheel): 4 configurations in $(( $(date +%s) - t0 )) s"
else
    echo "FAIL: aarch64 sweep under qemu-aarch64:"
    tail -n 20 "$sweep/out.txt"
    fail=1
fi
rm -rf "$sweep"

# Unit tests under qemu-user.
t0=$(date +%s)
if cargo test --locked --lib --target "$TARGET"; then
    echo "ok   cargo test --lib --target $TARGET under qemu-aarch64 in $(( $(date +%s) - t0 )) s"
else
    echo "FAIL: cargo test --lib --target $TARGET under qemu-aarch64"
    fail=1
fi
exit $fail
