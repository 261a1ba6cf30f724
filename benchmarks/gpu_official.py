#!/usr/bin/env python
"""Our LSNet against the official one (THU-MIG/lsnet), end to end, in one process on one GPU.

    python benchmarks/gpu_official.py --official .official --out official.json [--dry-run]

For each of lsnet_t/s/b: the official model is built from the checkout given (imported at run time, never
copied here), its weights are loaded into ours (strict state_dict), and

1. agreement: both models' logits on the same input, fp32 with TF32 off, before and after each side's own
   fusion (ours: ``zoo.reparameterize``; theirs: ``utils.replace_batchnorm`` as their speed.py does); the
   largest |difference| must be <= ``--tol`` (1e-4) relative to the largest |logit|;
2. throughput (img/s) with the speed.py rule (warm-up window, then timed calls with a synchronize after each
   until the timed calls add up to the measured window), interleaved official/ours per (model, dtype):
   fp32 NCHW for both; bf16 and fp16 channels_last for ours (model and input cast) against the official
   model under fp16 autocast (its published fp16 protocol).

The JSON is rewritten after every row, so a run cut short keeps what it finished. ``--dry-run`` runs the same
steps on the CPU at toy sizes (batch 2, 0.05 s windows); the official SKA then runs in Triton's
interpreter (set TRITON_INTERPRET=1 before starting; the session script does).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("lsnet_t", "lsnet_s", "lsnet_b")
DTYPES = ("fp32", "bf16", "fp16")


def import_official(path: Path):
    """The official ``model.lsnet`` and ``utils`` modules from a checkout. Their timm ``register_model`` calls
    are suppressed while importing, so that timm's registry keeps our lsnet_* entries."""
    if not (path / "model" / "lsnet.py").is_file() or not (path / "utils.py").is_file():
        raise SystemExit(f"error: the official THU-MIG/lsnet checkout is missing at {path} "
                         "(need model/lsnet.py, model/ska.py and utils.py); the comparison cannot run")
    import timm.models.registry as registry
    import timm.models as timm_models

    sys.path.insert(0, str(path))
    saved = registry.register_model, timm_models.register_model
    registry.register_model = timm_models.register_model = lambda fn: fn
    try:
        lsnet = importlib.import_module("model.lsnet")
        utils = importlib.import_module("utils")
    finally:
        registry.register_model, timm_models.register_model = saved
        sys.path.remove(str(path))
    # timm >= 1.0 no longer takes build_model_with_cfg(default_cfg=...): build the class with the variant's
    # own arguments (pretrained weights are never downloaded here)
    lsnet.build_model_with_cfg = lambda cls, variant, pretrained, default_cfg=None, **kw: cls(**kw)
    return lsnet, utils


