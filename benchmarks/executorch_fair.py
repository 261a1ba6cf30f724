#!/usr/bin/env python
"""Fair mobile numbers: ExecuTorch op counts and latency before/after the export forms, beside ONNX Runtime.

For each model (reparameterized, seeded random init, fp32, batch 1, 224x224 unless --resolution):

  pte_plain    the model traced as it is (LSNet: SKA decomposed by ``zoo.ska.reference_ska``), ExecuTorch +
               XNNPACK partitioner (``lsbench.export.export_model(..., export_form=False)``)
  pte          the model's export form (``LSNet.export_form``; other models: unchanged), ExecuTorch + XNNPACK
  onnx_plain   the model as it is, ONNX (dynamo, opset 20), onnxruntime with all graph optimizations
  onnx         the export form, ONNX, onnxruntime

Op counts are read back from each written ``.pte`` (``lsbench.export.pte_op_counts``: the forward plan's
instructions, delegate calls vs kernel calls on ExecuTorch's portable kernels). Latency: every runtime at the
same thread count (--threads, default 1; onnxruntime intra-op threads, ExecuTorch's XNNPACK threadpool),
all sessions open at once and timed in interleaved rounds (round r runs each variant --iters calls after
--rewarm calls, order rotated by r), so the ratios are measured side by side; reported are the medians of
all samples and the ratio of medians with the IQR. Writes ``executorch_ops`` and ``executorch_latency``
(md/csv/tex) into --out through the report layer's table writer. Example:

    PYTHONPATH=$PWD .venv/bin/python benchmarks/executorch_fair.py --models lsnet_t,lsnet_s,lsnet_b,fastvit_t8
"""
from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import zoo
from lsbench.env import cpu_model, package_version
from lsbench.export import export_model, pte_op_counts
from lsbench.report.render import write_table
from lsbench.runtimes import open_runner, parity_input

VARIANTS = {"pte_plain": ("pte", False), "pte": ("pte", True), "onnx_plain": ("onnx", False), "onnx": ("onnx", True)}
THREADPOOL: set[int] = set()
COMMAND = "PYTHONPATH=$PWD .venv/bin/python benchmarks/executorch_fair.py"


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return zoo.reparameterize(zoo.create_model(name).eval(), inplace=True)


def form_label(details: dict) -> str:
    parts = (["export form"] if details.get("export_form") else []) + (
        [f"{details['split_depthwise']} depthwise convs split"] if details.get("split_depthwise") else [])
    return " + ".join(parts) or "as traced"


def export_all(name: str, size: tuple[int, ...], out: Path, variants: list[str]) -> dict[str, dict]:
    net = build(name)
    done = {}
    for v in variants:
        fmt, form = VARIANTS[v]
        start = time.perf_counter()
        r = export_model(net, f"{name}_{v}", fmt, out, input_size=size, export_form=form)
        done[v] = dict(path=r.path, rel_err=r.max_rel_err, abs_err=r.max_abs_err, export_s=time.perf_counter() - start,
                       form=form_label(r.details))
        print(f"{name} {v}: exported in {done[v]['export_s']:.0f} s, max_abs_err {r.max_abs_err:.2e}", flush=True)
    return done


