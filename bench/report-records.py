#!/usr/bin/env python3
"""Writes N synthetic result records (DESIGN.md section 5, full key set, ~1.4 KB a line,
like the records `edgebench run` writes) for benchmarking `edgebench report`.

A fleet: 8 board types x up to 3 runtimes/providers, 10 architectures, fp32 and int8,
batches 1..128, many devices and repeated sweeps, one JSON Lines file per board type.
Latencies follow a plausible batch curve with per-device noise; some runs throttled or
failed. Deterministic (seeded). The data is not committed: generate it.

    bench/report-records.py --records 1000000 --out /tmp/records
"""
import argparse
import json
import math
import random
from pathlib import Path

BOARDS = [
    ("raspberrypi5", [("ort", "cpu", "onnxruntime", "1.19.2")], 1.0),
    ("raspberrypi4", [("ort", "cpu", "onnxruntime", "1.19.2")], 2.2),
    ("jetson-orin-nano", [("ort", "cpu", "onnxruntime", "1.20.1"), ("ort", "cuda", "onnxruntime", "1.20.1"), ("ort", "tensorrt", "onnxruntime", "1.20.1")], 0.6),
    ("jetson-agx-orin", [("ort", "cpu", "onnxruntime", "1.20.1"), ("ort", "cuda", "onnxruntime", "1.20.1"), ("ort", "tensorrt", "onnxruntime", "1.20.1")], 0.35),
    ("coral-devboard", [("tflite", "cpu", "tflite", "2.16.1"), ("tflite", "edgetpu", "tflite", "2.16.1")], 1.8),
    ("rpi-coral-usb", [("tflite", "cpu", "tflite", "2.16.1"), ("tflite", "edgetpu", "tflite", "2.16.1")], 1.1),
    ("x86-desk", [("ort", "cpu", "onnxruntime", "1.32.0"), ("ort", "openvino", "onnxruntime", "1.32.0")], 0.25),
    ("rockpi", [("ort", "cpu", "onnxruntime", "1.19.2"), ("ort", "acl", "onnxruntime", "1.19.2")], 1.5),
]
ARCHS = [
    ("resnet50", 90.0), ("mobilenet_v2", 12.0), ("mobilenet_v3_large", 10.0),
    ("efficientnet_b0", 18.0), ("inception_v3", 70.0), ("ssdlite320_mobilenet_v3_large", 25.0),
    ("deeplabv3_mobilenet_v3_large", 60.0), ("lraspp_mobilenet_v3_large", 20.0), ("unet", 150.0),
    ("mobilenet_v1", 9.0),
]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128]
SPEEDUP = {"cpu": 1.0, "cuda": 0.12, "tensorrt": 0.06, "edgetpu": 0.15, "openvino": 0.6, "acl": 0.7}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, required=True, help="directory for the .jsonl files")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    configs = []
    for board, plats, slow in BOARDS:
        for backend, ep, runtime, ver in plats:
            for arch, base_ms in ARCHS:
                for prec in ("fp32", "int8"):
                    if ep == "edgetpu" and prec == "fp32":
                        continue
                    for b in BATCHES:
                        configs.append((board, backend, ep, runtime, ver, slow, arch, base_ms, prec, b))
    files = {board: open(a.out / f"{board}.jsonl", "w") for board, _, _ in BOARDS}
    for i in range(a.records):
        board, backend, ep, runtime, ver, slow, arch, base_ms, prec, b = configs[i % len(configs)]
        sweep = i // len(configs)
        dev = f"{board}-{sweep % 25:02d}"
        mode = "sequential" if backend == "tflite" else "native"
        if backend == "tflite":
            model = f"{arch}_edgetpu" if ep == "edgetpu" else f"{arch}_quant"
        else:
            model = arch + ("_int8" if prec == "int8" else "")
        per = base_ms * slow * SPEEDUP[ep] * (0.6 if prec == "int8" else 1.0)
        # Batching helps until the device saturates, then costs a little.
        eff = 1.0 / (1.0 + 0.8 * (1 - math.exp(-b / 8))) * (1 + 0.002 * b)
        p50 = per * b * eff * rng.uniform(0.95, 1.05)
        rel = rng.uniform(0.002, 0.03)
        n = rng.randint(50, 3000)
        status = "failed" if rng.random() < 0.003 else "ok"
        throttled = rng.random() < 0.01
        thr = b * 1000.0 / (p50 * rng.uniform(1.0, 1.08))
        rec = {
            "record": "result", "schema": 1, "ts": 1764600000000 + i * 1000, "device_id": dev, "board": board,
            "sweep_id": f"s{sweep:05d}-{board}", "run_id": f"s{sweep:05d}-{board}-{i:07d}", "status": status,
            "model": model, "model_sha256": "%064x" % rng.getrandbits(256), "arch": arch, "task": "classification",
            "backend": backend, "ep": ep, "ep_requested": ep, "precision": prec, "batch": b, "batch_mode": mode,
            "threads": 4, "input_shape": f"{b}x3x224x224",
        }
        if status == "failed":
            rec["error"] = "inference failed after 3 timed runs: out of memory"
        else:
            rec.update({
                "iterations": n, "warmup_iterations": 20, "duration_s": round(n * p50 / 1000, 3),
                "stop_reason": "ci_target", "init_ms": round(rng.uniform(20, 900), 3), "first_ms": round(p50 * 2, 3),
                "latency_ms_mean": round(p50 * 1.02, 6), "latency_ms_std": round(p50 * 0.04, 6),
                "latency_ms_min": round(p50 * 0.93, 6), "latency_ms_max": round(p50 * 1.6, 6),
                "latency_ms_p50": round(p50, 6), "latency_ms_p50_ci_low": round(p50 * (1 - rel), 6),
                "latency_ms_p50_ci_high": round(p50 * (1 + rel), 6), "latency_ms_p90": round(p50 * 1.05, 6),
                "latency_ms_p95": round(p50 * 1.08, 6), "latency_ms_p99": round(p50 * 1.2, 6),
                "latency_ms_p999": round(p50 * 1.4, 6), "latency_ms_per_sample_p50": round(p50 / b, 6),
                "throughput_ips": round(thr, 6), "throughput_ips_ci_low": round(thr * (1 - rel), 6),
                "throughput_ips_ci_high": round(thr * (1 + rel), 6), "latency_ms_sum": round(n * p50 * 1.02, 6),
                "cv": round(rng.uniform(0.01, 0.2), 6), "outliers": rng.randint(0, 40), "median_rel_ci": round(rel, 6),
                "throttled": throttled, "temp_c_start": 45.0, "temp_c_max": round(rng.uniform(50, 85), 1),
                "temp_c_end": 55.0, "freq_mhz_min": 1500.0, "power_w_mean": round(rng.uniform(2, 15), 3),
                "energy_mj_per_sample": round(rng.uniform(1, 50), 3), "power_scope": "board",
            })
            if throttled:
                rec["warnings"] = "throttled"
        rec.update({"runtime": runtime, "runtime_version": ver, "edgebench_version": "0.1.0",
                    "kernel": "6.6.51-v8-16k+", "governor": "performance", "seed": 42})
        files[board].write(json.dumps(rec, separators=(",", ":")) + "\n")
    for f in files.values():
        f.close()


if __name__ == "__main__":
    main()
