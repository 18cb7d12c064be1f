#!/usr/bin/python3
"""Check built models against their manifest with whichever onnxruntime is importable.

For every manifest entry whose file is present (or every entry of --set / --models,
which must then be present): the sha256 matches the manifest, onnxruntime loads the
file, the input has the manifest's name, shape and dtype with a symbolic batch axis,
and batch 1 and batch 3 both run with finite outputs whose axis 0 follows the batch.

    "$(models/setup-venv.sh)" models/verify.py --dir models/build
    PYTHONPATH=<dir with onnxruntime 1.18.1> /usr/bin/python3 models/verify.py --dir models/build

Needs only numpy and onnxruntime (no torch), so it also runs against an older
onnxruntime installed with `pip install --target`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from export import load_manifest, sha256_of  # noqa: E402

DTYPES = {"float32": "tensor(float)"}


def check(entry: dict, path: Path, ort, np) -> str:
    """One model; returns a summary line or raises ValueError naming the problem."""
    if entry["sha256"] and sha256_of(path) != entry["sha256"]:
        raise ValueError(f"sha256 {sha256_of(path)} differs from the manifest's {entry['sha256']}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    t0 = time.monotonic()
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    init_s = time.monotonic() - t0
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"{len(inputs)} inputs, expected 1")
    inp = inputs[0]
    if inp.name != entry["input_name"]:
        raise ValueError(f"input is named `{inp.name}`, manifest says `{entry['input_name']}`")
    if inp.type != DTYPES.get(entry["dtype"]):
        raise ValueError(f"input type {inp.type}, manifest says {entry['dtype']}")
    shape = entry["input_shape"]
    if not isinstance(inp.shape[0], str) or list(inp.shape[1:]) != shape[1:]:
        raise ValueError(f"input shape {inp.shape}, manifest says {shape} (batch axis symbolic)")
    rng = np.random.default_rng(0)
    outs = {}
    for batch in (1, 3):
        x = rng.standard_normal((batch, *shape[1:]), dtype=np.float32)
        res = sess.run(None, {inp.name: x})
        for o, meta in zip(res, sess.get_outputs()):
            if o.shape[0] != batch or not np.isfinite(o).all():
                raise ValueError(f"batch {batch}: output `{meta.name}` has shape {o.shape} or non-finite values")
        outs[batch] = [f"{m.name}{list(o.shape[1:])}" for o, m in zip(res, sess.get_outputs())]
    return f"init {init_s:.2f} s, outputs {', '.join(outs[1])}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check built models against their manifest.")
    p.add_argument("--dir", type=Path, required=True, help="model directory holding manifest.toml")
    p.add_argument("--manifest", type=Path, help="manifest (default: DIR/manifest.toml)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--set", help="named set whose models (and INT8 variants) must all be present")
    g.add_argument("--models", help="comma-separated names that must be present")
    args = p.parse_args(argv)
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(args.manifest or args.dir / "manifest.toml")
    except ValueError as e:
        print(f"verify: error: {e}", file=sys.stderr)
        return 2
    models = manifest["models"]
    required = set()
    if args.set:
        if args.set not in manifest["sets"]:
            print(f"verify: error: unknown set `{args.set}`", file=sys.stderr)
            return 2
        bases = set(manifest["sets"][args.set])
        required = {n for n, m in models.items() if m["base"] in bases}
    elif args.models:
        required = {n.strip() for n in args.models.split(",") if n.strip()}
        unknown = required - set(models)
        if unknown:
            print(f"verify: error: unknown model(s) {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2

    print(f"verify: onnxruntime {ort.__version__}, {args.dir}")
    bad = 0
    for name, entry in models.items():
        path = args.dir / entry["file"]
        if not path.exists():
            if name in required:
                print(f"  FAIL {name}: {path} is missing")
                bad += 1
            else:
                print(f"  skip {name}: {entry['file']} absent")
            continue
        try:
            print(f"  ok   {name}: {check(entry, path, ort, np)}")
        except Exception as e:  # any load or run failure is a finding about this model
            print(f"  FAIL {name}: {type(e).__name__}: {e}")
            bad += 1
    if bad:
        print(f"verify: {bad} model(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
