#!/usr/bin/python3
"""Build edgebench's model zoo: torchvision architectures exported to ONNX.

Every model named in models/manifest.toml is built here, reproducibly:

* the architecture comes from torchvision (U-Net is written below), built with
  ``weights=None`` (and ``weights_backbone=None``: otherwise detection and segmentation
  builders try to download ImageNet weights), right after ``torch.manual_seed(0)``;
* batch-norm running statistics are re-estimated on a few seeded N(0, 1) batches, so
  activations stay O(1): with the default statistics they drift into the subnormal
  range (slow on some CPUs) or overflow, which would distort latency;
* the graph is exported with the legacy TorchScript exporter at opset 17 (IR 8, which
  ONNX Runtime 1.18 and later load), with a dynamic batch axis on the input and on
  every output;
* classification models also get a static INT8 variant: onnxruntime's
  ``quantize_static`` in QDQ format, calibrated on seeded random inputs.

Weights are random; accuracy is not measured and never claimed.

Run it with Debian's python (torch 1.13 / torchvision 0.14 from python3-torch and
python3-torchvision), or with the venv from models/setup-venv.sh, which adds
onnxruntime for the INT8 variants and for checking each export against torch::

    /usr/bin/python3 models/export.py --set quick --out models/build --no-int8
    "$(models/setup-venv.sh)" models/export.py --set paper --out models/build

It writes the ONNX files and a copy of the manifest, with sha256 filled from the files
actually written, into the output directory. A file built earlier with the same recipe
and unchanged since is kept (the recipe and hash are recorded in .export-state.json).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.toml"
STATE_FILE = ".export-state.json"

# Bump when anything below changes the bytes written for the same tool versions.
RECIPE_VERSION = 1
SEED = 0
OPSET = 17
# Batch used to trace the export (not 1, so the tracer cannot specialise on it).
TRACE_BATCH = 2
# Batch-norm re-estimation: this many forward passes of this batch size.
BN_PASSES = 4
BN_BATCH = 4
# INT8 calibration: this many seeded random inputs of batch 1.
CALIB_INPUTS = 8

TASKS = ("classification", "detection", "segmentation")
PRECISIONS = ("fp32", "int8")


class ExportError(Exception):
    """A model could not be built; the message names the model."""


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- manifest


def load_manifest(path: Path) -> dict:
    """Read and check a manifest; raise ValueError naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from e
    models = doc.get("model")
    if not isinstance(models, list) or not models:
        raise ValueError(f"{path}: no [[model]] entries")
    keys = {
        "name": str,
        "task": str,
        "file": str,
        "sha256": str,
        "input_name": str,
        "input_shape": list,
        "dtype": str,
        "precision": str,
        "base": str,
        "arch": str,
        "origin": str,
        "licence": str,
    }
    by_name = {}
    for i, m in enumerate(models):
        where = f"{path}: model #{i + 1} ({m.get('name', '?')})"
        for k, t in keys.items():
            if not isinstance(m.get(k), t):
                raise ValueError(f"{where}: key `{k}` missing or not a {t.__name__}")
        unknown = set(m) - set(keys)
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        if m["name"] in by_name:
            raise ValueError(f"{where}: duplicate name")
        if m["task"] not in TASKS:
            raise ValueError(f"{where}: task `{m['task']}` not one of {TASKS}")
        if m["precision"] not in PRECISIONS:
            raise ValueError(f"{where}: precision `{m['precision']}` not one of {PRECISIONS}")
        shape = m["input_shape"]
        # Axis 0 is -1 (dynamic batch) or a fixed batch size (a model exported with one).
        if not shape or any(not isinstance(d, int) or d < 1 for d in shape[1:]) or not (
            isinstance(shape[0], int) and (shape[0] == -1 or shape[0] >= 1)
        ):
            raise ValueError(f"{where}: input_shape {shape} must be [-1 or a fixed batch, positive dims...]")
        if m["sha256"] and not re.fullmatch(r"[0-9a-f]{64}", m["sha256"]):
            raise ValueError(f"{where}: sha256 is not 64 lower-case hex digits")
        if Path(m["file"]).is_absolute() or ".." in Path(m["file"]).parts:
            raise ValueError(f"{where}: file must be relative to the model directory")
        by_name[m["name"]] = m
    for m in models:
        base = by_name.get(m["base"])
        if base is None or base["precision"] != "fp32":
            raise ValueError(f"{path}: {m['name']}: base `{m['base']}` is not an fp32 model")
    sets = doc.get("sets", {})
    for set_name, names in sets.items():
        for n in names:
            if n not in by_name or by_name[n]["precision"] != "fp32":
                raise ValueError(f"{path}: set `{set_name}` names `{n}`, not an fp32 model")
    return {"models": by_name, "sets": sets, "text": path.read_text()}


