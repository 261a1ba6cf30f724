"""ERF speed: `lsbench erf`'s per-stage ERF, three implementations timed side by side on the same images.

- ``original``: the first algorithm, kept here only as the timing baseline (2.4 min for 50 images at 1024 px
  on the quiet 2-core host): per image one ``forward_features`` pass AND one ``stage_outputs`` pass, one
  backward per layer ("final" and every stage, so the last stage's map is computed twice), parameters left
  trainable (weight gradients tracked).
- ``shared``: :func:`lsbench.erf.erf_maps` with ``fuse=False``: one forward per image for every map, one
  backward per distinct map, frozen parameters.
- ``fused``: :func:`lsbench.erf.erf_maps` as ``lsbench erf`` calls it: the same passes through the deploy form
  (:func:`zoo.reparameterize`), whose cost (copy + folding, once per model) is inside the timed call.

They run in turn (original, shared, fused, original, ...) so machine drift hits all three; the report gives
each round's wall and CPU seconds, the median ratios to ``original``, the largest normalised-map difference
between the implementations, and (``--float64-images``) each one's distance from the same maps computed in
float64 on the model as built, the yardstick for float32 rounding.

    PYTHONPATH=. python benchmarks/erf_speed.py --model lsnet_b --images 6 --size 1024 --rounds 2 \\
        --out reports/erf/erf_speed.json
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import zoo
from lsbench import erf
from lsbench.env import cpu_model, fingerprint

QUIET_ORIGINAL_MIN = 2.4  # `lsbench erf lsnet_b` defaults, original algorithm, quiet 2-core host (issue 14)


def original(model, images, layers):
    """The original erf_maps, batch 1: two forwards per image, one backward per layer."""
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


def shared(model, images, layers):
    return erf.erf_maps(model, images, layers, progress=False, fuse=False)


def fused(model, images, layers):
    return erf.erf_maps(model, images, layers, progress=False)


IMPLEMENTATIONS = {"original": original, "shared": shared, "fused": fused}


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lsnet_b")
    ap.add_argument("--images", type=int, default=6)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--float64-images", type=int, default=0,
                    help="also compute the maps of the first N images in float64 (model as built) as the yardstick")
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
    wall = {k: [] for k in IMPLEMENTATIONS}
    cpu = {k: [] for k in IMPLEMENTATIONS}
    maps = {}
    load = []
    for _ in range(args.rounds):
        for name, fn in IMPLEMENTATIONS.items():
            load.append(os.getloadavg()[0])
            t0, c0 = time.perf_counter(), time.process_time()
            maps[name] = fn(model, images, layers)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    ratios = {k: [a / b for a, b in zip(wall[k], wall["original"])] for k in IMPLEMENTATIONS}
    cpu_ratios = {k: [a / b for a, b in zip(cpu[k], cpu["original"])] for k in IMPLEMENTATIONS}
    same = {k: {"max_abs_normalised_map_difference_vs_original": max_diff(maps[k], maps["original"]),
                "area_ratios_equal_to_original": all(erf.area_ratios(maps[k][layer]) ==
                                                     erf.area_ratios(maps["original"][layer]) for layer in layers)}
            for k in IMPLEMENTATIONS}
    if args.float64_images:
        few = images[:args.float64_images]
        exact = erf.erf_maps(copy.deepcopy(model).double(), few.double(), layers, progress=False, fuse=False)
        for k, fn in IMPLEMENTATIONS.items():
            same[k][f"max_abs_difference_vs_float64_first_{len(few)}_images"] = max_diff(fn(model, few, layers), exact)
    median_ratio = statistics.median(ratios["fused"])
    env = fingerprint("cpu")
    report = {
        "what": "lsbench erf per-stage ERF (final + every stage), original vs shared-forward vs deploy-form",
        "model": args.model, "weights": "random init (torch.manual_seed(0))", "images": args.images,
        "size": args.size, "image_source": "scikit-image photos (lsbench.erf.load_images, seed 0)",
        "layers": [str(x) for x in layers], "rounds": args.rounds, "batch_size": 1,
        "order": "original, shared, fused, repeated per round (interleaved)",
        "wall_seconds": wall, "cpu_seconds": cpu,
        "wall_ratio_to_original": ratios, "cpu_ratio_to_original": cpu_ratios,
        "median_wall_ratio_fused_to_original": median_ratio,
        "median_cpu_ratio_fused_to_original": statistics.median(cpu_ratios["fused"]),
        "median_wall_ratio_fused_to_shared": statistics.median(
            [a / b for a, b in zip(wall["fused"], wall["shared"])]),
        "quiet_estimate_minutes_50_images_1024": {
            "basis": f"ratio x {QUIET_ORIGINAL_MIN} min (original, quiet host, issue 14)",
            "fused": round(median_ratio * QUIET_ORIGINAL_MIN, 2),
            "shared": round(statistics.median(ratios["shared"]) * QUIET_ORIGINAL_MIN, 2)},
        "same_outputs": same,
        "load_average_1min_before_each_call": load,
        "host": cpu_model() or platform.processor() or platform.machine(), "machine": platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "device": "cpu", "dtype": "float32",
        "env": env,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(report, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
