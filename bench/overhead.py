#!/usr/bin/env python3
"""Harness overhead: edgebench's p50 latency against a minimal onnxruntime loop.

Both sides run the same model file with the same ONNX Runtime version and the same
settings (CPU execution provider, batch 1, one intra-op thread, one inter-op thread,
sequential execution, all graph optimisations, default spinning) and the same
protocol (warm-up of at least W runs and W seconds, then timed runs for S seconds).
Rounds alternate, python first, so slow drifts of the machine hit both sides alike:

    python, edgebench, python, edgebench, ...

Each round reports its nearest-rank p50; the result is the median of each side's
per-round p50s and their relative difference, (edgebench - python) / python. A
difference beyond --max-diff in either direction exits 1: edgebench would be adding
time to what it measures, or measuring under other settings than it claims.

    "$(models/setup-venv.sh)" bench/overhead.py --edgebench target/release/edgebench \\
        --library .deps/onnxruntime/lib/libonnxruntime.so --models-dir models/build \\
        --rounds 5 --seconds 10

The Python loop uses the `onnxruntime` package, whose module carries its own copy of
the runtime; it must be the version of --library (checked, refused otherwise).
Exit status: 0 within --max-diff, 1 beyond it, 2 the comparison could not be made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path


class Refused(Exception):
    """The comparison cannot be made (the message says why)."""


# ---------------------------------------------------------------- library version


def library_version(path: Path) -> str:
    """Version string of a libonnxruntime.so, read through its C API
    (OrtGetApiBase()->GetVersionString()) in a child process, so this process never
    holds two copies of the runtime at once."""
    code = (
        "import ctypes, sys\n"
        "class Base(ctypes.Structure):\n"
        "    _fields_ = [('get_api', ctypes.c_void_p), ('get_version', ctypes.CFUNCTYPE(ctypes.c_char_p))]\n"
        "lib = ctypes.CDLL(sys.argv[1])\n"
        "lib.OrtGetApiBase.restype = ctypes.POINTER(Base)\n"
        "print(lib.OrtGetApiBase().contents.get_version().decode())\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.strip():
        raise Refused(f"cannot read the ONNX Runtime version of {path}: {r.stderr.strip() or 'no output'}")
    return r.stdout.strip()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def same_build_note(ort, library: Path) -> str:
    """Whether the package ships a byte-identical copy of --library (wheels >= 1.19 do)."""
    shipped = Path(ort.__file__).parent / "capi" / f"libonnxruntime.so.{ort.__version__}"
    if not shipped.exists():
        return "the package carries no separate libonnxruntime.so to compare bytes with"
    if sha256_of(shipped) == sha256_of(library.resolve()):
        return "byte-identical to the library in the Python package"
    return "same version, but not byte-identical to the library in the Python package"


# ---------------------------------------------------------------- statistics


def p50(samples_ms: list[float]) -> float:
    """Nearest-rank median: the ceil(n/2)-th smallest sample."""
    s = sorted(samples_ms)
    return s[max(math.ceil(0.5 * len(s)), 1) - 1]


# ---------------------------------------------------------------- the two sides


def python_round(ort, model: Path, input_name: str, shape: list[int], proto: dict) -> tuple[float, int]:
    """One round of the minimal loop: fresh session, warm-up, timed runs."""
    import numpy as np

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(42).standard_normal((1, *shape[1:]), dtype=np.float32)
    feed = {input_name: x}
    run = sess.run

    clock = time.perf_counter_ns
    t0, n = clock(), 0
    while n < proto["warmup_runs"] or clock() - t0 < proto["warmup_s"] * 1e9:
        run(None, feed)
        n += 1

    max_n = int(proto["max_s"] * 1e5) + proto["min_runs"] + 16  # generous bound: 10 µs a run
    lat = [0] * max_n
    start, n = clock(), 0
    while n < max_n:
        a = clock()
        run(None, feed)
        b = clock()
        lat[n] = b - a
        n += 1
        elapsed = b - start
        if (n >= proto["min_runs"] and elapsed >= proto["min_s"] * 1e9) or elapsed >= proto["max_s"] * 1e9:
            break
    return p50([v / 1e6 for v in lat[:n]]), n


def edgebench_round(exe: Path, config: Path, model: str, ort_version: str) -> tuple[float, int]:
    cmd = [
        str(exe),
        "run",
        "--config",
        str(config),
        "--models",
        model,
        "--batch",
        "1",
        "--threads",
        "1",
        "--ep",
        "cpu",
        "--json",
        "--out",
        "/dev/null",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    results = []
    for line in r.stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and rec.get("record") == "result":
            results.append(rec)
    if len(results) != 1:
        raise Refused(
            f"edgebench gave {len(results)} result records (exit {r.returncode}); command: {' '.join(cmd)}\n"
            f"stderr: {r.stderr.strip()[-2000:]}"
        )
    rec = results[0]
    if rec.get("status") != "ok" or "latency_ms_p50" not in rec:
        raise Refused(f"edgebench run failed: {rec.get('error', rec)}")
    if rec.get("runtime_version") not in (None, ort_version):
        raise Refused(f"edgebench ran ONNX Runtime {rec['runtime_version']}, the Python side {ort_version}")
    return float(rec["latency_ms_p50"]), int(rec.get("iterations", 0))


# ---------------------------------------------------------------- driver


def find_model(models_dir: Path, name: str) -> dict:
    path = models_dir / "manifest.toml"
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise Refused(f"{path}: {e}") from e
    for m in doc.get("model", []):
        if m.get("name") == name and m.get("precision") == "fp32":
            f = models_dir / m["file"]
            if not f.exists():
                raise Refused(f"{f} (model {name}) does not exist; build it with models/export.py")
            return {"file": f, "input_name": m["input_name"], "input_shape": m["input_shape"]}
    raise Refused(f"{path}: no fp32 model named {name}")


def write_config(d: Path, library: Path, models_dir: Path, proto: dict) -> Path:
    cfg = d / "edgebench.toml"
    cfg.write_text(
        f"""[onnxruntime]
