#!/usr/bin/env bash
# Builds the Debian packages with cargo-deb and tests the amd64 one on this machine:
#  - target/debian/edgebench_<version>_amd64.deb holds the binary, the unit, the
#    drop-ins, the default config (a conffile), sysusers.d/tmpfiles.d entries;
#  - `dpkg -i` creates the edgebench user and directories; `edgebench --version`
#    prints the crate version; `edgebench check-config` passes (as root and as the
#    edgebench user); `systemd-analyze verify` of the installed unit prints nothing;
#  - the Coral PCIe udev rule (/dev/apex_N: group apex, 0660) is installed and read by
#    udev, the apex group exists, board-setup coral-pcie adds the user to it;
#  - `dpkg --purge` removes it again, the udev rule included (KEEP_INSTALLED=1 keeps it
#    installed).
# The arm64 package is built too when target/aarch64-unknown-linux-gnu/release/edgebench
# exists (scripts/check-aarch64.sh makes it).
# Runs as root (dpkg -i). Installs cargo-deb if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if [ "$(id -u)" != 0 ]; then
    echo "check-deb.sh installs a package: run it as root"
    exit 2
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
for tool in dpkg-shlibdeps systemd-analyze udevadm; do
    command -v "$tool" >/dev/null && continue
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev systemd udev >/dev/null
    break
done

