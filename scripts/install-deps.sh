#!/usr/bin/env bash
# Installs the Debian packages edgebench's set-up and tests need, when missing.
#   scripts/install-deps.sh bench   # what `make bench` needs (model export)
#   scripts/install-deps.sh test    # what `make test` needs
set -euo pipefail
what=${1:-test}
pkgs=(python3 python3-venv python3-pip)
case "$what" in
  bench) pkgs+=(python3-torch python3-torchvision python3-onnx) ;;
  test) pkgs+=(mosquitto mosquitto-clients postgresql openssl systemd gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user unzip curl chromium fonts-dejavu-core)
    # Node-RED (integrations/node-red) needs Node >= 18 and npm: Debian 12's nodejs is 18.
    command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm) ;;
  *) echo "usage: install-deps.sh bench|test" >&2; exit 2 ;;
esac
# Packaging checks: man pages rendered (groff, man), completions parsed (zsh, fish).
[ "$what" = test ] && pkgs+=(groff-base man-db zsh fish)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The test broker is started by the tests themselves; keep the packaged one out of the way.
if [ "$what" = test ] && command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl stop mosquitto || true
fi
exit 0
