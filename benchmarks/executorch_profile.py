#!/usr/bin/env python
"""Per-operator time inside ExecuTorch's XNNPACK delegate, from an ETDump, summed per XNNPACK operator kind.

Exports ``--model`` to ``.pte`` as traced (``export_form=False``) and in lsbench's export form (depthwise
convolutions beyond XNNPACK's 25-tap kernels split), runs each ``--runs`` times with ETDump enabled on a
1-thread XNNPACK threadpool, and writes ``executorch_profile_<model>`` (md/csv/tex) into --out: per operator
kind (XNNPACK's own names, e.g. "Convolution (NHWC, F32) IGEMM") the sum over its instances of the median
time per run, the instance count, and the delegate call's median. This is the evidence for why a fully
delegated model is slower than onnxruntime (fastvit_t8: its 7x7 depthwise convs run as grouped IGEMM).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/executorch_profile.py --model fastvit_t8
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

import zoo
from lsbench.env import cpu_model, package_version
from lsbench.export import export_model
from lsbench.report.render import write_table
from lsbench.runtimes import parity_input


def profile(path: Path, size, runs: int, etdump: Path) -> tuple[pd.DataFrame, float]:
    from executorch.devtools import Inspector
    from executorch.extension.pybindings import portable_lib

    if portable_lib._threadpool_get_thread_count() != 1:
        portable_lib._unsafe_reset_threadpool(1)
    module = portable_lib._load_for_executorch(str(path), enable_etdump=True, debug_buffer_size=0)
    x = parity_input(size, 0)
    for _ in range(runs):
        module.forward([x])
    module.write_etdump_result_to_file(str(etdump))
    df = Inspector(etdump_path=str(etdump)).to_dataframe()
    delegate_ms = float(df.loc[df.event_name == "DELEGATE_CALL", "p50 (ms)"].iloc[0])
    ops = df[df.is_delegated_op == True].copy()  # a pandas mask
    ops["operator kind"] = ops.event_name.str.replace(r" #\d+$", "", regex=True)
    table = ops.groupby("operator kind")["p50 (ms)"].agg(["sum", "count"]).reset_index()
    return table.rename(columns={"sum": "ms (sum of medians)", "count": "instances"}), delegate_ms


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="fastvit_t8")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--out", default="reports/mobile")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    size = (1, 3, args.resolution, args.resolution)
    torch.manual_seed(0)
    net = zoo.reparameterize(zoo.create_model(args.model).eval(), inplace=True)
    frames, delegate = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, form in (("as traced", False), ("export form", True)):
            r = export_model(net, f"{args.model}_{form}", "pte", tmp, input_size=size, export_form=form)
            table, delegate[label] = profile(r.path, size, args.runs, Path(tmp) / f"{form}.etdp")
            frames.append(table.assign(pte=label))
    wide = frames[0].merge(frames[1], on="operator kind", how="outer", suffixes=(" as traced", " export form"))
    wide = wide.drop(columns=[c for c in wide.columns if c.startswith("pte")])
    wide = wide.sort_values("ms (sum of medians) as traced", ascending=False, na_position="last")
    for c in wide.columns:
        if c.startswith("ms"):
            wide[c] = wide[c].round(3)
        elif c.startswith("instances"):
            wide[c] = wide[c].astype("Int64")
    wide.attrs = {"made_by": "benchmarks/executorch_profile.py", "provenance": [
        f"{args.model}, reparameterized, seeded random init, fp32, batch 1, {args.resolution}x{args.resolution}; "
        f"host {cpu_model()}, XNNPACK threadpool 1 thread; executorch {package_version('executorch')}, "
        f"torch {torch.__version__}.",
        f"ETDump of {args.runs} runs per program (executorch.devtools.Inspector): per XNNPACK operator instance the "
        "median over runs, summed per kind. Delegate call median: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in delegate.items())
        + " (the operator events do not cover the whole delegate call: the rest is not attributed by ETDump).",
        "'export form': depthwise convs of more than 25 taps split into column strips "
        "(lsbench.export.split_large_depthwise)."]}
    command = f"PYTHONPATH=$PWD .venv/bin/python benchmarks/executorch_profile.py --model {args.model}"
    paths = write_table(wide, args.out, f"executorch_profile_{args.model}", command=command)
    print(wide.to_string(index=False))
    print("\n".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
