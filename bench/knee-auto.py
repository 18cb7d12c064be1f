#!/usr/bin/env python3
"""Goal check for `edgebench run --batch auto`: the same knee as the full grid 1..64
(within one grid step) in at most 40 % of the grid's wall time.

Runs, model by model and with the same protocol, a sweep over the full grid and then a
knee search (so both see the same load on a shared machine), then compares each
model's summary knee and the two summed wall times. Exit status 0 when every model's knee
agrees and the time goal is met, 1 otherwise, 2 on a failed run, 3 when the time goal is
met and every knee that differs belongs to a model whose same batch differed between the
two runs by more than the knee resolves (1 - knee_fraction): undecided on this machine.

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


def run(args, models, extra, out):
    cmd = [
        args.edgebench,
        "run",
        "--models",
        models,
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

    # Model by model, the grid then the search, so that both see the same load on a
    # shared machine; wall times are summed per mode.
    g_wall = a_wall = 0.0
    g_res, a_res, g_sum, a_sum = [], [], {}, {}
    with tempfile.TemporaryDirectory() as d:
        for model in args.models.split(","):
            # A fresh file per run: `--out` appends to an existing one.
            w, r, s = run(args, model, ["--batch", args.grid], os.path.join(d, f"grid-{model}.jsonl"))
            g_wall += w
            g_res += r
            g_sum.update(s)
            w, r, s = run(
                args,
                model,
                ["--batch", "auto", "--set", f"batch_search.max_batch={max(grid)}"],
                os.path.join(d, f"auto-{model}.jsonl"),
            )
            a_wall += w
            a_res += r
            a_sum.update(s)

    print(f"protocol overrides: {' '.join(args.set) or '(none)'}")
    print(f"{'model':32} {'grid knee':>9} {'range':>7} {'auto knee':>9} {'steps':>6} {'repeat':>7}  auto batches")
    ok = True
    undecided = []
    for model in args.models.split(","):
        gs, as_ = g_sum.get(model, {}), a_sum.get(model, {})
        gk, ak = gs.get("knee_batch"), as_.get("knee_batch")
        rng = f"{gs.get('knee_batch_low', '?')}-{gs.get('knee_batch_high', '?')}"
        order = [r["batch"] for r in a_res if r["model"] == model]
        if gk is None or ak is None:
            steps = float("inf")
        else:
            # Distance in grid steps (the grid doubles): 6 vs 8 is 0.4 of a step.
            steps = abs(math.log2(ak) - math.log2(gk))
        # The same configuration measured in both runs: how far apart the two runs put
        # it is the noise floor of this comparison. The knee resolves 1 - knee_fraction
        # (5 % by default); a larger difference leaves the comparison undecided.
        g_thr = {r["batch"]: r["throughput_ips"] for r in g_res if r["model"] == model and r.get("throughput_ips")}
        a_thr = {r["batch"]: r["throughput_ips"] for r in a_res if r["model"] == model and r.get("throughput_ips")}
        both = sorted(set(g_thr) & set(a_thr))
        repeat = max((abs(a_thr[b] / g_thr[b] - 1) for b in both), default=float("nan"))
        fraction = gs.get("knee_fraction", 0.95)
        agree = steps <= 1.0 + 1e-9
        note = ""
        if not agree:
            if repeat > 1 - fraction:
                undecided.append(model)
                note = f"  <- differs, but the same batch differed by {repeat * 100:.0f} % between the runs"
            else:
                note = "  <- differs by more than one grid step"
        ok &= agree
        print(f"{model:32} {gk!s:>9} {rng:>7} {ak!s:>9} {steps:6.2f} {repeat * 100:6.1f}%  {order}{note}")
        for name, s in (("grid", g_sum.get(model)), ("auto", a_sum.get(model))):
            if s:
                print(f"    {name} curve: {s['curve']}")
    print("repeat: largest throughput difference of one batch measured in both runs")
    ratio = a_wall / g_wall
    print(f"grid wall time: {g_wall:.1f} s ({len(g_res)} points)")
    print(f"auto wall time: {a_wall:.1f} s ({len(a_res)} points)")
    print(f"auto / grid: {ratio * 100:.1f} % (goal: at most {args.time_goal * 100:.0f} %)")
    ok &= ratio <= args.time_goal
    if ok:
        print("goal met")
        return 0
    if undecided and ratio <= args.time_goal and all(
        m in undecided for m in args.models.split(",") if m not in agreeing(g_sum, a_sum, args)
    ):
        print(
            "goal undecided: the knees that differ are within this machine's run-to-run noise "
            f"({', '.join(undecided)}); rerun on a quiet machine"
        )
        return 3
    print("goal NOT met")
    return 1


def agreeing(g_sum, a_sum, args):
    """Models whose auto knee is within one grid step of the grid's."""
    out = set()
    for model in args.models.split(","):
        gk = g_sum.get(model, {}).get("knee_batch")
        ak = a_sum.get(model, {}).get("knee_batch")
        if gk and ak and abs(math.log2(ak) - math.log2(gk)) <= 1.0 + 1e-9:
            out.add(model)
    return out


if __name__ == "__main__":
    sys.exit(main())
