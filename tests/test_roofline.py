"""Roofline ceilings: measured, positive, ordered (cache above DRAM), and the bound they define."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from lsbench.errors import LsbenchError
from lsbench.report.roofline_plot import plot_roofline
from lsbench.roofline import COMPUTE, MEMORY, Ceiling, attainable, cache_size, ceilings_frame, measure_ceilings, \
    ridge_point


@pytest.fixture(scope="module")
def cpu_ceilings():
    # small sizes keep the test short; the DRAM buffer (2 x 64 MiB) still dwarfs any L2
    return measure_ceilings("cpu", threads=1, gemm_n=256, dram_bytes=64 * 2 ** 20, cache_bytes=64 * 2 ** 10,
                            repeats=3)


def test_ceilings_positive_and_ordered(cpu_ceilings):
    compute = [c for c in cpu_ceilings if c.kind == COMPUTE]
    memory = [c for c in cpu_ceilings if c.kind == MEMORY]
    assert len(compute) == 1 and [c.name.split()[0] for c in memory] == ["L2", "DRAM"]
    assert all(c.value > 0 and c.median > 0 and c.value >= c.median for c in cpu_ceilings)
    assert all(c.threads == 1 for c in cpu_ceilings)
    l2, dram = memory
    assert l2.value > dram.value  # a cache-resident copy is faster than one streaming from DRAM
    assert ridge_point(compute[0], l2) < ridge_point(compute[0], dram)


def test_attainable_is_the_min_of_the_two_roofs(cpu_ceilings):
    peak = max(c.value for c in cpu_ceilings if c.kind == COMPUTE)
    dram = min(c.value for c in cpu_ceilings if c.kind == MEMORY)
    xs = [0.01, 0.1, 1.0, 10.0, 1000.0]
    ys = attainable(xs, cpu_ceilings)
    assert ys == sorted(ys) and ys[-1] == peak
    assert attainable(0.01, cpu_ceilings) == pytest.approx(0.01 * dram)
    frame = ceilings_frame(cpu_ceilings)
    assert frame.loc[frame["kind"] == MEMORY, "ridge_flop_per_byte"].is_monotonic_increasing
    assert (frame["ridge_mac_per_byte"].dropna() * 2 == frame["ridge_flop_per_byte"].dropna()).all()


def test_hand_made_ceilings():
    gemm = Ceiling("g", COMPUTE, 100e9, 90e9, "FLOP/s", "", "cpu", 1, "fp32", 1, 1)
    bw = Ceiling("m", MEMORY, 20e9, 19e9, "B/s", "", "cpu", 1, "fp32", 1, 1)
    assert ridge_point(gemm, bw) == 5.0
    assert attainable(2.0, [gemm, bw]) == 40e9 and attainable(8.0, [gemm, bw]) == 100e9
    with pytest.raises(LsbenchError):
        ridge_point(bw, gemm)


def test_bad_device_is_a_clear_error():
    with pytest.raises(LsbenchError, match="cpu or cuda"):
        measure_ceilings("tpu")


def test_cache_size_reads_sysfs():
    size = cache_size(2)
    assert size is None or size >= 64 * 1024


def test_roofline_figure_files(tmp_path, cpu_ceilings):
    frame = pd.DataFrame([
        {"model": "m1", "part": "SKA", "kind": "SKA", "time_ms": 1.0, "share": 0.2, "macs": 10 ** 6, "bytes": 10 ** 6},
        {"model": "m1", "part": "FFN", "kind": "FFN / MLP", "time_ms": 4.0, "share": 0.8, "macs": 10 ** 8,
         "bytes": 10 ** 7},
        {"model": "m2", "part": "other", "kind": "other", "time_ms": 0.1, "share": 1.0, "macs": 0, "bytes": 0},
    ])
    paths = plot_roofline(frame, cpu_ceilings, tmp_path / "roof", title="test")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    assert "Not on the roofline" in (tmp_path / "roof.svg").read_text()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_ceilings_positive():
    ceilings = measure_ceilings("cuda", gemm_n=4096, dram_bytes=2 ** 28, repeats=3)
    compute, hbm = ceilings
    assert compute.kind == COMPUTE and hbm.kind == MEMORY
    assert compute.value > 1e12 and hbm.value > 1e11  # any datacenter GPU: > 1 TFLOP/s fp32, > 100 GB/s
