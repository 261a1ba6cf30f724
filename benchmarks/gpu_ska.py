#!/usr/bin/env python
"""SKA effective bandwidth on a CUDA GPU: our Triton kernels, the pure-PyTorch path and (optionally) the
official LSNet Triton kernel, forward and backward, at LSNet-T/B's LSConv shapes (224 px input, batch 2048).

    python benchmarks/gpu_ska.py --out ska_gpu.json [--official /path/to/THU-MIG/lsnet]

Effective bandwidth counts each tensor once, whatever the kernel really moves:

* forward:  x read + w read + out written;
* backward: grad_out, x, w read + grad_x, grad_w written.

Times are CUDA-event medians of ``--reps`` calls after ``--warmup`` calls (the first call of a Triton kernel
also compiles and autotunes it, outside the timed calls). Rows run dtype by dtype (fp32 first), and no new
(shape, dtype) group starts once ``--budget-s`` seconds have passed, so a one-shot run on a lent GPU always
finishes and writes its JSON. The official code is imported from the given checkout at run time (its
``model/ska.py``); nothing of it is copied here. Needs torch with CUDA and triton; ``--help`` and the byte
arithmetic work anywhere.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# LSConv inputs at 224 px: (model, stage, C, H=W). SKA's weight groups are G = C / 8.
SHAPES = {
    "lsnet_t": [("lsnet_t", 2, 128, 14), ("lsnet_t", 3, 256, 7)],
    "lsnet_b": [("lsnet_b", 1, 128, 28), ("lsnet_b", 2, 256, 14), ("lsnet_b", 3, 384, 7)],
}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
ELEMENT_SIZE = {"fp32": 4, "fp16": 2, "bf16": 2}
IMPLS = ("triton", "official", "torch")
# Nominal DRAM bandwidth (TB/s) by device-name fragment, most specific first; for the "% of peak" column only.
PEAK_TBPS = [("H200", 4.8), ("H100 NVL", 3.9), ("H100 PCIe", 2.0), ("H100", 3.35), ("A100-SXM4-80GB", 2.04),
             ("A100 80GB PCIe", 1.94), ("A100", 1.56), ("L40S", 0.864), ("RTX 4090", 1.008), ("RTX 3090", 0.936)]


# --------------------------------------------------------------------------------------------------------------
# byte arithmetic (no GPU needed)


def ska_numels(shape: tuple[int, int, int, int], groups: int) -> tuple[int, int]:
    """Element counts of x (B, C, H, W) and w (B, G, 9, H, W)."""
    b, c, h, w = shape
    if c % groups:
        raise ValueError(f"C={c} is not divisible by G={groups}")
    return b * c * h * w, b * groups * 9 * h * w


def forward_bytes(shape: tuple[int, int, int, int], groups: int, element_size: int) -> int:
    """x read + w read + out written."""
    nx, nw = ska_numels(shape, groups)
    return (2 * nx + nw) * element_size


def backward_bytes(shape: tuple[int, int, int, int], groups: int, element_size: int) -> int:
    """grad_out, x, w read + grad_x, grad_w written."""
    nx, nw = ska_numels(shape, groups)
    return (3 * nx + 2 * nw) * element_size


def tbps(nbytes: int, ms: float | None) -> float | None:
    """Effective bandwidth in TB/s (1e12 bytes per second) of moving nbytes in ms milliseconds."""
    if ms is None or ms <= 0 or not math.isfinite(ms):
        return None
    return nbytes / (ms * 1e-3) / 1e12


def peak_tbps(device_name: str) -> float | None:
    for fragment, peak in PEAK_TBPS:
        if fragment.lower() in device_name.lower():
            return peak
    return None


def bench_shapes(models: list[str], batch: int) -> list[dict]:
    rows = []
    for model in models:
        for name, stage, c, hw in SHAPES[model]:
            rows.append({"model": name, "stage": stage, "shape": (batch, c, hw, hw), "groups": c // 8})
    return rows


# --------------------------------------------------------------------------------------------------------------
# GPU side


def _write(result: dict, out) -> None:
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))


def _time_ms(torch, fn, warmup: int, reps: int) -> float:
    """Median CUDA-event time of fn() in milliseconds, after warm-up calls (wall clock in a dry run)."""
    if not torch.cuda.is_available():
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        return 1e3 * (time.perf_counter() - t0) / reps
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def load_official(path: str):
    """The official SKA module class from a THU-MIG/lsnet checkout (or a path to its model/ska.py)."""
    p = Path(path)
    file = p if p.suffix == ".py" else p / "model" / "ska.py"
    if not file.is_file():
        raise FileNotFoundError(f"no official SKA at {file}")
    spec = importlib.util.spec_from_file_location("lsnet_official_ska", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SKA


def _import_zoo_ska() -> None:
    """Make zoo.ska and zoo.ska.triton importable; they need only torch and triton. zoo/__init__ also imports
    the models (timm), so where that fails (a bare GPU box) the package is stood up without its __init__."""
    sys.path.insert(0, str(ROOT))
    try:
        import zoo  # noqa: F401
    except ImportError as exc:
        import types

        print(f"note: importing zoo failed ({exc}); loading zoo.ska without zoo/__init__.py", flush=True)
        pkg = types.ModuleType("zoo")
        pkg.__path__ = [str(ROOT / "zoo")]
        if "zoo.ska" in sys.modules:  # already imported (its custom ops registered): keep it, never re-run it
            pkg.ska = sys.modules["zoo.ska"]
        sys.modules["zoo"] = pkg


def _max_err(torch, got, want) -> float:
    """Largest |got - want| relative to want's largest magnitude."""
    got, want = got.float(), want.float()
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()