library = {json.dumps(str(library.resolve()))}
graph_optimization = "all"
inter_threads = 1
spinning = true
[models]
dir = {json.dumps(str(models_dir.resolve()))}
[store]
dir = {json.dumps(str(d / "store"))}
[protocol]
warmup_runs = {proto["warmup_runs"]}
warmup_s = {proto["warmup_s"]}
min_runs = {proto["min_runs"]}
min_s = {proto["min_s"]}
max_s = {proto["max_s"]}
target_rel_ci = 0.0
cooldown_max_s = 0.0
"""
    )
    return cfg


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edgebench", type=Path, help="edgebench binary (omit with --python-only)")
    p.add_argument("--library", type=Path, required=True, help="libonnxruntime.so edgebench loads")
    p.add_argument("--models-dir", type=Path, required=True, help="model directory with manifest.toml")
    p.add_argument("--model", default="mobilenet_v2", help="fp32 model name (default: mobilenet_v2)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per round (default 10)")
    p.add_argument("--warmup-runs", type=int, default=5)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--min-runs", type=int, default=10)
    p.add_argument("--max-diff", type=float, default=0.02, help="largest allowed |relative difference| (default 0.02)")
    p.add_argument("--python-only", action="store_true", help="run only the Python loop (no comparison)")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0:
        p.error("--rounds must be >= 1 and --seconds > 0")
    if not args.python_only and args.edgebench is None:
        p.error("--edgebench is required (or --python-only)")
    proto = {
        "warmup_runs": args.warmup_runs,
        "warmup_s": args.warmup_s,
        "min_runs": args.min_runs,
        "min_s": args.seconds,
        "max_s": args.seconds,
    }
    try:
        return compare(args, proto)
    except Refused as e:
        print(f"overhead: refused: {e}", file=sys.stderr)
        return 2


def compare(args, proto) -> int:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise Refused(f"{e}: run with the python that models/setup-venv.sh prints") from e
    if not args.library.exists():
        raise Refused(f"--library {args.library} does not exist")
    lib_version = library_version(args.library)
    if lib_version != ort.__version__:
        raise Refused(
            f"--library {args.library} is ONNX Runtime {lib_version}, the Python package is {ort.__version__}; "
            f"install the matching package (ORT_VERSION={lib_version} models/setup-venv.sh)"
        )
    if not args.python_only and not os.access(args.edgebench, os.X_OK):
        raise Refused(f"--edgebench {args.edgebench} is not an executable file")
    model = find_model(args.models_dir, args.model)
    print(f"overhead: ONNX Runtime {lib_version} ({same_build_note(ort, args.library)})")
    print(
        f"overhead: {args.model} ({model['file']}), batch 1, 1 intra-op thread, {args.rounds} round(s) a side, "
        f"{args.seconds:g} s timed after >= {proto['warmup_runs']} runs and {proto['warmup_s']:g} s warm-up"
    )
    print(f"{'round':>5}  {'python p50 ms':>13}  {'runs':>6}  {'edgebench p50 ms':>16}  {'runs':>6}")
    py, eb = [], []
    with tempfile.TemporaryDirectory(prefix="edgebench-overhead-") as d:
        cfg = write_config(Path(d), args.library, args.models_dir, proto)
        for i in range(1, args.rounds + 1):
            a, na = python_round(ort, model["file"], model["input_name"], model["input_shape"], proto)
            py.append(a)
            if args.python_only:
                print(f"{i:>5}  {a:>13.3f}  {na:>6}")
                continue
            b, nb = edgebench_round(args.edgebench, cfg, args.model, ort.__version__)
            eb.append(b)
            print(f"{i:>5}  {a:>13.3f}  {na:>6}  {b:>16.3f}  {nb:>6}", flush=True)
    mp = statistics.median(py)
    if args.python_only:
        print(f"median python p50 {mp:.3f} ms")
        return 0
    me = statistics.median(eb)
    diff = (me - mp) / mp
    paired = statistics.median((b - a) / a for a, b in zip(py, eb))
    print(f"median p50: python {mp:.3f} ms, edgebench {me:.3f} ms, difference {diff * 100:+.2f} % (edgebench vs python)")
    print(f"median of per-round differences (neighbouring rounds paired): {paired * 100:+.2f} %")
    if abs(diff) > args.max_diff:
        print(f"overhead: difference {diff * 100:+.2f} % is beyond {args.max_diff * 100:.1f} %", file=sys.stderr)
        return 1
    print(f"overhead: within {args.max_diff * 100:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
