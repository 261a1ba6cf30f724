"""ERF speed: the per-stage ERF of ``lsbench erf`` before and after the shared-forward rewrite, timed side by side.

``before`` is the previous algorithm, kept here only as the timing baseline: per batch one
``forward_features`` pass AND one ``stage_outputs`` pass, then one backward per layer ("final" and every
stage, so the last stage's map is computed twice), parameters left trainable (weight gradients tracked).
``after`` is :func:`lsbench.erf.erf_maps`: one forward, one backward per distinct map, frozen parameters.
The two run alternately (ABAB...) on the same images so machine drift hits both; the report gives each
round's wall and CPU times,
the median ratios, and the largest map difference.

    PYTHONPATH=. python benchmarks/erf_speed.py --model lsnet_b --images 3 --size 1024 --rounds 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

import zoo
from lsbench import erf


def before(model, images, layers):
    """The previous erf_maps, batch 1: two forwards per image, one backward per layer."""
    model.eval()
    sums = {layer: torch.zeros(images.shape[-2:], dtype=torch.float64) for layer in layers}
    stages = [layer for layer in layers if layer != "final"]
    with torch.enable_grad():
        for img in images:
            x = img[None].detach().requires_grad_(True)
            feats = {"final": model.forward_features(x)}
            outs = erf.stage_outputs(model, x)
            feats.update({i: outs[i] for i in stages})
            for k, layer in enumerate(layers):
                f = feats[layer]
                h, w = f.shape[-2:]
                (grad,) = torch.autograd.grad(F.relu(f[:, :, h // 2, w // 2]).sum(), x,
                                              retain_graph=k < len(layers) - 1)
                sums[layer] += F.relu(grad).sum(1)[0].double()
    return {layer: erf.normalize_map((sums[layer] / len(images)).numpy()) for layer in layers}


def after(model, images, layers):
    return erf.erf_maps(model, images, layers, progress=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lsnet_b")
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the JSON report here too")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = zoo.create_model(args.model).eval()
    images = erf.load_images(num_images=args.images, size=args.size, seed=0)
    with torch.no_grad():
        n_stages = len(erf.stage_outputs(model, images[:1]))
    layers = ["final", *range(n_stages)]
    times = {"before": [], "after": []}
    cpu = {"before": [], "after": []}
    maps = {}
    for _ in range(args.rounds):
        for name, fn in (("before", before), ("after", after)):
            t0, c0 = time.perf_counter(), time.process_time()
            maps[name] = fn(model, images, layers)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    diff = max(float(np.abs(maps["before"][k] - maps["after"][k]).max()) for k in layers)
    ratios = [a / b for a, b in zip(times["after"], times["before"])]
    cpu_ratios = [a / b for a, b in zip(cpu["after"], cpu["before"])]
    report = {
        "model": args.model, "images": args.images, "size": args.size, "layers": [str(x) for x in layers],
        "rounds": args.rounds, "order": "before, after alternating", "seconds": times,
        "ratio_after_over_before": ratios, "median_ratio": statistics.median(ratios),
        # CPU seconds of this process: far less sensitive than wall time to other jobs on shared cores
        "cpu_seconds": cpu, "cpu_ratio_after_over_before": cpu_ratios,
        "median_cpu_ratio": statistics.median(cpu_ratios),
        "load_average": list(os.getloadavg()),
        "max_abs_map_difference": diff, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(), "device": "cpu",
        "projected_50_images_after_cpu_s": statistics.median(cpu["after"]) / args.images * 50,
        "projected_50_images_before_cpu_s": statistics.median(cpu["before"]) / args.images * 50,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
