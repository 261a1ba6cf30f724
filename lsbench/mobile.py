"""On-host latency of exported artifacts through the mobile runtimes (onnxruntime, ExecuTorch, LiteRT).

These numbers are the *host CPU* through the runtime a phone would use, not phone latency: they
rank models under the runtime's kernels and graph optimizations, and catch ops that fall off the
fast path (e.g. ExecuTorch ops not delegated to XNNPACK), but they do not replace on-device runs.

Every timer runs the artifact through :func:`lsbench.runtimes.open_runner` (the sessions the export
parity check uses too), feeds the seeded parity input (:func:`lsbench.runtimes.parity_input`) and
returns per-call seconds from :func:`lsbench.timing.time_cpu`. :func:`lsbench.runtimes.runtime_info`
describes how a record was taken (runtime, version, threads, options) and belongs next to every number.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

from lsbench.errors import LsbenchError
from lsbench.runtimes import (can_run, check_input_size, executorch_threads, format_of, open_runner, parity_input,
                              runtime_info)
from lsbench.timing import time_cpu

__all__ = ["time_artifact", "time_onnxruntime", "time_executorch"]


def _time(fmt: str, path: str | os.PathLike, input_size: Sequence[int], threads: int, warmup: int, repeats: int,
          warmup_s: float | None, measure_s: float | None, seed: int) -> list[float]:
    """Per-call seconds of one inference in the runtime of ``fmt``, on the seeded parity input."""
    size = check_input_size(input_size)
    x = parity_input(size, seed)
    with open_runner(fmt, path, threads, input_size=size) as (call, _):
        samples = time_cpu(lambda: call(x), warmup=warmup, repeats=repeats, warmup_s=warmup_s, measure_s=measure_s)
        pool = executorch_threads() if fmt == "pte" else None
        if pool not in (None, threads):
            raise LsbenchError(f"ExecuTorch's threadpool has {pool} threads, not the {threads} asked for")
        return samples


def time_artifact(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                  warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                  measure_s: float | None = None, seed: int = 0) -> tuple[list[float], dict[str, Any]]:
    """(per-call seconds, :func:`~lsbench.runtimes.runtime_info`) for an artifact, its runtime picked by its
    suffix. Core ML artifacts run only on Apple devices."""
    fmt = format_of(path)
    if can_run(fmt) or fmt == "coreml":
        raise LsbenchError(f"no on-host runtime times {fmt} artifacts (Core ML runs only on Apple devices)")
    info = runtime_info(fmt, threads)
    samples = _time(fmt, path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)
    if fmt == "pte":
        info["threadpool_threads"] = executorch_threads()  # read back after timing: what XNNPACK ran with
    return samples, info


def time_onnxruntime(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                     warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                     measure_s: float | None = None, seed: int = 0) -> list[float]:
    """Seconds per ``session.run`` of an ``.onnx`` model (sessions: see :mod:`lsbench.runtimes`)."""
    return _time("onnx", path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)


def time_executorch(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                    warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                    measure_s: float | None = None, seed: int = 0) -> list[float]:
    """Seconds per ``forward.execute`` of a ``.pte`` program with an XNNPACK threadpool of ``threads``."""
    return _time("pte", path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)
