#!/usr/bin/env bash
# Installs a pinned cargo subcommand when missing (cargo install --locked), then runs
# nothing: `scripts/cargo-tool.sh deny` / `scripts/cargo-tool.sh about`.
set -euo pipefail
declare -A VERSIONS=([deny]=0.20.2 [about]=0.9.3)
# cargo-about's binary is behind its "cli" feature.
declare -A FEATURES=([deny]="" [about]="--features cli")
tool=${1:?usage: cargo-tool.sh deny|about}
version=${VERSIONS[$tool]:?unknown tool $tool}
if ! cargo "$tool" --version 2>/dev/null | grep -q " $version\$"; then
    echo "installing cargo-$tool $version (cargo install --locked)"
    # shellcheck disable=SC2086
    cargo install --locked --quiet ${FEATURES[$tool]} "cargo-$tool" --version "$version"
fi