version=$(python3 -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
fail=0
t0=$(date +%s)
cargo deb --quiet
deb=target/debian/edgebench_${version}_amd64.deb
[ -f "$deb" ] || { echo "FAIL: cargo deb made no $deb"; ls target/debian; exit 1; }
echo "ok   built $deb ($(du -k "$deb" | cut -f1) KiB) in $(( $(date +%s) - t0 )) s"

if [ -x target/aarch64-unknown-linux-gnu/release/edgebench ]; then
    # The glibc228 variant states the binary's real glibc need (check-aarch64.sh checks it).
    cargo deb --quiet --no-build --no-strip --variant glibc228 --target aarch64-unknown-linux-gnu
    arm=target/aarch64-unknown-linux-gnu/debian/edgebench_${version}_arm64.deb
    if [ -f "$arm" ] && dpkg-deb -f "$arm" Depends | grep -q 'libc6 (>= 2.28)'; then
        echo "ok   built $arm ($(du -k "$arm" | cut -f1) KiB); Depends: $(dpkg-deb -f "$arm" Depends)"
    elif [ -f "$arm" ]; then
        echo "FAIL: $arm Depends: $(dpkg-deb -f "$arm" Depends)"
        fail=1
    else
        echo "FAIL: no $arm"
        fail=1
    fi
else
    echo "skip arm64 .deb: no target/aarch64-unknown-linux-gnu/release/edgebench (run scripts/check-aarch64.sh first)"
fi

# Contents.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|')
for f in /usr/bin/edgebench /etc/edgebench/edgebench.toml \
    /usr/lib/systemd/system/edgebench.service /usr/lib/sysusers.d/edgebench.conf \
    /usr/lib/systemd/system/edgebench-collect.service \
    /usr/lib/tmpfiles.d/edgebench.conf /usr/share/edgebench/systemd/jetson.conf \
    /usr/share/edgebench/systemd/coral-usb.conf /usr/share/edgebench/systemd/nvidia-gpu.conf \
    /usr/libexec/edgebench/board-setup /usr/libexec/edgebench/install-onnxruntime \
    /usr/share/doc/edgebench/README.Debian \
    /usr/share/bash-completion/completions/edgebench /usr/share/zsh/vendor-completions/_edgebench \
    /usr/share/fish/vendor_completions.d/edgebench.fish \
    /usr/share/doc/edgebench/copyright /usr/share/doc/edgebench/THIRD-PARTY-LICENSES.md \
    /lib/udev/rules.d/60-edgebench-apex.rules /usr/lib/sysusers.d/edgebench-apex.conf \
    /usr/share/edgebench/systemd/coral-pcie.conf; do
    if ! grep -qx "$f" <<<"$contents"; then
        echo "FAIL: $deb lacks $f"
        fail=1
    fi
done
if ! dpkg-deb -I "$deb" conffiles | grep -qx /etc/edgebench/edgebench.toml; then
    echo "FAIL: /etc/edgebench/edgebench.toml is not a conffile"
    fail=1
fi
echo "     Depends: $(dpkg-deb -f "$deb" Depends)"

# Install and run.
dpkg --purge edgebench >/dev/null 2>&1 || true
if ! dpkg -i "$deb"; then
    echo "FAIL: dpkg -i $deb"
    exit 1
fi
cleanup() {
    if [ "${KEEP_INSTALLED:-0}" != 1 ]; then
        dpkg --purge edgebench >/dev/null
    fi
}
trap cleanup EXIT

if getent passwd edgebench >/dev/null; then
    echo "ok   user edgebench: $(getent passwd edgebench)"
else
    echo "FAIL: dpkg -i did not create the edgebench user"
    fail=1
fi
got=$(edgebench --version 2>&1) || true
if [ "$got" = "edgebench $version" ]; then
    echo "ok   edgebench --version: $got"
else
    echo "FAIL: edgebench --version printed '$got', expected 'edgebench $version'"
    fail=1
fi
# check-config prints the merged configuration: an empty output is a failure too.
if out=$(edgebench check-config 2>&1) && [ -n "$out" ]; then
    echo "ok   edgebench check-config (root)"
else
    echo "FAIL: edgebench check-config:"
    echo "$out" | tail -n 20
    fail=1
fi
if out=$(setpriv --reuid=edgebench --regid=edgebench --init-groups edgebench check-config 2>&1) && [ -n "$out" ]; then
    echo "ok   edgebench check-config (as user edgebench)"
else
    echo "FAIL: edgebench check-config as user edgebench:"
    echo "$out" | tail -n 20
    fail=1
fi
# Man pages: one per subcommand, found by man; verify --man=yes checks that the unit's
# Documentation=man:edgebench(1) resolves.
pages=$(cd packaging/docs/man && ls *.1 | sed 's/\.1$//')
missing=""
for page in $pages; do
    man -w "$page" >/dev/null 2>&1 || missing="$missing $page"
done
out=$(systemd-analyze verify --man=yes /usr/lib/systemd/system/edgebench.service 2>&1) || true
if [ -z "$missing" ] && [ -z "$out" ]; then
    echo "ok   man pages installed ($(echo $pages | wc -w)); verify --man=yes finds man:edgebench(1)"
else
    echo "FAIL: man pages missing:${missing:- none}; verify --man=yes: $out"
    fail=1
fi
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/edgebench.service 2>&1) || true
if [ -z "$out" ]; then
    echo "ok   systemd-analyze verify of the installed unit: clean"
else
    echo "FAIL: systemd-analyze verify /usr/lib/systemd/system/edgebench.service:"
    echo "$out"
    fail=1
fi
# The collector's unit ships disabled (server side): installed, verify clean, not enabled.
out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/edgebench-collect.service 2>&1) || true
if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify /usr/lib/systemd/system/edgebench-collect.service:"
    echo "$out"
    fail=1
