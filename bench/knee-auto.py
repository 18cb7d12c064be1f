#!/usr/bin/env python3
"""Goal check for `edgebench run --batch auto`: the same knee as the full grid 1..64
(within one grid step) in at most 40 % of the grid's wall time.

Runs, one after the other and with the same protocol, one sweep over the full grid and
one knee search over the same models, then compares each model's summary knee and the
two wall times. Exit status 0 when every model's knee agrees and the time goal is met,
1 otherwise, 2 on a failed run.

    bench/knee-auto.py --edgebench target/release/edgebench \
        --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build \
        [--set protocol.max_s=5 ...]

`--set` options are passed to both runs (a shortened protocol for a slow machine).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time


def run(args, extra, out):
    cmd = [
        args.edgebench,
        "run",
        "--models",
        args.models,
        "--threads",
        args.threads,
        "--set",
        f"onnxruntime.library={args.library}",
        "--set",
        f"models.dir={args.models_dir}",
        "--out",
        out,
    ]
    for s in args.set:
        cmd += ["--set", s]
    cmd += extra
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(2)
    results, summaries = [], {}
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            if r["record"] == "result":
                results.append(r)
            else:
                summaries[r["model"]] = r
    return wall, results, summaries


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--edgebench", default="target/release/edgebench")
    ap.add_argument("--library", default=".deps/onnxruntime/lib/libonnxruntime.so")
    ap.add_argument("--models-dir", default="models/build")
    ap.add_argument(
        "--models",
        default="mobilenet_v2,ssdlite320_mobilenet_v3_large,lraspp_mobilenet_v3_large",
    )
    ap.add_argument("--grid", default="1,2,4,8,16,32,64")
    ap.add_argument("--threads", default="0")
    ap.add_argument("--time-goal", type=float, default=0.40)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    grid = [int(b) for b in args.grid.split(",")]

    with tempfile.TemporaryDirectory() as d:
        g_wall, g_res, g_sum = run(args, ["--batch", args.grid], os.path.join(d, "grid.jsonl"))
        a_wall, a_res, a_sum = run(
            args,
            ["--batch", "auto", "--set", f"batch_search.max_batch={max(grid)}"],
            os.path.join(d, "auto.jsonl"),
        )

    print(f"protocol overrides: {' '.join(args.set) or '(none)'}")
    print(f"{'model':32} {'grid knee':>9} {'auto knee':>9} {'steps':>6}  auto batches")
    ok = True
    for model in args.models.split(","):
        gk = g_sum.get(model, {}).get("knee_batch")
        ak = a_sum.get(model, {}).get("knee_batch")
        order = [r["batch"] for r in a_res if r["model"] == model]
        if gk is None or ak is None:
            steps = float("inf")
        else:
            # Distance in grid steps (the grid doubles): 6 vs 8 is 0.4 of a step.
            steps = abs(math.log2(ak) - math.log2(gk))
        agree = steps <= 1.0 + 1e-9
        ok &= agree
        print(
            f"{model:32} {gk!s:>9} {ak!s:>9} {steps:6.2f}  {order}"
            + ("" if agree else "  <- differs by more than one grid step")
        )
        for name, s in (("grid", g_sum.get(model)), ("auto", a_sum.get(model))):
            if s:
                print(f"    {name} curve: {s['curve']}")
    ratio = a_wall / g_wall
    print(f"grid wall time: {g_wall:.1f} s ({len(g_res)} points)")
    print(f"auto wall time: {a_wall:.1f} s ({len(a_res)} points)")
    print(f"auto / grid: {ratio * 100:.1f} % (goal: at most {args.time_goal * 100:.0f} %)")
    ok &= ratio <= args.time_goal
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
