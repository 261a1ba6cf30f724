"""Timers and the statistics reported for them.

Timers return raw per-iteration seconds so that every statistic (median, IQR, bootstrap CI)
is computed the same way regardless of device; the CPU and CUDA timers share one definition
of the warm-up and measurement windows (see lsbench.settings.ProfileSettings). The adaptive stopping rule
(:func:`stop_reason`: stop timing a model once its median is known to a relative precision) lives here too,
beside the statistics it is judged by.
"""
from __future__ import annotations

import dataclasses
import gc
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from lsbench.errors import LsbenchError

# Bootstrap resamples are processed in chunks of at most this many values, so a long
# time-based window (hundreds of thousands of samples) does not allocate n_boot * n at once.
_BOOT_CHUNK_VALUES = 4_000_000


@dataclass(frozen=True)
class TimingStats:
    """Summary of one timing run, in the unit of the samples (seconds from the timers)."""

    n: int
    median: float
    mean: float
    std: float
    min: float
    max: float
    q1: float
    q3: float
    iqr: float
    p90: float
    ci_low: float
    ci_high: float
    cv: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def scaled(self, factor: float) -> "TimingStats":
        """The same statistics in another unit (e.g. factor 1e3 for seconds -> ms).

        Only a positive linear change of unit is exact; for img/s = batch / time compute from
        the samples instead (the mean of a reciprocal is not the reciprocal of the mean).
        """
        if factor <= 0:
            raise ValueError(f"scale factor must be positive, got {factor}")
        values = self.as_dict()
        for name, value in values.items():
            if name not in ("n", "cv"):
                values[name] = value * factor
        return TimingStats(**values)