elif ls /etc/systemd/system/*.wants/edgebench-collect.service >/dev/null 2>&1; then
    echo "FAIL: edgebench-collect.service is enabled after install (it should ship disabled)"
    fail=1
else
    echo "ok   edgebench-collect.service installed disabled, verify clean"
fi

# board-setup links drop-ins into /etc and adds the user to the device groups.
if /usr/libexec/edgebench/board-setup jetson coral-usb >/dev/null &&
    [ -L /etc/systemd/system/edgebench.service.d/10-jetson.conf ] &&
    [ -L /etc/systemd/system/edgebench.service.d/10-coral-usb.conf ]; then
    out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/edgebench.service 2>&1) || true
    level=$(systemd-analyze security --offline=true /usr/lib/systemd/system/edgebench.service 2>&1 |
        sed -n 's/.*Overall exposure level for edgebench.service: \([0-9.]*\).*/\1/p')
    if [ -n "$out" ]; then
        echo "FAIL: systemd-analyze verify with board-setup's drop-ins:"
        echo "$out"
        fail=1
    else
        echo "ok   board-setup jetson coral-usb: drop-ins linked, verify clean, exposure $level, groups: $(id -nG edgebench)"
    fi
    /usr/libexec/edgebench/board-setup --none >/dev/null
else
    echo "FAIL: board-setup jetson coral-usb did not link the drop-ins"
    fail=1
fi

# Coral PCIe: the udev rule gives /dev/apex_N to group apex (0660), udev reads it, the
# group exists after install, and the coral-pcie drop-in puts the user in it.
rule=/lib/udev/rules.d/60-edgebench-apex.rules
if [ -f "$rule" ] && grep -qx 'SUBSYSTEM=="apex", MODE="0660", GROUP="apex"' "$rule"; then
    echo "ok   udev rule installed: $rule ($(grep -v '^#' "$rule"))"
else
    echo "FAIL: $rule missing or not 'SUBSYSTEM==\"apex\", MODE=\"0660\", GROUP=\"apex\"'"
    fail=1
fi
# udevadm test reads every rules file and names each line it rejects, e.g.
# "60-edgebench-apex.rules:4 Unknown group 'apex', ignoring" without the group.
out=$(udevadm test --action=add /sys/class/mem/null 2>&1) || true
if grep -q "^Reading rules file: .*/60-edgebench-apex.rules$" <<<"$out" &&
    ! grep -q "60-edgebench-apex.rules:[0-9]" <<<"$out"; then
    echo "ok   udevadm test reads 60-edgebench-apex.rules without complaint"
else
    echo "FAIL: udevadm test and 60-edgebench-apex.rules:"
    grep -i "edgebench\|error" <<<"$out" | head -n 10
    fail=1
fi
if getent group apex >/dev/null; then
    echo "ok   group apex: $(getent group apex)"
else
    echo "FAIL: no group apex after install"
    fail=1
fi
if /usr/libexec/edgebench/board-setup coral-pcie >/dev/null &&
    [ -L /etc/systemd/system/edgebench.service.d/10-coral-pcie.conf ] &&
    id -nG edgebench | grep -qw apex; then
    out=$(systemd-analyze verify --man=no /usr/lib/systemd/system/edgebench.service 2>&1) || true
    if [ -n "$out" ]; then
        echo "FAIL: systemd-analyze verify with the coral-pcie drop-in:"
        echo "$out"
        fail=1
    else
        echo "ok   board-setup coral-pcie: drop-in linked, verify clean, groups: $(id -nG edgebench)"
    fi
    /usr/libexec/edgebench/board-setup --none >/dev/null
else
    echo "FAIL: board-setup coral-pcie: no drop-in link or edgebench not in group apex ($(id -nG edgebench))"
    fail=1
fi

if [ "${KEEP_INSTALLED:-0}" != 1 ]; then
    trap - EXIT
    dpkg --purge edgebench >/dev/null
    left=$(ls -d /usr/bin/edgebench /etc/edgebench /var/lib/edgebench /usr/share/edgebench \
        "$rule" /usr/lib/sysusers.d/edgebench-apex.conf 2>/dev/null || true)
    if [ -n "$left" ]; then
        echo "FAIL: dpkg --purge left: $left"
        fail=1
    else
        # The apex group stays, like the edgebench user (Debian removes no system groups).
        echo "ok   dpkg --purge removed the package's files, the udev rule included"
    fi
fi
exit $fail