def render_manifest(text: str, sha: dict[str, str]) -> str:
    """The manifest text with each entry's sha256 line set from `sha` ("" if absent).

    Line-based so the comments survive; every [[model]] block must give `name` before
    `sha256`, as the committed manifest does.
    """
    out, name = [], None
    for line in text.splitlines(keepends=True):
        s = line.strip()
        if s == "[[model]]":
            name = None
        m = re.match(r'name\s*=\s*"([^"]*)"', s)
        if m:
            name = m.group(1)
        if re.match(r"sha256\s*=", s):
            if name is None:
                raise ValueError("manifest: sha256 line before the entry's name")
            line = f'sha256 = "{sha.get(name, "")}"\n'
        out.append(line)
    return "".join(out)


def size_text(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- architectures


def unet_module():
    """A standard U-Net (Ronneberger et al. 2015, with batch norm and padded convs).

    Four 2x2 max-poolings; channels 32, 64, 128, 256 on the way down, 512 at the
    bottom; each level is two 3x3 conv + BN + ReLU; upsampling by 2x2 transposed
    convolution, then concatenation with the skip connection; a 1x1 conv to 2 classes.
    Padding keeps the output the size of the input (256x256 in the manifest):
    7.8 M parameters, about 13.7 GMAC per 256x256 image.
    """
    import torch
    from torch import nn

    def double_conv(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self, in_ch=3, classes=2, base=32, depth=4):
            super().__init__()
            chans = [base * 2**i for i in range(depth + 1)]
            self.down = nn.ModuleList()
            c = in_ch
            for ch in chans[:-1]:
                self.down.append(double_conv(c, ch))
                c = ch
            self.pool = nn.MaxPool2d(2)
            self.bottom = double_conv(chans[-2], chans[-1])
            self.up = nn.ModuleList()
            self.dec = nn.ModuleList()
            for ch in reversed(chans[:-1]):
                self.up.append(nn.ConvTranspose2d(ch * 2, ch, 2, stride=2))
                self.dec.append(double_conv(ch * 2, ch))
            self.head = nn.Conv2d(chans[0], classes, 1)

        def forward(self, x):
            skips = []
            for block in self.down:
                x = block(x)
                skips.append(x)
                x = self.pool(x)
            x = self.bottom(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
                x = dec(torch.cat([up(x), skip], dim=1))
            return self.head(x)

    return UNet()


def build_fp32(name: str):
    """(module in eval mode, output names) for a manifest name; seeded."""
    import torch
    import torchvision.models as tvm
    import torchvision.models.detection as tvd
    import torchvision.models.segmentation as tvs
    from torch import nn

    class SegOut(nn.Module):
        """The segmentation model's 'out' tensor instead of its dict."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m(x)["out"]

    class SsdCore(nn.Module):
        """SSD backbone + head: raw class logits and box regressions per anchor."""

        def __init__(self, m):
            super().__init__()
            self.backbone = m.backbone
            self.head = m.head

        def forward(self, x):
            feats = list(self.backbone(x).values())
            h = self.head(feats)
            return h["cls_logits"], h["bbox_regression"]

    torch.manual_seed(SEED)
    classifiers = {
        "resnet50": lambda: tvm.resnet50(weights=None),
        "mobilenet_v2": lambda: tvm.mobilenet_v2(weights=None),
        "mobilenet_v3_large": lambda: tvm.mobilenet_v3_large(weights=None),
        "efficientnet_b0": lambda: tvm.efficientnet_b0(weights=None),
        "inception_v3": lambda: tvm.inception_v3(weights=None, aux_logits=False, init_weights=True),
    }
    if name in classifiers:
        return classifiers[name](), ["logits"]
    if name == "ssdlite320_mobilenet_v3_large":
        m = tvd.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
        return SsdCore(m), ["cls_logits", "bbox_regression"]
    if name == "deeplabv3_mobilenet_v3_large":
        m = tvs.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, aux_loss=False)
        return SegOut(m), ["out"]
    if name == "lraspp_mobilenet_v3_large":
        m = tvs.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)
        return SegOut(m), ["out"]
    if name == "unet":
        return unet_module(), ["out"]
    raise ExportError(f"{name}: no builder in export.py for this manifest entry")


# ---------------------------------------------------------------- fp32 export


def reestimate_bn(model, shape, gen) -> int:
    """Reset BN running stats and re-estimate them (cumulative average) on random
    batches; only BN layers are in training mode, so dropout and stochastic depth stay
    off. Returns the number of BN layers."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
        bn.train()
    with torch.no_grad():
        for _ in range(BN_PASSES):
            model(torch.randn((BN_BATCH, *shape[1:]), generator=gen))
    model.eval()
    return len(bns)


def activation_range(model, x):
    """Run `model(x)`; return (outputs, smallest and largest std of any leaf module's
    float output, fraction of non-zero activations that are subnormal)."""
    import torch

    stds, sub, total = [], 0, 0

    def hook(_m, _i, out):
        nonlocal sub, total
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if torch.is_tensor(t) and t.is_floating_point() and t.numel() > 1:
                stds.append(float(t.std()))
                a = t.abs()
                sub += int(((a > 0) & (a < torch.finfo(t.dtype).tiny)).sum())
                total += t.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    return outs, min(stds), max(stds), sub / max(total, 1)


def export_fp32(entry: dict, dest: Path, ort, build=None) -> None:
    """Build (with `build(name)`, default `build_fp32`), re-estimate BN, export to
    `dest`; check against onnxruntime if given."""
    import torch

    name, shape = entry["name"], entry["input_shape"]
    t0 = time.monotonic()
    model, out_names = (build or build_fp32)(name)
    gen = torch.Generator().manual_seed(SEED)
    n_bn = reestimate_bn(model, shape, gen)
    x = torch.randn((TRACE_BATCH, *shape[1:]), generator=gen)
    ref, lo, hi, subnormal = activation_range(model, x)
    params = sum(p.numel() for p in model.parameters())
    log(
        f"  {name}: {params / 1e6:.2f} M params, {n_bn} BN layers re-estimated; "
        f"layer output std {lo:.3g}..{hi:.3g}, subnormal fraction {subnormal:.2g} "
        f"({time.monotonic() - t0:.1f} s)"
    )
    if not all(torch.isfinite(r).all() for r in ref):
        raise ExportError(f"{name}: non-finite outputs after BN re-estimation")
    if subnormal > 1e-4 or lo < 1e-6 or hi > 1e6:
        raise ExportError(f"{name}: activations out of range (std {lo:.3g}..{hi:.3g}, subnormal {subnormal:.2g})")

    t1 = time.monotonic()
    tmp = dest.with_suffix(".onnx.tmp")
    dyn = {n: {0: "batch"} for n in [entry["input_name"], *out_names]}
    torch.onnx.export(
        model,
        x,
        str(tmp),
        input_names=[entry["input_name"]],
        output_names=out_names,
        dynamic_axes=dyn,
        opset_version=OPSET,
        do_constant_folding=True,
    )
    log(f"  {name}: exported {size_text(tmp)} ({time.monotonic() - t1:.1f} s)")
    if ort is not None:
        check_with_ort(ort, tmp, entry, [r.numpy() for r in ref], x.numpy())
    os.replace(tmp, dest)


def check_with_ort(ort, path: Path, entry: dict, ref, x) -> None:
    """Load `path` in onnxruntime; compare with torch at the trace batch and run batch 1."""
    import numpy as np

    name = entry["name"]
    t0 = time.monotonic()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {entry["input_name"]: x})
    if ref is not None:
        for r, g in zip(ref, got):
            if r.shape != g.shape:
                raise ExportError(f"{name}: onnxruntime output shape {g.shape}, torch {r.shape}")
            err = float(np.max(np.abs(r - g))) / max(float(np.max(np.abs(r))), 1e-12)
            if err > 1e-3:
                raise ExportError(f"{name}: onnxruntime differs from torch (relative max error {err:.3g})")
    one = sess.run(None, {entry["input_name"]: x[:1]})
    for g, o in zip(got, one):
        if o.shape != (1, *g.shape[1:]) or not np.isfinite(o).all():
            raise ExportError(f"{name}: batch 1 gives {o.shape} (batch {len(x)} gave {g.shape})")
    shapes = ", ".join(str(list(g.shape)) for g in got)
    what = "agrees with torch" if ref is not None else "runs"
    log(f"  {name}: onnxruntime {ort.__version__} {what}, outputs {shapes}, batch 1 ok ({time.monotonic() - t0:.1f} s)")


# ---------------------------------------------------------------- int8


def drop_unused_opsets(path: Path) -> None:
    """Remove opset imports of domains no node uses.

    The quantiser's pre-processing saves the graph through onnxruntime's optimiser,
    which declares every domain it knows (com.microsoft, ai.onnx.ml 5, ...); a runtime
    older than the quantiser may refuse versions it has never heard of.
    """
    import onnx

    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used]
    if len(keep) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(keep)
        onnx.save(model, str(path))


