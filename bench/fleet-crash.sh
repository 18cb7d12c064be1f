#!/usr/bin/env bash
# Crash safety of `edgebench collect`: kill -9 at random moments during a stream with
# duplicates, KILLS times per engine (default 50), into SQLite and into PostgreSQL;
# every distinct run_id must be stored exactly once, none missing. `make test` runs the
# same test with 5 kills.
#   bench/fleet-crash.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/.."
export EDGEBENCH_CRASH_KILLS=${1:-50}
# Debug build: the property does not depend on optimisation, and it reuses the test build.
exec cargo test --locked --test fleet_crash -- --nocapture --test-threads=1
