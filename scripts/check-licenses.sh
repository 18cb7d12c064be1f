#!/usr/bin/env bash
# Licence and supply-chain checks (make test):
#  - cargo deny check licenses bans sources: every crate's licence is in deny.toml's
#    allow list, no wildcard versions, crates only from the crates.io index;
#  - cargo deny check advisories against the RustSec database: a clone given as
#    ADVISORY_DB, else fetched when reachable; skipped with a message when neither (an
#    offline machine has no advisory data, and a database shipped in the repository
#    would go stale unseen: skipping says so instead of passing on old data);
#  - the third-party notice and the recipes' licence lines match Cargo.lock
#    (scripts/gen-licenses.sh --check).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/cargo-tool.sh deny >/dev/null
fail=0

if out=$(cargo deny --locked --color never check licenses bans sources 2>&1); then
    echo "ok   cargo deny check licenses bans sources"
else
    echo "$out" | grep -v '^\s*$' | tail -n 40
    echo "FAIL: cargo deny check licenses bans sources"
    fail=1
fi

# Advisories: cargo-deny keeps the database in <db-path>/advisory-db-<hash of its URL>.
dbs=$(mktemp -d)
trap 'rm -rf "$dbs"' EXIT
sed "s|^\[advisories\]|[advisories]\ndb-path = \"$dbs\"|" deny.toml >"$dbs/deny.toml"
if [ -n "${ADVISORY_DB:-}" ]; then
    git clone -q "$ADVISORY_DB" "$dbs/advisory-db-3157b0e258782691"
    src="the advisory-db clone $ADVISORY_DB ($(git -C "$dbs/advisory-db-3157b0e258782691" log -1 --format=%cs))"
elif timeout 120 cargo deny --locked --color never --config "$dbs/deny.toml" fetch db >/dev/null 2>&1; then
    src="the RustSec database fetched now"
else
    src=""
fi
if [ -z "$src" ]; then
    echo "skip cargo deny check advisories: the RustSec database is not reachable (offline); set ADVISORY_DB to a clone of it"
elif out=$(cargo deny --locked --offline --color never --config "$dbs/deny.toml" check advisories 2>&1); then
    echo "ok   cargo deny check advisories against $src"
else
    echo "$out" | grep -E '^(error|warning)\[|ID:' | paste - - | sed 's/^/     /'
    echo "FAIL: cargo deny check advisories against $src"
    fail=1
fi

scripts/gen-licenses.sh --check || fail=1
exit $fail
