"""The machine's roofline ceilings, measured in the same run as the models they bound.

A published peak (datasheet FLOP/s, DIMM bandwidth) says little about what one PyTorch thread on a
shared core can reach; so the ceilings are measured with the same library, dtype and thread count as the
models: a square GEMM (``torch.mm``) for compute, and ``Tensor.copy_`` for bandwidth, once on buffers far
larger than the last-level cache (DRAM) and, on the CPU, once on buffers that fit in the per-core L2.
Batch-1 activations of the small backbones mostly live in cache, so the cache ceiling is the one that
bounds them; the DRAM ceiling is the classic one.

Each ceiling is the best sample of its repeats (a ceiling is the best case: on a shared machine noise
only slows a sample down); the median is kept beside it. Bandwidth counts a copy as read + write of the
buffer (the STREAM "copy" convention; write-allocate traffic is not added).
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from .errors import LsbenchError
from .settings import torch_dtype
from .timing import cpu_threads

__all__ = ["Ceiling", "measure_ceilings", "best_of", "attainable", "ridge_point", "ceilings_frame", "cache_size",
           "COMPUTE", "MEMORY"]

COMPUTE, MEMORY = "compute", "memory"


@dataclass(frozen=True)
class Ceiling:
    """One measured ceiling: ``value`` in FLOP/s (compute) or bytes/s (memory), best of ``repeats``."""

    name: str
    kind: str
    value: float
    median: float
    unit: str
    method: str
    device: str
    threads: int | None
    dtype: str
    size: int
    repeats: int

    def as_dict(self) -> dict:
        return asdict(self)


def cache_size(level: int = 2) -> int | None:
    """Bytes of the CPU's cache at ``level`` (per core for L1/L2) from sysfs, None where not exposed."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")):
        try:
            if int((index / "level").read_text()) != level or (index / "type").read_text().strip() == "Instruction":
                continue
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
        try:
            return int(text.rstrip("KMG")) * scale
        except ValueError:
            return None
    return None