def run(args) -> dict:
    import torch

    dev = "cpu" if args.dry_run else "cuda"
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_ska.py needs a CUDA GPU (or --dry-run, under TRITON_INTERPRET=1)")
    _import_zoo_ska()
    from zoo.ska import ska_backward_reference, ska_reference

    kt = None
    if "triton" in args.impls:
        from zoo.ska import triton as kt  # noqa: F811

    official = None
    if "official" in args.impls:
        if args.official:
            official = load_official(args.official)()
        else:
            args.impls = [i for i in args.impls if i != "official"]

    device = torch.cuda.get_device_name() if dev == "cuda" else "cpu (dry run, Triton interpreter)"
    started = time.perf_counter()
    result = {"device": device, "peak_tbps_nominal": peak_tbps(device), "torch": torch.__version__,
              "python": platform.python_version(), "batch": args.batch, "warmup": args.warmup, "reps": args.reps,
              "official": args.official, "rows": [], "skipped": [], "autotuned": {}}
    try:
        import triton
        result["triton"] = triton.__version__
    except ImportError:
        result["triton"] = None

    gen = torch.Generator(device=dev).manual_seed(0)
    for dname in args.dtypes:
        dtype = getattr(torch, DTYPES[dname])
        for spec in bench_shapes(args.models, args.batch):
            label = f"{spec['model']} s{spec['stage']} {'x'.join(map(str, spec['shape']))} G={spec['groups']} {dname}"
            if time.perf_counter() - started > args.budget_s:
                result["skipped"].append(label)
                print(f"skip (budget): {label}", flush=True)
                continue
            shape, g = spec["shape"], spec["groups"]
            b, c, h, w_ = shape
            x = torch.randn(shape, device=dev, generator=gen).to(dtype)
            w = torch.randn(b, g, 9, h, w_, device=dev, generator=gen).to(dtype)
            go = torch.randn(shape, device=dev, generator=gen).to(dtype)
            if args.channels_last:  # as in a channels_last model: x, grad_out and the LKP conv output w
                x = x.contiguous(memory_format=torch.channels_last)
                go = go.contiguous(memory_format=torch.channels_last)
                w = (w.view(b, g * 9, h, w_).contiguous(memory_format=torch.channels_last)
                     .view(b, g, 9, h, w_))
            fb = forward_bytes(shape, g, ELEMENT_SIZE[dname])
            bb = backward_bytes(shape, g, ELEMENT_SIZE[dname])
            # accuracy on the first samples, against the fp32 reference on the same (rounded) inputs
            n = min(8, b)
            xs, ws, gos = x[:n].float(), w[:n].float(), go[:n].float()
            ref_out = ska_reference(xs, ws)
            ref_gx, ref_gw = ska_backward_reference(gos, xs, ws)

            impls = {}
            if kt is not None:
                impls["triton"] = (lambda: kt.ska_forward_triton(x, w), lambda: kt.ska_backward_triton(go, x, w))
            if official is not None:
                impls["official"] = _official_fns(torch, official, x, w, go)
            if "torch" in args.impls:
                def torch_fwd():
                    with torch.no_grad():
                        return ska_reference(x, w)
                impls["torch"] = (torch_fwd, lambda: ska_backward_reference(go, x, w))
            for name in (i for i in IMPLS if i in impls):
                fwd, bwd = impls[name]
                row = {**spec, "shape": list(shape), "dtype": dname, "impl": name,
                       "channels_last": args.channels_last, "fwd_bytes": fb, "bwd_bytes": bb}
                try:
                    # the first calls also compile and autotune (on the full batch, as timed)
                    row["err_out"] = _max_err(torch, fwd()[:n], ref_out)
                    gx, gw = bwd()
                    row["err_grad_x"] = _max_err(torch, gx[:n], ref_gx)
                    row["err_grad_w"] = _max_err(torch, gw[:n], ref_gw)
                    del gx, gw
                    row["fwd_ms"] = _time_ms(torch, fwd, args.warmup, args.reps)
                    row["bwd_ms"] = _time_ms(torch, bwd, args.warmup, args.reps)
                except Exception as exc:  # one implementation failing must not lose the others' numbers
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                    if dev == "cuda":
                        torch.cuda.synchronize()
                row["fwd_tbps"] = tbps(fb, row.get("fwd_ms"))
                row["bwd_tbps"] = tbps(bb, row.get("bwd_ms"))
                if kt is not None and name == "triton":
                    row["family"] = kt.kernel_family(x, w, go)
                result["rows"].append(row)
                _write(result, args.out)  # a run cut short keeps every finished row
                _print_row(row, result["peak_tbps_nominal"])
            del x, w, go, impls, xs, ws, gos, ref_out, ref_gx, ref_gw
            if dev == "cuda":
                torch.cuda.empty_cache()
    if kt is not None:
        result["autotuned"] = kt.autotuned()
    _ratios(result)
    result["elapsed_s"] = time.perf_counter() - started
    return result