def quantize_int8(entry: dict, base_path: Path, dest: Path, ort) -> None:
    """Static QDQ INT8 quantisation of `base_path` calibrated on seeded random data."""
    import tempfile

    import numpy as np
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name, shape = entry["name"], entry["input_shape"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(SEED)
            self.data = iter(
                [{entry["input_name"]: rng.standard_normal((1, *shape[1:]), dtype=np.float32)} for _ in range(CALIB_INPUTS)]
            )

        def get_next(self):
            return next(self.data, None)

    t0 = time.monotonic()
    tmp = dest.with_suffix(".onnx.tmp")
    with tempfile.TemporaryDirectory(prefix="edgebench-quant-") as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(base_path), str(pre))
        quantize_static(
            str(pre),
            str(tmp),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    drop_unused_opsets(tmp)
    log(f"  {name}: quantised {size_text(tmp)} ({time.monotonic() - t0:.1f} s)")
    x = np.random.default_rng(SEED + 1).standard_normal((TRACE_BATCH, *shape[1:]), dtype=np.float32)
    check_with_ort(ort, tmp, entry, None, x)
    os.replace(tmp, dest)


# ---------------------------------------------------------------- driver


def recipe(entry: dict, base_sha: str | None, ort) -> dict:
    import torch
    import torchvision

    r = {
        "recipe": RECIPE_VERSION,
        "name": entry["name"],
        "input_shape": entry["input_shape"],
        "seed": SEED,
        "opset": OPSET,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "bn": [BN_PASSES, BN_BATCH],
    }
    if entry["precision"] == "int8":
        import onnx

        r.update(base_sha256=base_sha, onnxruntime=ort.__version__, onnx=onnx.__version__, calib=CALIB_INPUTS)
    return r


def select(manifest: dict, args) -> list[dict]:
    """Entries to build, fp32 bases before their INT8 variants."""
    models, sets = manifest["models"], manifest["sets"]
    if args.models:
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
    else:
        if args.set not in sets:
            raise ValueError(f"unknown set `{args.set}` (manifest has: {', '.join(sorted(sets))})")
        wanted = sets[args.set]
    unknown = [n for n in wanted if n not in models]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)} (manifest has: {', '.join(models)})")
    bases = []
    explicit_int8 = set()
    for n in wanted:
        m = models[n]
        if m["base"] not in bases:
            bases.append(m["base"])
        if m["precision"] == "int8":
            explicit_int8.add(n)
    out = []
    for b in bases:
        out.append(models[b])
        for m in models.values():
            if m["base"] == b and m["precision"] == "int8" and (args.int8 or m["name"] in explicit_int8):
                out.append(m)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--set", default="quick", help="named set from the manifest (default: quick)")
    g.add_argument("--models", help="comma-separated model names (an _int8 name also builds its base)")
    p.add_argument("--out", type=Path, default=HERE / "build", help="output directory (default: models/build)")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="manifest to read (default: models/manifest.toml)")
    p.add_argument("--int8", dest="int8", action="store_true", default=True, help="also build INT8 variants (default)")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="skip INT8 variants")
    p.add_argument("--force", action="store_true", help="rebuild even files that are up to date")
    args = p.parse_args(argv)

    try:
        manifest = load_manifest(args.manifest)
        todo = select(manifest, args)
    except ValueError as e:
        print(f"export: error: {e}", file=sys.stderr)
        return 2

    try:
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        print(
            f"export: error: {e}; run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision) "
            "or the venv printed by models/setup-venv.sh",
            file=sys.stderr,
        )
        return 2
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is None and any(m["precision"] == "int8" for m in todo):
        print(
            "export: error: INT8 variants need the onnxruntime package: run with the python that "
            "models/setup-venv.sh prints, or pass --no-int8",
            file=sys.stderr,
        )
        return 2

    import warnings

    # Harmless: torch 1.13's exporter says this of constants folded into the graph.
    warnings.filterwarnings("ignore", message="The shape inference of prim::Constant type is missing")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    args.out.mkdir(parents=True, exist_ok=True)
    state_path = args.out / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}

    log(
        f"export: {len(todo)} model(s) into {args.out} (torch {torch.__version__}, opset {OPSET}, "
        f"onnxruntime {ort.__version__ if ort else 'absent: exports not checked'})"
    )
    failed = []
    t_all = time.monotonic()
    for i, entry in enumerate(todo, 1):
        name = entry["name"]
        dest = args.out / entry["file"]
        base_sha = None
        if entry["precision"] == "int8":
            base = manifest["models"][entry["base"]]
            base_path = args.out / base["file"]
            if entry["base"] in failed or not base_path.exists():
                log(f"[{i}/{len(todo)}] {name}: skipped, base {entry['base']} not built")
                failed.append(name)
                continue
            base_sha = sha256_of(base_path)
        want = recipe(entry, base_sha, ort)
        prev = state.get(name, {})
        if not args.force and dest.exists() and prev.get("recipe") == want and prev.get("sha256") == sha256_of(dest):
            log(f"[{i}/{len(todo)}] {name}: up to date ({dest.name})")
            continue
        log(f"[{i}/{len(todo)}] {name}: building {dest.name}")
        t0 = time.monotonic()
        try:
            if entry["precision"] == "fp32":
                export_fp32(entry, dest, ort)
            else:
                quantize_int8(entry, base_path, dest, ort)
        except Exception as e:  # report every failure with its model, then go on
            what = str(e) if isinstance(e, ExportError) else f"{name}: {type(e).__name__}: {e}"
            print(f"export: error: {what}", file=sys.stderr)
            failed.append(name)
            state.pop(name, None)
            continue
        finally:
            tmp = dest.with_suffix(".onnx.tmp")
            if tmp.exists():
                tmp.unlink()
        sha = sha256_of(dest)
        state[name] = {"recipe": want, "sha256": sha}
        state_path.write_text(json.dumps(state, indent=1, sort_keys=True) + "\n")
        log(f"[{i}/{len(todo)}] {name}: done in {time.monotonic() - t0:.1f} s, sha256 {sha}")

    shas = {}
    for m in manifest["models"].values():
        f = args.out / m["file"]
        if f.exists() and m["name"] not in failed:
            shas[m["name"]] = sha256_of(f)
    (args.out / "manifest.toml").write_text(render_manifest(manifest["text"], shas))
    log(f"export: wrote {args.out / 'manifest.toml'} ({len(shas)} file(s) present), total {time.monotonic() - t_all:.1f} s")
    if failed:
        print(f"export: error: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