def throughput(torch, model, x, warmup_s: float, measure_s: float, device: str, autocast=None) -> dict:
    """speed.py's rule: run for warmup_s, then time calls (synchronizing after each) until they sum to
    measure_s. Returns img/s of the mean call and the number of timed calls."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    ctx = autocast or contextlib.nullcontext
    with torch.inference_mode(), ctx():
        start = time.perf_counter()
        while time.perf_counter() - start < warmup_s:
            model(x)
        sync()
        times = []
        while sum(times) < measure_s:
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    mean = sum(times) / len(times)
    return {"img_s": x.shape[0] / mean, "calls": len(times), "mean_ms": 1e3 * mean}


def agreement(torch, ours, theirs, x) -> float:
    with torch.inference_mode():
        a, b = ours(x).float(), theirs(x).float()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def run(args) -> dict:
    import torch
    import zoo

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: gpu_official.py needs a CUDA GPU (or --dry-run)")
    official, utils = import_official(args.official)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    ska_kernel = "triton" if device == "cuda" and zoo.ska.use_triton() else "pytorch"
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "python": platform.python_version(), "batch": args.batch,
              "resolution": args.resolution, "warmup_s": args.warmup_s, "measure_s": args.measure_s,
              "tf32": False, "ska_kernel_ours": ska_kernel, "official": str(args.official),
              "official_commit": _commit(args.official), "dry_run": args.dry_run, "rows": []}
    try:
        import triton
        result["triton"] = triton.__version__
    except ImportError:
        result["triton"] = None
    gen = torch.Generator().manual_seed(0)
    for name in args.models:
        theirs = getattr(official, name)(num_classes=1000).eval()
        ours = zoo.create_model(name).eval()
        ours.load_state_dict(theirs.state_dict(), strict=True)  # official weights into ours
        _randomize_bn(torch, theirs, gen)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        theirs, ours = theirs.to(device), ours.to(device)
        x = torch.randn(args.check_batch, 3, args.resolution, args.resolution, generator=gen).to(device)
        row = {"model": name, "kind": "agreement", "tol": args.tol, "err_unfused": agreement(torch, ours, theirs, x)}
        utils.replace_batchnorm(theirs)
        ours = zoo.reparameterize(ours).to(device).eval()
        row["err_fused"] = agreement(torch, ours, theirs, x)
        row["ok"] = row["err_unfused"] <= args.tol and row["err_fused"] <= args.tol
        _emit(result, row, args.out)
        for dname in args.dtypes:
            xb = torch.randn(args.batch, 3, args.resolution, args.resolution, generator=gen).to(device)
            for impl in ("official", "ours"):
                row = {"model": name, "kind": "throughput", "dtype": dname, "impl": impl}
                try:
                    if impl == "official":
                        autocast = None
                        if dname != "fp32":  # the official fp16 protocol: fp16 autocast, NCHW
                            row["protocol"] = "fp16 autocast, NCHW"
                            autocast = lambda: torch.autocast(device, dtype=torch.float16)  # noqa: E731
                        row.update(throughput(torch, theirs, xb, args.warmup_s, args.measure_s, device, autocast))
                    else:
                        dt = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dname]
                        cl = dname != "fp32"
                        fmt = torch.channels_last if cl else torch.contiguous_format
                        m = zoo.copy_model(ours).to(device=device, dtype=dt, memory_format=fmt).eval()
                        row["protocol"] = f"{dname} cast{', channels_last' if cl else ', NCHW'}"
                        row.update(throughput(torch, m, xb.to(dtype=dt, memory_format=fmt), args.warmup_s,
                                              args.measure_s, device))
                        del m
                except Exception as exc:  # one failing row must not lose the others
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                _emit(result, row, args.out)
            del xb
            if device == "cuda":
                torch.cuda.empty_cache()
        del theirs, ours
    result["ratios"] = ratios(result["rows"])
    _write(result, args.out)
    return result


def ratios(rows: list[dict]) -> list[dict]:
    """ours / official img/s per (model, dtype), plus ours in bf16/fp16 against the official fp16 figure."""
    tp = {(r["model"], r["dtype"], r["impl"]): r.get("img_s") for r in rows if r["kind"] == "throughput"}
    out = []
    for (model, dtype, impl), v in tp.items():
        o = tp.get((model, dtype, "official"))
        if impl == "ours" and v and o:
            out.append({"model": model, "dtype": dtype, "ours_over_official": v / o})
    return out


def _randomize_bn(torch, model, gen) -> None:
    """Non-trivial BatchNorm statistics, so that fusion is really exercised by the agreement check."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def _commit(path: Path) -> str | None:
    f = path / "COMMIT"
    return f.read_text().strip() if f.is_file() else None


def _emit(result: dict, row: dict, out: Path | None) -> None:
    result["rows"].append(row)
    print(json.dumps(row), flush=True)
    _write(result, out)


def _write(result: dict, out: Path | None) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--official", type=Path, default=ROOT / ".official", help="THU-MIG/lsnet checkout")
    p.add_argument("--out", type=Path, help="JSON results, rewritten after every row")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--dtypes", default=",".join(DTYPES))
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--check-batch", type=int, default=32, help="batch of the agreement check")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--warmup-s", type=float, default=2.0, help="2 s + 4 s: the lsnet_short windows")
    p.add_argument("--measure-s", type=float, default=4.0)
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes (batch 2, 0.05 s windows)")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    bad = [m for m in args.models if m not in MODELS] + [d for d in args.dtypes if d not in DTYPES]
    if bad:
        p.error(f"unknown model or dtype: {', '.join(bad)}")
    if args.dry_run:
        args.batch, args.check_batch = 2, 1  # 224 px: the official attention biases are sized for it
        args.warmup_s, args.measure_s = 0.05, 0.05
    return args


def main(argv=None) -> int:
    result = run(parse_args(argv))
    bad = [r for r in result["rows"] if r["kind"] == "agreement" and not r["ok"]]
    for r in result["ratios"]:
        print(f"{r['model']:8} {r['dtype']:5} ours/official {r['ours_over_official']:.2f}x")
    if bad:
        print(f"error: outputs disagree beyond {bad[0]['tol']}: {[(r['model'], r['err_unfused'], r['err_fused']) for r in bad]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