def _official_fns(torch, official, x, w, go):
    def fwd():
        with torch.no_grad():
            return official(x, w)

    xr, wr = x.detach().requires_grad_(), w.detach().requires_grad_()
    state = {}

    def bwd():  # backward only: the forward graph is built once, on the first call
        if "out" not in state:
            state["out"] = official(xr, wr)
        return torch.autograd.grad(state["out"], (xr, wr), go, retain_graph=True)

    return fwd, bwd


def _ratios(result: dict) -> None:
    """triton / official and triton / torch speed ratios per (shape, dtype), forward and backward."""
    by = {}
    for r in result["rows"]:
        by.setdefault((r["model"], r["stage"], r["dtype"]), {})[r["impl"]] = r
    ratios = []
    for (model, stage, dtype), rows in by.items():
        t = rows.get("triton")
        if not t:
            continue
        entry = {"model": model, "stage": stage, "dtype": dtype}
        for other in ("official", "torch"):
            o = rows.get(other)
            for d in ("fwd", "bwd"):
                if o and t.get(f"{d}_ms") and o.get(f"{d}_ms"):
                    entry[f"{d}_vs_{other}"] = o[f"{d}_ms"] / t[f"{d}_ms"]
        ratios.append(entry)
    result["speedups"] = ratios


def _fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


