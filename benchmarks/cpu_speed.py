#!/usr/bin/env python
"""Batch-1 CPU latency of LSNet-T: the official model vs lsbench's deploy, optimized and compiled forms.

Everything runs in one process, single-threaded by default, fp32, 224x224, batch 1:

  official        the official architecture in deploy form (BN folded, as ``zoo.reparameterize``) with SKA
                  computed the straightforward PyTorch way (``F.unfold`` then weight-and-sum)
  deploy          the same deploy form with lsbench's ``zoo::ska`` op (eager)
  optimized       ``zoo.lsnet_cpu.optimize_for_inference``: channels-last, oneDNN prepacked GEMMs for the
                  1x1 convs with fused ReLU / residual, BN after SKA folded, eager
  compiled_*      ``zoo.lsnet_cpu.compile_for_inference`` (torch.compile, inductor C++ backend, freezing):
                  default (zoo::ska opaque), ska_decomp (SKA decomposed so inductor fuses it), cpp_wrapper
                  (+ C++ wrapper instead of Python), max_autotune (+ GEMM autotuning), nhwc (the portable
                  channels-last form with 1x1 convs as F.linear, compiled)
  efficientvit_m4, repvit_m0_9   timm models, reparameterized, eager (context)
  ablations       deploy_channels_last (the deploy form in channels-last memory format, which moves the 1x1
                  convs from THNN to oneDNN without prepacking) and optimized_portable (the optimized form
                  with F.linear / F.conv2d instead of prepacked oneDNN ops)

Variants are timed in interleaved blocks (round r runs every variant once, order rotated by r), each block
``--iters`` single-call samples after a short re-warm. Reported: median and IQR of all samples per
variant, and each variant's median ratio to ``official`` with a hierarchical bootstrap CI (rounds, then
samples within a round). Compile time is the wall time of the first call (trace + codegen + C++
build) with an empty on-disk inductor cache per variant (kernels already built in this process by an
earlier variant can still be reused from memory). Weights are random (latency does not depend on them; pass
--checkpoint to use real ones). Example:

    .venv/bin/python benchmarks/cpu_speed.py --out results/cpu_speed.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path


# compiled variants: keyword arguments of zoo.lsnet_cpu.compile_for_inference
COMPILED = {
    "default": dict(decompose_ska=False),
    "ska_decomp": dict(decompose_ska=True),
    "cpp_wrapper": dict(decompose_ska=True, cpp_wrapper=True),
    "max_autotune": dict(decompose_ska=True, mode="max-autotune-no-cudagraphs"),
    "nhwc": dict(decompose_ska=True, form="nhwc"),
}


def _kw(kwargs: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _cold_compile_seconds(name: str, args: argparse.Namespace) -> float:
    import subprocess

    cmd = [sys.executable, __file__, "--compile-only", name, "--threads", str(args.threads), "--size",
           str(args.size), "--batch", str(args.batch)] + (["--checkpoint", args.checkpoint] if args.checkpoint else [])
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=tempfile.mkdtemp(prefix=f"lsbench_inductor_cold_{name}_"))
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["compile_s"])


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    p.add_argument("--iters", type=int, default=20, help="timed calls per variant per round")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls per variant before the first round")
    p.add_argument("--rewarm", type=int, default=2, help="untimed calls per variant at the start of each block")
    p.add_argument("--no-ablations", dest="ablations", action="store_false",
                   help="skip the ablation variants (deploy_channels_last, optimized_portable)")
    p.add_argument("--compile", default=",".join(COMPILED),
                   help=f"compiled variants, comma-separated from: {', '.join(COMPILED)}; 'none' to skip")
    p.add_argument("--cold-compile", action="store_true",
                   help="also time each compile in a fresh process (no in-memory reuse, no one-time init shared)")
    p.add_argument("--compile-only", default=None, help=argparse.SUPPRESS)
    p.add_argument("--context", default="efficientvit_m4,repvit_m0_9", help="other models (reparameterized, eager)")
    p.add_argument("--checkpoint", default=None, help="lsnet_t weights (optional)")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-inductor-cache", action="store_true",
                   help="reuse the default inductor cache (compile times are then not cold)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    compiled = [c for c in args.compile.split(",") if c and c != "none"]
    unknown = set(compiled) - set(COMPILED)
    if unknown:
        raise SystemExit(f"unknown compiled variant(s) {sorted(unknown)}; choose from {', '.join(COMPILED)}")
    # before torch starts its thread pools / inductor reads its cache location
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    if not args.keep_inductor_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="lsbench_inductor_")
    repo = Path(__file__).resolve().parents[1]
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    import zoo
    from lsbench.env import fingerprint
    from lsbench.timing import summarize, time_cpu
    from zoo.lsnet_cpu import compile_for_inference, mkldnn_available, optimize_for_inference

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    if args.compile_only:  # child of --cold-compile: time one compile in this fresh process, print it
        model = zoo.create_model("lsnet_t", checkpoint=args.checkpoint).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
        with torch.inference_mode():
            t0 = time.perf_counter()
            compile_for_inference(model, **COMPILED[args.compile_only])(x)
            print(json.dumps({"compile_s": time.perf_counter() - t0}))
        return 0

    class UnfoldSKA(nn.Module):
        """SKA as a plain PyTorch port of the official kernel would write it."""

        def forward(self, x, w):
            b, c, h, wd = x.shape
            g = w.shape[1]
            cols = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h, wd)
            return (cols * w[:, None]).sum(3).view(b, c, h, wd)

    def official_form(fused: nn.Module) -> nn.Module:
        m = copy.deepcopy(fused)
        for mod in m.modules():
            if isinstance(mod, zoo.LSConv):
                mod.ska = UnfoldSKA()
        return m

    model = zoo.create_model("lsnet_t", checkpoint=args.checkpoint).eval()
    if args.checkpoint is None:  # non-trivial BN / GN statistics, so folding is exercised as with real weights
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                    m.running_var.uniform_(0.5, 2.0)
                    m.running_mean.normal_(0, 0.1)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.1)
                elif isinstance(m, nn.GroupNorm):
                    m.weight.normal_(1, 0.2)
                    m.bias.normal_(0, 0.2)
    deploy = zoo.reparameterize(model)
    x = torch.randn(args.batch, 3, args.size, args.size)

    variants: dict[str, dict] = {}

    def add(name: str, fn, description: str, lsnet: bool = True, compile_s: float | None = None) -> None:
        variants[name] = dict(fn=fn, description=description, lsnet=lsnet, compile_s=compile_s)

    with torch.inference_mode():
        reference = deploy(x)
        add("official", official_form(deploy), "official deploy form, SKA via F.unfold (eager)")
        add("deploy", deploy, "zoo deploy form, zoo::ska op (eager)")
        t0 = time.perf_counter()
        add("optimized", optimize_for_inference(model), "optimize_for_inference: NHWC, oneDNN packed GEMMs, "
            "fused ReLU/residual, BN folded (eager)")
        build_s = time.perf_counter() - t0
        if args.ablations:
            cl = copy.deepcopy(deploy).to(memory_format=torch.channels_last)
            add("deploy_channels_last", lambda t: cl(t.contiguous(memory_format=torch.channels_last)),
                "ablation: deploy form with channels-last weights and input (oneDNN convs, no prepacking)")
            add("optimized_portable", optimize_for_inference(model, use_mkldnn=False),
                "ablation: optimize_for_inference(use_mkldnn=False): NHWC + F.linear / F.conv2d, same fusions")
        for c in compiled:
            if not args.keep_inductor_cache:  # an empty on-disk cache for each variant's compile time
                os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"lsbench_inductor_{c}_")
            fn = compile_for_inference(model, **COMPILED[c])
            t0 = time.perf_counter()
            fn(x)
            add(f"compiled_{c}", fn, f"compile_for_inference({_kw(COMPILED[c])}): inductor C++, freezing",
                compile_s=time.perf_counter() - t0)
            if args.cold_compile:
                variants[f"compiled_{c}"]["compile_s_cold_process"] = _cold_compile_seconds(c, args)
            print(f"compiled_{c}: first call (compile) {variants[f'compiled_{c}']['compile_s']:.1f} s"
                  + (f", in a fresh process {variants[f'compiled_{c}']['compile_s_cold_process']:.1f} s"
                     if args.cold_compile else ""), flush=True)
        for name in [n for n in args.context.split(",") if n]:
            add(name, zoo.reparameterize(zoo.create_model(name).eval()), "timm, reparameterized (eager)", lsnet=False)

        for name, v in variants.items():
            out = v["fn"](x)
            v["shape"] = list(out.shape)
            if v["lsnet"]:
                v["rel_err_vs_deploy"] = float((out - reference).abs().max() / reference.abs().max())
            for _ in range(args.warmup):
                v["fn"](x)

        names = list(variants)
        samples: dict[str, list[list[float]]] = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                fn = variants[n]["fn"]
                samples[n].append(time_cpu(lambda: fn(x), warmup=args.rewarm, repeats=args.iters))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{n} {1e3 * float(np.median(samples[n][-1])):.2f}" for n in names), flush=True)

    rng = np.random.default_rng(args.seed)

    def boot_ratio(a: list[list[float]], b: list[list[float]]) -> tuple[float, float, float]:
        """median(a)/median(b) over all samples, CI by resampling rounds, then samples within rounds."""
        a_r, b_r = [np.asarray(s) for s in a], [np.asarray(s) for s in b]
        point = float(np.median(np.concatenate(a_r)) / np.median(np.concatenate(b_r)))
        ratios = np.empty(args.n_boot)
        for i in range(args.n_boot):
            idx = rng.integers(0, len(a_r), len(a_r))
            ra = np.concatenate([rng.choice(a_r[j], a_r[j].size) for j in idx])
            rb = np.concatenate([rng.choice(b_r[j], b_r[j].size) for j in idx])
            ratios[i] = np.median(ra) / np.median(rb)
        lo, hi = np.percentile(ratios, [2.5, 97.5])
        return point, float(lo), float(hi)

    results = {}
    for n in names:
        flat = [s for block in samples[n] for s in block]
        stats = summarize(flat, n_boot=args.n_boot, seed=args.seed).scaled(1e3).as_dict()
        v = variants[n]
        entry = dict(description=v["description"], stats_ms=stats,
                     round_medians_ms=[1e3 * float(np.median(b)) for b in samples[n]])
        for key in ("rel_err_vs_deploy", "compile_s", "compile_s_cold_process"):
            if v.get(key) is not None:
                entry[key] = v[key]
        if n != "official":
            ratio, lo, hi = boot_ratio(samples[n], samples["official"])
            entry["ratio_vs_official"] = dict(median=ratio, ci95=[lo, hi])
        results[n] = entry

    print(f"\nlsnet_t, batch {args.batch}, {args.size}px, {args.threads} thread(s), fp32; "
          f"{args.rounds} rounds x {args.iters} calls")
    print(f"{'variant':<24}{'median ms':>10}{'IQR ms':>9}{'x official':>11}  {'95% CI':<16}{'rel err':>9}"
          f"{'compile s':>11}{'(fresh proc)':>13}")
    for n, e in results.items():
        ratio = e.get("ratio_vs_official")
        ci = f"[{ratio['ci95'][0]:.3f}, {ratio['ci95'][1]:.3f}]" if ratio else ""
        err = f"{e['rel_err_vs_deploy']:.1e}" if "rel_err_vs_deploy" in e else "-"
        comp = f"{e['compile_s']:.1f}" if "compile_s" in e else "-"
        cold = f"{e['compile_s_cold_process']:.1f}" if "compile_s_cold_process" in e else "-"
        print(f"{n:<24}{e['stats_ms']['median']:>10.2f}{e['stats_ms']['iqr']:>9.2f}"
              f"{(ratio['median'] if ratio else 1.0):>11.3f}  {ci:<16}{err:>9}{comp:>11}{cold:>13}")

    if args.out is not None:
        import torch._inductor.config as inductor_config

        payload = dict(
            benchmark="cpu_speed", model="lsnet_t",
            settings=dict(batch=args.batch, size=args.size, threads=args.threads, rounds=args.rounds,
                          iters=args.iters, warmup=args.warmup, rewarm=args.rewarm, seed=args.seed,
                          checkpoint=args.checkpoint, cold_inductor_cache=not args.keep_inductor_cache),
            env=dict(fingerprint(threads={"threads": torch.get_num_threads()}), mkldnn_packed=mkldnn_available(),
                     inductor_cpu_backend=inductor_config.cpu_backend),
            optimize_for_inference_s=build_s,
            variants=results,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2, default=str))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
