#!/usr/bin/env bash
# Checks the shipped systemd files:
#  - `systemd-analyze verify` prints nothing for the unit alone and for the unit
#    with each board drop-in (and the combinations a board profile installs);
#  - `systemd-analyze security --offline=true` exposure stays at or below
#    EXPOSURE_MAX (default 3.0) for every one of those combinations;
#  - the same (verify clean, exposure at most EXPOSURE_MAX) for the fleet collector's
#    unit, edgebench-collect.service;
#  - sysusers.d (the user; the .deb's apex group) and tmpfiles.d entries apply
#    cleanly to an empty root.
# Needs systemd's tools (installed if missing); systemd need not be PID 1.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

EXPOSURE_MAX=${EXPOSURE_MAX:-3.0}
UNIT=systemd/edgebench.service
DROPINS=systemd/dropins

if ! command -v systemd-analyze >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

echo "     $(systemd-analyze --version | head -n 1)"

# A drop-in that lifts the device filter (DevicePolicy=auto, DeviceAllow= reset) must
# also set ProtectClock=no: before systemd 253, ProtectClock=yes adds an implied
# "DeviceAllow=char-rtc r" after loading, which re-enables the filter and blocks every
# other node (JetPack 5/6 ship systemd 245/249). verify cannot see this; check the text.
for f in "$DROPINS"/*.conf; do
    if grep -qx 'DevicePolicy=auto' "$f" && ! grep -qx 'ProtectClock=no' "$f"; then
        echo "FAIL: $f sets DevicePolicy=auto without ProtectClock=no (systemd < 253 would filter devices)"
        fail=1
    fi
done

# Drop-in sets to check: each drop-in alone, plus combinations installed together.
combos=("")
for f in "$DROPINS"/*.conf; do combos+=("$(basename "$f" .conf)"); done
combos+=("coral-usb nvidia-gpu")

# systemd-analyze's threshold is on the internal 0-100 scale (shown value x 10).
threshold=$(awk -v m="$EXPOSURE_MAX" 'BEGIN { printf "%d", m * 10 + 0.5 }')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for combo in "${combos[@]}"; do
    label=${combo:-base}
    dir="$work/${label// /+}"
    mkdir -p "$dir/edgebench.service.d"
    # verify checks that ExecStart= is executable; the binary is not installed here.
    sed 's|^ExecStart=.*|ExecStart=/bin/true|' "$UNIT" >"$dir/edgebench.service"
    for d in $combo; do
        [ -f "$DROPINS/$d.conf" ] || { echo "FAIL: no drop-in $DROPINS/$d.conf"; exit 1; }
        cp "$DROPINS/$d.conf" "$dir/edgebench.service.d/10-$d.conf"
    done
    # Unknown keys and bad values only warn (exit status 0): fail on any output.
    out=$(systemd-analyze verify --man=no "$dir/edgebench.service" 2>&1) || true
    verified=yes
    if [ -n "$out" ]; then
        verified=no
        echo "FAIL: systemd-analyze verify, edgebench.service + [$label]:"
        echo "$out" | sed "s|$work/||g"
        fail=1
    fi
    sec=$(systemd-analyze security --offline=true --threshold="$threshold" \
        "$dir/edgebench.service" 2>&1) && rc=0 || rc=$?
    level=$(echo "$sec" | sed -n 's/.*Overall exposure level for edgebench.service: \([0-9.]*\).*/\1/p')
    if [ -z "$level" ]; then
        echo "FAIL: systemd-analyze security printed no exposure level for [$label]:"
        echo "$sec" | tail -n 5
        fail=1
    elif [ "$rc" -ne 0 ]; then
        echo "FAIL: exposure $level > $EXPOSURE_MAX for edgebench.service + [$label]"
        echo "$sec" | grep '✗' | sed "s|$work/||g"
        fail=1
    elif [ "$verified" = yes ]; then
        echo "ok   [$label] verify clean, exposure $level (limit $EXPOSURE_MAX)"
    fi
done

# The collector's unit (server side; shipped disabled).
cdir="$work/collect"
mkdir -p "$cdir"
sed 's|^ExecStart=.*|ExecStart=/bin/true|' systemd/edgebench-collect.service >"$cdir/edgebench-collect.service"
out=$(systemd-analyze verify --man=no "$cdir/edgebench-collect.service" 2>&1) || true
if [ -n "$out" ]; then
    echo "FAIL: systemd-analyze verify, edgebench-collect.service:"
    echo "$out" | sed "s|$work/||g"
    fail=1
fi
sec=$(systemd-analyze security --offline=true --threshold="$threshold" \
    "$cdir/edgebench-collect.service" 2>&1) && rc=0 || rc=$?
level=$(echo "$sec" | sed -n 's/.*Overall exposure level for edgebench-collect.service: \([0-9.]*\).*/\1/p')
if [ -z "$level" ]; then
    echo "FAIL: systemd-analyze security printed no exposure level for edgebench-collect.service"
    fail=1
elif [ "$rc" -ne 0 ]; then
    echo "FAIL: exposure $level > $EXPOSURE_MAX for edgebench-collect.service"
    echo "$sec" | grep '✗' | sed "s|$work/||g"
    fail=1
elif [ -z "$out" ]; then
    echo "ok   [edgebench-collect] verify clean, exposure $level (limit $EXPOSURE_MAX)"
fi

# sysusers.d / tmpfiles.d: apply to an empty root; any message is a failure.
root="$work/root"
mkdir -p "$root/etc"
out=$(systemd-sysusers --root="$root" "$PWD/systemd/edgebench.sysusers" 2>&1 | grep -v '^Creating ' || true)
if [ -n "$out" ] || ! grep -q '^edgebench:' "$root/etc/passwd"; then
    echo "FAIL: systemd-sysusers: ${out:-no edgebench user created}"
    fail=1
else
    echo "ok   sysusers.d creates user edgebench"
fi
# The Debian package's group for the Coral PCIe udev rule.
out=$(systemd-sysusers --root="$root" "$PWD/packaging/udev/edgebench-apex.sysusers" 2>&1 | grep -v '^Creating ' || true)
if [ -n "$out" ] || ! grep -q '^apex:' "$root/etc/group"; then
    echo "FAIL: systemd-sysusers edgebench-apex: ${out:-no apex group created}"
    fail=1
else
    echo "ok   sysusers.d creates group apex ($(grep '^apex:' "$root/etc/group"))"
fi
out=$(systemd-tmpfiles --root="$root" --create "$PWD/systemd/edgebench.tmpfile" 2>&1 || echo "exit status $?")
if [ -n "$out" ] || [ ! -d "$root/var/lib/edgebench" ] || [ ! -d "$root/var/cache/edgebench" ]; then
    echo "FAIL: systemd-tmpfiles: ${out:-directories missing}"
    fail=1
else
    echo "ok   tmpfiles.d creates /var/lib/edgebench and /var/cache/edgebench"
fi

exit $fail
