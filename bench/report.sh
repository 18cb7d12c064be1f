#!/usr/bin/env bash
# `edgebench report` over many result records: the tables (terminal format) and the
# HTML, each timed with /usr/bin/time -v (wall, CPU, peak memory). Goals (issue 12):
# 1,000,000 records -> tables < 3 s, HTML < 10 s, memory < 500 MiB.
#   bench/report.sh [RECORDS]      (default 1000000; data in target/report-bench/)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
dir=${REPORT_BENCH_DIR:-target/report-bench}
bin=target/release/edgebench
[ -x /usr/bin/time ] || { echo "report.sh: /usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
[ -x "$bin" ] || cargo build --release --locked
if [ "$(cat "$dir/.records" 2>/dev/null)" != "$n" ]; then
  rm -rf "$dir"
  python3 bench/report-records.py --records "$n" --out "$dir"
  echo "$n" > "$dir/.records"
fi
size=$(du -ch "$dir"/*.jsonl | tail -1 | cut -f1)
echo "records: $n in $(ls "$dir"/*.jsonl | wc -l) files, $size"
for fmt in table html; do
  /usr/bin/time -v "$bin" report "$dir"/*.jsonl --format "$fmt" --out "$dir/report.$fmt" 2> "$dir/time.$fmt"
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/time.$fmt")
  user=$(sed -n 's/.*User time (seconds): //p' "$dir/time.$fmt")
  sys=$(sed -n 's/.*System time (seconds): //p' "$dir/time.$fmt")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/time.$fmt")
  echo "$fmt: wall $wall, user ${user} s, sys ${sys} s, max RSS $((rss / 1024)) MiB, output $(du -h "$dir/report.$fmt" | cut -f1)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
