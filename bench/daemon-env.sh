# Shared by bench/idle.sh and bench/cmd-latency.sh: a private mosquitto on a free
# port and the release daemon configured for it. Source it; call `start_daemon EXTRA`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BIN:-target/release/edgebench}
ORT_LIB=${ORT_LIB:-$PWD/.deps/onnxruntime/lib/libonnxruntime.so}
MODELS=${MODELS:-$PWD/tests/fixtures/models}
DEV=bench
PREFIX=edgebench/v1/$DEV
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -f "$ORT_LIB" ] || { echo "missing $ORT_LIB: make deps" >&2; exit 2; }
command -v mosquitto >/dev/null || PATH=$PATH:/usr/sbin
command -v mosquitto >/dev/null || { echo "install mosquitto mosquitto-clients" >&2; exit 2; }

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

start_broker() {
  {
    [ "$(id -u)" = 0 ] && echo "user root"
    echo "listener $PORT 127.0.0.1"
    echo "allow_anonymous true"
    echo "persistence false"
    [ -n "${BROKER_EXTRA:-}" ] && echo "$BROKER_EXTRA"
  } > "$TMP/mosquitto.conf"
  mosquitto -c "$TMP/mosquitto.conf" >"$TMP/mosquitto.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "mosquitto did not start" >&2; exit 1
}

# start_daemon EXTRA_TOML: starts the daemon, a subscriber on its topics writing
# "%U %t %p" lines to $TMP/sub.log, and waits until the daemon is online.
start_daemon() {
  cat > "$TMP/edgebench.toml" <<TOML
[device]
id = "$DEV"
[onnxruntime]
library = "$ORT_LIB"
[models]
dir = "$MODELS"
[store]
dir = "$TMP/store"
[mqtt]
host = "127.0.0.1"
port = $PORT
telemetry_interval_s = 5.0
[protocol]
warmup_runs = 1
warmup_s = 0.0
min_runs = 5
min_s = 0.05
cooldown_max_s = 0.0
[sweeps.tiny]
models = ["tiny_cnn"]
batches = [1]
eps = ["cpu"]
threads = [1]
precisions = ["fp32"]
${1:-}
TOML
  mosquitto_sub -h 127.0.0.1 -p "$PORT" -q 1 -t "$PREFIX/#" -F '%U %t %p' >"$TMP/sub.log" 2>/dev/null &
  PIDS+=($!)
  sleep 0.3
  "$BIN" daemon --config "$TMP/edgebench.toml" 2>"$TMP/daemon.log" &
  DPID=$!
  PIDS+=($DPID)
  for _ in $(seq 200); do
    grep -q " $PREFIX/status online" "$TMP/sub.log" && return 0
    sleep 0.05
  done
  echo "daemon not online:" >&2; cat "$TMP/daemon.log" >&2; exit 1
}