def time_interleaved(arts: dict[str, dict], size, threads: int, rounds: int, iters: int, rewarm: int,
                     warmup: int) -> dict[str, list[float]]:
    x = parity_input(size, 0)
    samples: dict[str, list[float]] = {v: [] for v in arts}
    with contextlib.ExitStack() as stack:
        calls = {}
        for v, a in arts.items():
            call, _ = stack.enter_context(open_runner(VARIANTS[v][0], a["path"], threads, input_size=size))
            calls[v] = call
            for _ in range(warmup):
                call(x)
        from executorch.extension.pybindings import portable_lib

        THREADPOOL.add(int(portable_lib._threadpool_get_thread_count()))  # what XNNPACK really runs with
        names = list(calls)
        clock = time.perf_counter_ns
        for r in range(rounds):
            for v in names[r % len(names):] + names[:r % len(names)]:
                call = calls[v]
                for _ in range(rewarm):
                    call(x)
                for _ in range(iters):
                    t = clock()
                    call(x)
                    samples[v].append((clock() - t) * 1e-9)
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="lsnet_t,lsnet_s,lsnet_b,fastvit_t8")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rewarm", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default="reports/mobile")
    ap.add_argument("--workdir", default=None, help="where the artifacts go (default: a temporary folder)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = (1, 3, args.resolution, args.resolution)
    ops_rows, lat_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            is_lsnet = callable(getattr(build(name), "export_form", None))
            variants = list(VARIANTS) if is_lsnet else ["pte_plain", "pte", "onnx"]
            arts = export_all(name, size, work, variants)
            for v in [v for v in variants if v.startswith("pte")]:
                c = pte_op_counts(arts[v]["path"])
                ops_rows.append({"model": name, "form": arts[v]["form"], "delegate calls": c.delegate_calls,
                                 "portable ops": c.portable_ops,
                                 "portable op kinds": "; ".join(f"{k} ×{n}" for k, n in c.portable.items()) or "–",
                                 "max abs err": f"{arts[v]['abs_err']:.1e}",
                                 "max rel err": f"{arts[v]['rel_err']:.1e}"})
            samples = time_interleaved(arts, size, args.threads, args.rounds, args.iters, args.rewarm, args.warmup)
            med = {v: float(np.median(s)) * 1e3 for v, s in samples.items()}
            ref = "onnx"
            for v, s in samples.items():
                q1, q3 = np.percentile(np.asarray(s) * 1e3, [25, 75])
                lat_rows.append({"model": name, "variant": v, "runtime": "executorch" if v.startswith("pte") else
                                 "onnxruntime", "form": arts[v]["form"],
                                 "median ms": round(med[v], 2), "IQR ms": round(q3 - q1, 2),
                                 "ratio to onnx": round(med[v] / med[ref], 3),
                                 "samples": len(s)})
            print(name, {v: round(m, 2) for v, m in med.items()}, flush=True)
    host = cpu_model() or platform.processor() or "unknown CPU"
    provenance = [f"Host: {host}, {args.threads} thread(s) in every runtime (onnxruntime intra-op threads, ExecuTorch "
                  f"XNNPACK threadpool, read back while timing: {sorted(THREADPOOL)}); torch {torch.__version__}, "
                  f"executorch {package_version('executorch')}, "
                  f"onnxruntime {package_version('onnxruntime')}, onnx opset 20 (dynamo exporter).",
                  f"Models reparameterized (zoo.reparameterize), seeded random init, fp32, batch 1, "
                  f"{args.resolution}x{args.resolution}.",
                  "'as traced': the model as it is (LSNet's SKA through zoo.ska.reference_ska); 'export form': "
                  "LSNet.export_form (zoo.lsnet: SKA as zoo.ska.reference.ska_export, GroupNorm as "
                  "group_norm_export, attention bias precomputed for the export grid, keep-dim pool); for .pte also "
                  "'depthwise convs split': depthwise convs of more than 25 taps (7x7) as column strips of <= 25 "
                  "taps (lsbench.export.split_large_depthwise), which XNNPACK runs with its depthwise kernels "
                  "instead of grouped IGEMM."]
    ops = pd.DataFrame(ops_rows)
    ops.attrs = {"made_by": "benchmarks/executorch_fair.py", "provenance": provenance + [
        "Op counts read from each written .pte (lsbench.export.pte_op_counts): instructions of the forward plan, "
        "delegate calls (XnnpackBackend) vs kernel calls on ExecuTorch's portable kernels. max abs err: the .pte "
        "output vs the eager model on the seeded parity input (rel: over the output's largest magnitude)."]}
    lat = pd.DataFrame(lat_rows)
    lat.attrs = {"made_by": "benchmarks/executorch_fair.py", "provenance": provenance + [
        f"All sessions of a model open at once, timed interleaved: {args.rounds} rounds x {args.iters} calls per "
        f"variant (after {args.warmup} warm-up and {args.rewarm} re-warm calls per round, order rotated per round); "
        "median and IQR over all samples; ratio of medians to onnx (the export form in onnxruntime). The 2-core "
        "host is shared: compare ratios, not absolute times."]}
    out = Path(args.out)
    paths = write_table(ops, out, "executorch_ops", command=f"{COMMAND} --models {args.models}")
    paths += write_table(lat, out, "executorch_latency", command=f"{COMMAND} --models {args.models}")
    print("\n".join(str(p) for p in paths))
    print(lat.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
