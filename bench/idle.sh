#!/usr/bin/env bash
# Idle daemon, connected to a local broker, telemetry every 5 s: CPU share of one
# core and resident memory over a window (default 60 s). Goal: < 1 % and < 30 MiB.
#   cargo build --release && bench/idle.sh [seconds]
source "$(dirname "$0")/daemon-env.sh"
WINDOW=${1:-60}
start_broker
start_daemon
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$DPID/stat"; }
hz=$(getconf CLK_TCK)
t0=$(date +%s.%N); c0=$(ticks)
tel0=$(grep -c " $PREFIX/telemetry " "$TMP/sub.log" || true)
sleep "$WINDOW"
t1=$(date +%s.%N); c1=$(ticks)
tel1=$(grep -c " $PREFIX/telemetry " "$TMP/sub.log" || true)
rss=$(awk '/^VmRSS/{print $2}' "/proc/$DPID/status")
hwm=$(awk '/^VmHWM/{print $2}' "/proc/$DPID/status")
threads=$(awk '/^Threads/{print $2}' "/proc/$DPID/status")
ort=$(grep -c onnxruntime "/proc/$DPID/maps" || true)
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" \
    -v tel=$((tel1 - tel0)) -v thr="$threads" -v ort="$ort" 'BEGIN {
  cpu = (c1 - c0) / hz / (t1 - t0) * 100
  printf "idle window     %.1f s\n", t1 - t0
  printf "cpu             %.3f %% of one core (%d ticks of 1/%d s)\n", cpu, c1 - c0, hz
  printf "rss             %.1f MiB (peak %.1f MiB)\n", rss / 1024, hwm / 1024
  printf "threads         %d\n", thr
  printf "telemetry msgs  %d\n", tel
  printf "onnxruntime     %s\n", (ort > 0 ? "mapped" : "not loaded")
  ok = (cpu < 1.0 && rss / 1024 < 30)
  printf "goal (<1 %% cpu, <30 MiB rss): %s\n", ok ? "met" : "NOT met"
  exit ok ? 0 : 1
}'
