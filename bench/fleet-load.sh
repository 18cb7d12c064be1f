#!/usr/bin/env bash
# Fleet store ingest: N simulated boards (one MQTT connection each) publish result
# records at a fixed rate to a real mosquitto; mosquitto_sub (thrown away) and
# `edgebench collect` into SQLite and into PostgreSQL receive them in the same run.
# Prints records/s, publish->write p50/p99/max and each collector's peak RSS.
#   bench/fleet-load.sh [BOARDS] [RATE_PER_BOARD_HZ] [SECONDS]   (default 1000 2 20)
# Needs mosquitto, mosquitto-clients and postgresql (scripts/install-deps.sh test).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --locked --bench fleet_load -- "${1:-1000}" "${2:-2}" "${3:-20}"
