#!/usr/bin/env bash
# Regenerates the committed man pages and shell completions in packaging/docs/ from the
# CLI definition (`edgebench gen-docs`, clap_mangen and clap_complete). The .deb, the
# Yocto recipe and the Buildroot package install these files. Rerun after any change to
# the command line (a new subcommand, option or help text); tests/docs.rs fails until
# the committed copies match.
#
#   scripts/gen-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet --bin edgebench
out=packaging/docs
rm -rf "$out/man" "$out/completions"
target/debug/edgebench gen-docs --man "$out/man" --completions "$out/completions" >/dev/null
echo "wrote $(ls "$out/man" | wc -l) man pages and $(ls "$out/completions" | wc -l) completion files to $out/"