def _print_row(row: dict, peak: float | None) -> None:
    shape = "x".join(map(str, row["shape"]))
    g = row.get

    def pct(v):
        return f"{100 * v / peak:4.0f}%" if peak and v else "   -"

    print(f"{row['model']:8} s{row['stage']} {shape:18} G={row['groups']:<3} {row['dtype']:5} {row['impl']:9}"
          f" fwd {_fmt(g('fwd_ms'), '8.3f')} ms {_fmt(g('fwd_tbps'), '6.3f')} TB/s {pct(g('fwd_tbps'))}"
          f" | bwd {_fmt(g('bwd_ms'), '8.3f')} ms {_fmt(g('bwd_tbps'), '6.3f')} TB/s {pct(g('bwd_tbps'))}"
          f" | err {_fmt(g('err_out'), '.1e')}/{_fmt(g('err_grad_x'), '.1e')}/{_fmt(g('err_grad_w'), '.1e')}"
          + (f" | ERROR {row['error']}" if g("error") else ""), flush=True)


def print_summary(result: dict) -> None:
    print(f"\n{result['device']} (nominal {result['peak_tbps_nominal']} TB/s), batch {result['batch']}, "
          f"{result['elapsed_s']:.0f} s")
    print("speedup of the Triton kernels (time of the other / time of triton):")
    print(f"{'model':8} {'stage':5} {'dtype':5} {'fwd/off':>8} {'bwd/off':>8} {'fwd/torch':>9} {'bwd/torch':>9}")
    for e in result["speedups"]:
        print(f"{e['model']:8} {e['stage']:<5} {e['dtype']:5} {_fmt(e.get('fwd_vs_official'), '8.2f')} "
              f"{_fmt(e.get('bwd_vs_official'), '8.2f')} {_fmt(e.get('fwd_vs_torch'), '9.2f')} "
              f"{_fmt(e.get('bwd_vs_torch'), '9.2f')}")
    if result["skipped"]:
        print(f"skipped for the time budget: {len(result['skipped'])} groups")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    p.add_argument("--official", metavar="PATH", help="checkout of THU-MIG/lsnet (or its model/ska.py) to time too")
    p.add_argument("--models", default="lsnet_t,lsnet_b", help="comma-separated: lsnet_t, lsnet_b")
    p.add_argument("--dtypes", default="fp32,bf16,fp16", help="comma-separated: fp32, fp16, bf16 (run in this order)")
    p.add_argument("--impls", default="triton,official,torch", help="comma-separated: triton, official, torch")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (after compile/autotune)")
    p.add_argument("--reps", type=int, default=20, help="timed calls; the median is reported")
    p.add_argument("--channels-last", action="store_true", help="time x in channels_last memory format")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU at toy sizes (batch 2, one rep); set TRITON_INTERPRET=1 so the kernels run interpreted")
    p.add_argument("--budget-s", type=float, default=100.0,
                   help="start no new (shape, dtype) group after this many seconds")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.dtypes = [d for d in args.dtypes.split(",") if d]
    args.impls = [i for i in args.impls.split(",") if i]
    for values, allowed, what in ((args.models, SHAPES, "model"), (args.dtypes, DTYPES, "dtype"),
                                  (args.impls, IMPLS, "impl")):
        bad = [v for v in values if v not in allowed]
        if bad:
            p.error(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    if args.reps < 1 or args.warmup < 1:
        p.error("--reps and --warmup must be at least 1")
    if args.dry_run:
        args.batch, args.warmup, args.reps = 2, 1, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print_summary(result)
    if args.out:
        _write(result, args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
