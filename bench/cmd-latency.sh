#!/usr/bin/env bash
# From `sweep-start` published to the `ok` reply received, on loopback (goal < 100 ms).
# One publisher connection (mosquitto_pub -l) stays open; the subscriber stamps
# arrival times (%U). Each command starts a one-configuration sweep on the tiny model;
# the next is sent after that sweep is done.
#   cargo build --release && bench/cmd-latency.sh [count]
source "$(dirname "$0")/daemon-env.sh"
N=${1:-20}
start_broker
start_daemon
exec 4> >(mosquitto_pub -h 127.0.0.1 -p "$PORT" -q 1 -t "$PREFIX/cmd/sweep-start" -l)
sleep 0.5
: > "$TMP/lat"
for i in $(seq "$N"); do
  t=$(date +%s.%N)
  echo "{\"request_id\":\"lat-$i\",\"sweep\":\"tiny\"}" >&4
  for _ in $(seq 400); do
    line=$(grep " $PREFIX/reply .*\"request_id\":\"lat-$i\"" "$TMP/sub.log" || true)
    [ -n "$line" ] && break
    sleep 0.01
  done
  [ -n "$line" ] || { echo "no reply to lat-$i" >&2; exit 1; }
  echo "$line" | grep -q '"ok":true' || { echo "not ok: $line" >&2; exit 1; }
  awk -v t="$t" '{printf "%.3f\n", ($1 - t) * 1000}' <<<"$line" >> "$TMP/lat"
  id=$(sed 's/.*"sweep_id":"\([^"]*\)".*/\1/' <<<"$line")
  for _ in $(seq 1000); do
    grep -q " $PREFIX/sweep/state .*\"state\":\"done\".*\"sweep_id\":\"$id\"" "$TMP/sub.log" && break
    grep -q " $PREFIX/sweep/state .*\"sweep_id\":\"$id\".*\"state\":\"done\"" "$TMP/sub.log" && break
    sleep 0.02
  done
done
sort -n "$TMP/lat" | awk '{a[NR]=$1} END {
  printf "commands        %d\n", NR
  printf "latency ms      min %.1f  median %.1f  p90 %.1f  max %.1f\n", a[1], a[int((NR+1)/2)], a[int(NR*0.9+0.5)], a[NR]
  printf "goal (< 100 ms, every command): %s\n", a[NR] < 100 ? "met" : "NOT met"
  exit a[NR] < 100 ? 0 : 1
}'
