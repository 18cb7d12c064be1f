#!/usr/bin/env bash
# A Python venv with grafana-foundation-sdk (Grafana's own dashboard model, generated
# from its schemas), used by integrations/grafana/validate.py to check the dashboards.
# Called by `make test`; skips when already set up.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.deps/grafana-sdk-venv
pin='grafana-foundation-sdk==1769699379!11.6.0'
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import grafana_foundation_sdk' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "$pin"
