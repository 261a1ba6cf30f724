"""Memory of a model call: weight bytes, and the peak a forward needs on top of what was already held.

CUDA: the caching allocator's ``max_memory_allocated`` with its peak reset right before the measured
window (per model), so the peak covers exactly that window. CPU has no allocator statistics, so two
figures are offered: :func:`cpu_peak_memory` replays one call under ``torch.profiler`` with
``profile_memory=True`` and takes the highest running sum of its tensor allocations and frees (exact for
tensors, blind to library scratch space not taken through PyTorch's allocator), and
:class:`RssPeak` reads the kernel's resident-set high-water mark (reset through
``/proc/self/clear_refs``) around any window, which costs nothing inside it but also sees malloc's
caching (a warm forward often reuses pages it already holds, so its growth can be 0).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import LsbenchError

__all__ = ["weight_bytes", "cpu_peak_memory", "RssPeak", "CudaPeak", "rss_bytes", "PEAK_METHODS"]

PEAK_METHODS = {
    "cuda": "torch.cuda.max_memory_allocated over the window, peak reset at its start, minus the bytes "
            "allocated then (activations and workspace); absolute peak kept beside it",
    "cpu": "torch.profiler profile_memory=True over one call: highest running sum of tensor allocations "
           "and frees",
    "rss": "VmHWM after the window minus VmRSS before it, high-water mark reset via /proc/self/clear_refs",
}


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers, each storage once (tied weights are not counted twice)."""
    seen: dict[tuple[int, int], int] = {}
    for t in [*model.parameters(), *model.buffers()]:
        key = (t.untyped_storage().data_ptr(), t.device.index or 0) if t.numel() else (id(t), 0)
        seen[key] = max(seen.get(key, 0), t.untyped_storage().nbytes())
    return sum(seen.values())


def cpu_peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes of CPU tensor memory that one call of ``fn`` holds above what was held before it.

    The result of ``fn`` is dropped inside the window, as a timed loop drops it; its bytes still count
    at the moment they were allocated.
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_kineto(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    running = peak = 0
    for e in sorted(events, key=lambda e: e.start_ns()):
        running += e.nbytes()
        peak = max(peak, running)
    return int(peak)


@contextlib.contextmanager
def _quiet_kineto():
    """Kineto writes profiler start/stop lines straight to file descriptor 2: point it at /dev/null
    for the duration (Python's sys.stderr is flushed first and is the same descriptor again after)."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process (None where /proc is absent)."""
    return _status_kib("VmRSS")


class RssPeak:
    """``with RssPeak() as p: ...``; then ``p.growth`` = peak resident bytes above the start (or None).

    Resets the kernel's high-water mark on entry (``echo 5 > /proc/self/clear_refs``); where that is
    refused (old kernels, restricted /proc), ``growth`` stays None rather than reporting a stale peak.
    """

    def __init__(self) -> None:
        self.start: int | None = None
        self.peak: int | None = None
        self.growth: int | None = None

    def __enter__(self) -> "RssPeak":
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            self.start = rss_bytes()
        except OSError:
            self.start = None
        return self

    def __exit__(self, *exc) -> None:
        if self.start is not None:
            self.peak = _status_kib("VmHWM")
            if self.peak is not None:
                self.growth = max(0, self.peak - self.start)


@dataclass
class CudaPeak:
    """``with CudaPeak(device) as p: <timed window>``; then ``p.peak`` (absolute bytes allocated at the
    peak) and ``p.growth`` (peak minus the bytes allocated at the start: activations + workspace)."""

    device: Any = None
    start: int | None = None
    peak: int | None = None
    growth: int | None = None

    def __enter__(self) -> "CudaPeak":
        if not torch.cuda.is_available():
            raise LsbenchError("CUDA peak memory needs CUDA, which is not available on this machine")
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.start = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize(self.device)
        self.peak = torch.cuda.max_memory_allocated(self.device)
        self.growth = self.peak - self.start