def _clock(device: str):
    """(start, stop) -> seconds between them, on the device's own timeline."""
    if device == "cuda":
        def run(fn, calls: int) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) * 1e-3 / calls
        return run

    def run(fn, calls: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        return (time.perf_counter_ns() - start) * 1e-9 / calls
    return run


def _best(fn, device: str, repeats: int, calls: int) -> tuple[float, float]:
    """(fastest, median) seconds per call of ``fn`` over ``repeats`` samples of ``calls`` calls, after one warm-up."""
    run = _clock(device)
    run(fn, calls)
    samples = sorted(run(fn, calls) for _ in range(repeats))
    return samples[0], samples[len(samples) // 2]


def _gemm(n: int, device: str, dtype: str, repeats: int) -> Ceiling:
    gen = torch.Generator(device="cpu").manual_seed(0)
    dt = torch_dtype(dtype)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dt)
    c = torch.empty(n, n, device=device, dtype=dt)
    flops = 2 * n ** 3
    calls = 1 if device == "cpu" else 10
    fastest, median = _best(lambda: torch.mm(a, b, out=c), device, repeats, calls)
    return Ceiling(f"GEMM {dtype} n={n}", COMPUTE, flops / fastest, flops / median, "FLOP/s",
                   f"torch.mm of two {n}x{n} {dtype} matrices, 2*n^3 FLOP", device, None, dtype, n, repeats)


def _copy(nbytes: int, device: str, repeats: int, label: str) -> Ceiling:
    n = max(1, nbytes // 4)
    src = torch.ones(n, device=device)
    dst = torch.empty_like(src)
    moved = 2 * n * 4
    calls = max(1, int(2 ** 24 // moved))  # small buffers: time a loop so one sample is not timer noise
    fastest, median = _best(lambda: dst.copy_(src), device, repeats, calls)
    return Ceiling(f"{label} copy {_human(n * 4)}", MEMORY, moved / fastest, moved / median, "B/s",
                   f"Tensor.copy_ of {_human(n * 4)} fp32, read + write counted", device, None, "fp32", n * 4,
                   repeats)


def _human(nbytes: int) -> str:
    for unit, scale in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if nbytes >= scale:
            return f"{nbytes / scale:g} {unit}"
    return f"{nbytes} B"


def measure_ceilings(device: str = "cpu", threads: int = 1, dtype: str = "fp32", *, gemm_n: int | None = None,
                     dram_bytes: int | None = None, cache_bytes: int | None = None,
                     repeats: int = 15) -> list[Ceiling]:
    """Compute and bandwidth ceilings of ``device`` at ``threads`` CPU threads, compute first, then memory
    ceilings from the fastest (cache) to DRAM.

    Defaults: CPU GEMM n=1024, DRAM copy of 256 MiB (8x a 32 MiB L3), L2 copy of 2 x L2/4; CUDA GEMM
    n=8192, copy of 1 GiB. The CPU ceilings are taken under :func:`lsbench.timing.cpu_threads`.
    """
    if device not in ("cpu", "cuda"):
        raise LsbenchError(f"roofline ceilings are measured on cpu or cuda, not {device!r}")
    torch_dtype(dtype)  # a one-line error for an unknown name, before anything is measured
    if device == "cuda" and not torch.cuda.is_available():
        raise LsbenchError("device cuda requested but CUDA is not available on this machine")
    if repeats < 1:
        raise LsbenchError(f"repeats must be at least 1, got {repeats}")
    if device == "cuda":
        n = gemm_n or 8192
        out = [_gemm(n, "cuda", dtype, repeats), _copy(dram_bytes or 2 ** 30, "cuda", repeats, "HBM")]
        torch.cuda.empty_cache()
        return [Ceiling(**{**c.as_dict(), "threads": None}) for c in out]
    with cpu_threads(threads) as effective:
        l2 = cache_size(2) or 2 ** 20
        out = [_gemm(gemm_n or 1024, "cpu", dtype, repeats),
               _copy(cache_bytes or l2 // 4, "cpu", repeats, "L2"),
               _copy(dram_bytes or 2 ** 28, "cpu", repeats, "DRAM")]
    return [Ceiling(**{**c.as_dict(), "threads": effective["threads"]}) for c in out]


def best_of(*runs: Sequence[Ceiling]) -> list[Ceiling]:
    """Per ceiling name, the run that reached the highest value (e.g. measured before and after the models:
    interference only lowers a ceiling), in the order of the first run."""
    best: dict[str, Ceiling] = {}
    for run in runs:
        for c in run:
            if c.name not in best or c.value > best[c.name].value:
                best[c.name] = c
    return list(best.values())


def attainable(intensity: float | Sequence[float], ceilings: Iterable[Ceiling],
               memory: str | None = None) -> float | list[float]:
    """Roofline bound in FLOP/s at ``intensity`` FLOP/byte: min(compute peak, bandwidth x intensity).

    ``memory`` names the bandwidth ceiling to use (default: the slowest one, DRAM)."""
    ceilings = list(ceilings)
    compute = max(c.value for c in ceilings if c.kind == COMPUTE)
    mems = [c for c in ceilings if c.kind == MEMORY and (memory is None or c.name == memory)]
    if not mems:
        raise LsbenchError(f"no memory ceiling named {memory!r}")
    bw = min(c.value for c in mems)
    if isinstance(intensity, (int, float)):
        return min(compute, bw * float(intensity))
    return [min(compute, bw * float(i)) for i in intensity]


def ridge_point(compute: Ceiling, memory: Ceiling) -> float:
    """Intensity (FLOP/byte) where ``memory``'s slope meets ``compute``: below it a kernel is memory-bound."""
    if compute.kind != COMPUTE or memory.kind != MEMORY:
        raise LsbenchError("ridge_point takes a compute ceiling and a memory ceiling")
    return compute.value / memory.value


def ceilings_frame(ceilings: Iterable[Ceiling]) -> pd.DataFrame:
    """One row per ceiling: name, kind, best and median in G-units (GFLOP/s or GB/s), how it was taken, and
    for memory ceilings the ridge point against the compute ceiling (FLOP/byte and MAC/byte)."""
    ceilings = list(ceilings)
    compute = [c for c in ceilings if c.kind == COMPUTE]
    rows = []
    for c in ceilings:
        ridge = ridge_point(compute[0], c) if compute and c.kind == MEMORY else math.nan
        rows.append({"ceiling": c.name, "kind": c.kind, "best_g": c.value / 1e9, "median_g": c.median / 1e9,
                     "unit": "GFLOP/s" if c.kind == COMPUTE else "GB/s", "ridge_flop_per_byte": ridge,
                     "ridge_mac_per_byte": ridge / 2, "device": c.device, "threads": c.threads, "dtype": c.dtype,
                     "repeats": c.repeats, "method": c.method})
    return pd.DataFrame(rows)
