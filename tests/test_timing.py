import math
import os
import time

import numpy as np
import pytest
import torch

from lsbench.errors import LsbenchError
from lsbench.timing import TimingStats, cpu_threads, summarize, time_cpu, time_cuda


def test_summarize_known_sample_by_hand():
    s = summarize([4, 1, 100, 3, 2])
    # sorted: 1 2 3 4 100; linear percentiles sit at positions p/100 * (n - 1).
    assert s.n == 5
    assert s.median == 3
    assert s.q1 == 2 and s.q3 == 4 and s.iqr == 2
    assert s.p90 == pytest.approx(61.6)  # position 3.6: 4 + 0.6 * (100 - 4)
    assert s.mean == 22
    # sample std: squared deviations 441 + 400 + 361 + 324 + 6084 = 7610, / (n - 1) = 1902.5
    assert s.std == pytest.approx(math.sqrt(1902.5))
    assert s.cv == pytest.approx(math.sqrt(1902.5) / 22)
    assert (s.min, s.max) == (1, 100)
    assert s.ci_low <= 3 <= s.ci_high
    assert 1 <= s.ci_low and s.ci_high <= 100


def test_summarize_single_and_constant_samples():
    one = summarize([0.25])
    assert (one.n, one.median, one.std, one.iqr, one.ci_low, one.ci_high, one.cv) == (1, 0.25, 0, 0, 0.25, 0.25, 0)
    flat = summarize([2.0] * 10)
    assert (flat.ci_low, flat.ci_high, flat.std, flat.cv) == (2.0, 2.0, 0.0, 0.0)


def test_summarize_rejects_empty_and_non_finite():
    with pytest.raises(LsbenchError, match="empty"):
        summarize([])
    with pytest.raises(LsbenchError, match="NaN"):
        summarize([1.0, float("nan")])
    with pytest.raises(LsbenchError, match="confidence"):
        summarize([1.0], confidence=1.0)


def test_bootstrap_ci_is_seeded_and_narrows_with_more_samples():
    rng = np.random.default_rng(42)
    small = rng.normal(10.0, 1.0, size=20)
    large = rng.normal(10.0, 1.0, size=2000)
    assert summarize(small, seed=7) == summarize(small, seed=7)
    # With few samples the bootstrap medians take few distinct values; with many, seeds differ.
    assert summarize(large, seed=7).ci_low != summarize(large, seed=8).ci_low
    s_small, s_large = summarize(small), summarize(large)
    for s in (s_small, s_large):
        assert s.ci_low <= s.median <= s.ci_high
    assert (s_large.ci_high - s_large.ci_low) < (s_small.ci_high - s_small.ci_low) / 3
    # Standard error of the median of N(10, 1) at n=2000 is ~0.028: the 95% CI must cover 10.
    assert s_large.ci_low < 10.0 < s_large.ci_high
    wide, narrow = summarize(small, confidence=0.99), summarize(small, confidence=0.5)
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low


def test_scaled_converts_units_linearly():
    s = summarize([0.001, 0.002, 0.003]).scaled(1e3)
    assert isinstance(s, TimingStats)
    assert (s.n, s.median, s.min, s.max) == (3, pytest.approx(2.0), pytest.approx(1.0), pytest.approx(3.0))
    assert s.cv == pytest.approx(summarize([1.0, 2.0, 3.0]).cv)


def test_cpu_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with cpu_threads(target, interop_threads=1) as effective:
        assert torch.get_num_threads() == target
        assert effective["threads"] == target
        # May or may not be settable in this process; the reported value is the one in force.
        assert effective["interop_threads"] == torch.get_num_interop_threads()
    assert torch.get_num_threads() == before

    with pytest.raises(RuntimeError, match="boom"):
        with cpu_threads(target):
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_cpu_threads_pins_and_restores_affinity():
    before = os.sched_getaffinity(0)
    core = min(before)
    with cpu_threads(1, pin_cores=[core]) as effective:
        assert os.sched_getaffinity(0) == {core}
        assert effective["affinity"] == [core]
    assert os.sched_getaffinity(0) == before
    threads_before = torch.get_num_threads()
    with pytest.raises(LsbenchError, match="cannot pin"):
        with cpu_threads(1, pin_cores=[max(before) + 1000]):
            pass
    assert os.sched_getaffinity(0) == before and torch.get_num_threads() == threads_before


def test_time_cpu_counts_calls_and_returns_positive_samples():
    calls = []
    a = torch.randn(64, 64)
    samples = time_cpu(lambda: calls.append(a @ a), warmup=3, repeats=15)
    assert len(samples) == 15
    assert len(calls) == 18  # warm-up calls are run but not returned
    assert all(s > 0 for s in samples)


def test_time_cpu_honours_measure_window():
    samples = time_cpu(lambda: time.sleep(0.002), warmup=0, repeats=2, measure_s=0.05)
    assert len(samples) > 2
    assert sum(samples) >= 0.05


def test_time_cpu_honours_warmup_window():
    calls = []
    start = time.perf_counter()
    time_cpu(lambda: calls.append(time.sleep(0.002)), warmup=0, warmup_s=0.03, repeats=1)
    assert time.perf_counter() - start >= 0.03
    assert len(calls) >= 2


def test_time_cpu_measures_seconds():
    # A units check, not a speed target: sleep(0.01) lasts at least 10 ms.
    samples = time_cpu(lambda: time.sleep(0.01), warmup=1, repeats=5)
    assert 0.0099 <= summarize(samples).median < 0.05


def test_time_cpu_leaves_gc_enabled_and_rejects_bad_windows():
    import gc

    assert gc.isenabled()
    time_cpu(lambda: None, warmup=0, repeats=3)
    assert gc.isenabled()
    with pytest.raises(LsbenchError, match="repeats"):
        time_cpu(lambda: None, warmup=0, repeats=0)
    with pytest.raises(LsbenchError, match="warmup"):
        time_cpu(lambda: None, warmup=-1, repeats=1)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_time_cuda_refuses_without_cuda():
    with pytest.raises(LsbenchError, match="CUDA is not available"):
        time_cuda(lambda: None, warmup=0, repeats=1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("sync_each", [True, False])
def test_time_cuda_returns_positive_samples(sync_each):
    a = torch.randn(1024, 1024, device="cuda")
    samples = time_cuda(lambda: a @ a, warmup=3, repeats=20, sync_each=sync_each)
    assert len(samples) == 20
    assert all(s > 0 for s in samples)
    windowed = time_cuda(lambda: a @ a, warmup=0, warmup_s=0.05, repeats=5, measure_s=0.05, sync_each=sync_each)
    assert len(windowed) >= 5 and sum(windowed) >= 0.05
    # A 1024^3 matmul is ~2 GFLOP: far above 1 us and far below 1 s on any CUDA GPU.
    assert 1e-6 < summarize(samples).median < 1.0