def summarize(
    samples: Sequence[float], confidence: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> TimingStats:
    """Robust summary of timing samples with a seeded bootstrap CI of the median.

    Quartiles and p90 use numpy's default ("linear") percentile interpolation; std is the
    sample standard deviation (ddof=1, 0 for a single sample); the CI is the percentile
    bootstrap of the median over `n_boot` resamples, deterministic for a given `seed`.
    """
    data = np.asarray(samples, dtype=np.float64).ravel()
    if data.size == 0:
        raise LsbenchError("cannot summarize an empty list of timing samples")
    if not np.all(np.isfinite(data)):
        raise LsbenchError("timing samples contain NaN or infinite values")
    if not 0.0 < confidence < 1.0:
        raise LsbenchError(f"confidence must be between 0 and 1, got {confidence}")
    if n_boot < 1:
        raise LsbenchError(f"n_boot must be at least 1, got {n_boot}")

    n = int(data.size)
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if n > 1 else 0.0
    q1, median, q3, p90 = (float(v) for v in np.percentile(data, [25, 50, 75, 90]))
    ci_low, ci_high = _bootstrap_median_ci(data, confidence, n_boot, seed)
    if std == 0.0:
        cv = 0.0
    elif mean != 0.0:
        cv = std / abs(mean)
    else:
        cv = math.inf
    return TimingStats(
        n=n, median=median, mean=mean, std=std, min=float(data.min()), max=float(data.max()),
        q1=q1, q3=q3, iqr=q3 - q1, p90=p90, ci_low=ci_low, ci_high=ci_high, cv=cv,
    )


def _bootstrap_median_ci(data: np.ndarray, confidence: float, n_boot: int, seed: int) -> tuple[float, float]:
    n = data.size
    if n == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    medians = np.empty(n_boot, dtype=np.float64)
    rows = max(1, _BOOT_CHUNK_VALUES // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        medians[start:stop] = np.median(data[idx], axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(medians, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


# ----------------------------------------------------------------------------------------- adaptive stopping
#: why the timing of a model stopped: its median reached the precision, it hit a cap (rounds or seconds), or
#: the settings asked for a fixed number of rounds (no precision target)
PRECISION, CAP, FIXED = "precision", "cap", "fixed"
#: the CI that the stopping rule judges, as the records name it
MEDIAN_CI_METHOD = "order statistics (binomial, distribution-free)"


@lru_cache(maxsize=512)
def _order_rank(n: int, confidence: float) -> int:
    """The largest rank k (1-based) with P(B <= k-1) <= (1-confidence)/2 for B ~ Binomial(n, 1/2); 0 when
    even k = 1 is too narrow (n too small for this confidence)."""
    if n < 1:
        return 0
    j = np.arange(1, n // 2 + 1, dtype=np.float64)
    # log pmf(0..n//2) of Binomial(n, 1/2), built from pmf(j) = pmf(j-1) * (n-j+1) / j (no overflow)
    log_pmf = np.concatenate(([-n * math.log(2.0)], -n * math.log(2.0) + np.cumsum(np.log((n - j + 1) / j))))
    cdf = np.cumsum(np.exp(log_pmf))
    alpha_half = (1.0 - confidence) / 2.0
    return int(np.count_nonzero(cdf <= alpha_half))  # cdf is increasing: the count is the largest k-1, plus 1


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median: the order statistics x(k) and x(n+1-k) of the sorted samples.

    For independent samples of any continuous distribution the number below the true median is
    Binomial(n, 1/2), so [x(k), x(n+1-k)] holds the median with probability 1 - 2 P(B <= k-1) >=
    ``confidence`` (k the largest rank that keeps it so). This is exact, not an asymptotic or resampling
    estimate, it needs no seed, and it costs one O(n) partition: cheap enough to check after every round
    (or every sample), which the bootstrap of :func:`summarize` (2000 resamples) is not. Returns
    (-inf, inf) when n is too small for any interval at ``confidence`` (n <= 5 at 95 %).
    """
    data = np.asarray(samples, dtype=np.float64).ravel()
    if data.size == 0:
        raise LsbenchError("cannot compute the CI of an empty list of timing samples")
    if not 0.0 < confidence < 1.0:
        raise LsbenchError(f"confidence must be between 0 and 1, got {confidence}")
    n = int(data.size)
    k = _order_rank(n, float(confidence))
    if k == 0:
        return -math.inf, math.inf
    part = np.partition(data, [k - 1, n - k])
    return float(part[k - 1]), float(part[n - k])


def median_half_width(samples: Sequence[float], confidence: float = 0.95) -> float:
    """Half the width of :func:`median_ci`, relative to the median (0.01 = ±1 %); inf when unbounded."""
    low, high = median_ci(samples, confidence)
    median = float(np.median(np.asarray(samples, dtype=np.float64)))
    if not math.isfinite(high - low) or median <= 0:
        return math.inf
    return (high - low) / 2.0 / median


def stop_reason(rounds: Sequence[Sequence[float]], *, precision: float | None, min_rounds: int,
                max_rounds: int, max_s: float | None = None, confidence: float = 0.95) -> str | None:
    """Why to stop timing a model after ``rounds`` (its per-round samples, seconds), or None for another round.

    What is controlled is the precision of the number that is reported: the median of the samples pooled
    over every round, its CI by :func:`median_ci` (the check runs once per round, and costs one partition).
    Before ``min_rounds`` rounds it never stops on precision, so that interleaving still spreads a slow
    episode of the machine and the between-build variation over several rounds; then :data:`PRECISION`
    once the relative half-width is at most ``precision``. :data:`CAP` at ``max_rounds`` rounds, or once the
    timed seconds (the sum of the samples) reach ``max_s``. Without ``precision`` it is the fixed rule:
    :data:`FIXED` at ``max_rounds``. The answer depends on the samples only, so a resumed sweep decides as
    the uninterrupted one would have.

    The CI treats the pooled samples as independent; rounds whose medians differ (one build placed worse
    than another) widen it only through the spread of the pooled samples, which is why rounds stay
    interleaved and ``min_rounds`` stays above one.
    """
    done = len(rounds)
    if precision is None:
        return FIXED if done >= max_rounds else None
    if done == 0:
        return None
    pooled = [s for r in rounds for s in r]
    if done >= min(min_rounds, max_rounds) and median_half_width(pooled, confidence) <= precision:
        return PRECISION
    if done >= max_rounds or (max_s is not None and sum(pooled) >= max_s):
        return CAP
    return None


def _thread_ids() -> list[int]:
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return [0]  # 0 = the calling thread


@contextmanager
def cpu_threads(
    threads: int, interop_threads: int | None = None, pin_cores: Sequence[int] | None = None
) -> Iterator[dict[str, Any]]:
    """Run a block with a fixed CPU thread count (and optionally pinned cores), then restore.

    Yields the effective settings {threads, interop_threads, affinity} for the record: the
    inter-op pool size can only be set once per process, before any inter-op work, so a
    refused request is not an error; the value actually in force is reported instead.
    Pinning applies to every existing thread of the process (Linux affinity is per thread,
    and an already started OpenMP pool would otherwise stay unpinned); threads created inside
    the block inherit the mask. The previous masks are restored on exit.
    """
    if threads < 1:
        raise LsbenchError(f"threads must be at least 1, got {threads}")
    if interop_threads is not None and interop_threads < 1:
        raise LsbenchError(f"interop_threads must be at least 1, got {interop_threads}")

    old_masks: dict[int, set[int]] = {}
    if pin_cores is not None:
        if not hasattr(os, "sched_setaffinity"):
            raise LsbenchError("pinning to CPU cores is not supported on this platform")
        cores = sorted({int(c) for c in pin_cores})
        allowed = os.sched_getaffinity(0)
        if not cores or not set(cores) <= allowed:
            raise LsbenchError(
                f"cannot pin to cores {cores}: this process may use cores {sorted(allowed)}"
            )
        for tid in _thread_ids():
            try:
                old_masks[tid] = os.sched_getaffinity(tid)
                os.sched_setaffinity(tid, cores)
            except OSError:
                continue  # the thread ended meanwhile: nothing to pin or restore

    old_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        if interop_threads is not None and interop_threads != torch.get_num_interop_threads():
            try:
                torch.set_num_interop_threads(interop_threads)
            except RuntimeError:
                pass  # already fixed for this process; the effective value is recorded below
        affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        yield {
            "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
            "affinity": affinity,
        }
    finally:
        torch.set_num_threads(old_threads)
        for tid, mask in old_masks.items():
            try:
                os.sched_setaffinity(tid, mask)
            except OSError:
                continue  # the thread ended inside the block


def _check_windows(warmup: int, repeats: int, warmup_s: float | None, measure_s: float | None) -> None:
    if repeats < 1:
        raise LsbenchError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise LsbenchError(f"warmup must not be negative, got {warmup}")
    if warmup_s is not None and warmup_s < 0:
        raise LsbenchError(f"warmup_s must not be negative, got {warmup_s}")
    if measure_s is not None and measure_s <= 0:
        raise LsbenchError(f"measure_s must be positive, got {measure_s}")


def _warm_up(step: Callable[[], None], warmup: int, warmup_s: float | None) -> None:
    """At least `warmup` calls and, when set, until `warmup_s` wall-clock seconds have passed."""
    start = time.perf_counter()
    done = 0
    while done < warmup or (warmup_s is not None and time.perf_counter() - start < warmup_s):
        step()
        done += 1


def _window_open(samples: list[float], total: float, repeats: int, measure_s: float | None) -> bool:
    return len(samples) < repeats or (measure_s is not None and total < measure_s)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Collect garbage now, then keep the collector off so that no pause lands inside one sample."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def time_cpu(
    fn: Callable[[], Any],
    *,
    warmup: int,
    repeats: int,
    warmup_s: float | None = None,
    measure_s: float | None = None,
) -> list[float]:
    """Seconds per call of `fn`, timed one call at a time with perf_counter_ns.

    Runs at least `repeats` timed calls and, when `measure_s` is set, until the timed calls add
    up to `measure_s` seconds. The garbage collector is run before and disabled during the timed
    loop so that a collection pause does not land inside one sample.
    """
    _check_windows(warmup, repeats, warmup_s, measure_s)
    _warm_up(fn, warmup, warmup_s)
    samples: list[float] = []
    total = 0.0
    with _gc_paused():
        clock = time.perf_counter_ns
        while _window_open(samples, total, repeats, measure_s):
            start = clock()
            fn()
            elapsed = (clock() - start) * 1e-9
            samples.append(elapsed)
            total += elapsed
    return samples


def time_cuda(
    fn: Callable[[], Any],
    *,
    warmup: int,
    repeats: int,
    warmup_s: float | None = None,
    measure_s: float | None = None,
    sync_each: bool = True,
) -> list[float]:
    """Seconds per call of `fn` on the current CUDA stream, measured with CUDA events.

    With `sync_each` (the LSNet/RepViT/timm protocol) the device is synchronized after every
    iteration, so each sample is one complete forward pass and no work queues up across
    iterations. Without it, iterations are queued back to back in blocks of `repeats` and
    synchronized at the end of each block (throughput with launch overlap).
    """
    if not torch.cuda.is_available():
        raise LsbenchError("CUDA is not available")
    _check_windows(warmup, repeats, warmup_s, measure_s)

    def warm_step() -> None:
        fn()
        if sync_each:
            torch.cuda.synchronize()

    _warm_up(warm_step, warmup, warmup_s)
    torch.cuda.synchronize()
    samples: list[float] = []
    total = 0.0
    with _gc_paused():
        while _window_open(samples, total, repeats, measure_s):
            block = 1 if sync_each else repeats
            events = []
            for _ in range(block):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                if sync_each:
                    end.synchronize()
                events.append((start, end))
            torch.cuda.synchronize()
            for start, end in events:
                elapsed = start.elapsed_time(end) * 1e-3  # elapsed_time is in milliseconds
                samples.append(elapsed)
                total += elapsed
    return samples
