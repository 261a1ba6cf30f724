"""Weight bytes, peak memory of a call (CPU profiler accounting, RSS high-water mark, CUDA allocator) and the
NVML energy window."""
from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn

from lsbench.energy import EnergyWindow
from lsbench.memory import CudaPeak, RssPeak, cpu_peak_memory, weight_bytes


def test_weight_bytes_counts_params_buffers_and_tied_once():
    lin = nn.Linear(10, 10)  # 100 + 10 floats
    assert weight_bytes(lin) == 4 * 110
    bn = nn.BatchNorm2d(8)  # weight, bias, running mean, running var (fp32) + num_batches_tracked (int64)
    assert weight_bytes(bn) == 4 * 8 * 4 + 8
    tied = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 10, bias=False))
    tied[1].weight = tied[0].weight
    assert weight_bytes(tied) == 4 * 100


def test_cpu_peak_is_the_highest_running_total():
    def fn():
        a = torch.empty(250_000)  # 1 MB
        b = torch.empty(500_000)  # 2 MB -> 3 MB live
        del a
        c = torch.empty(250_000)  # 1 MB -> 3 MB live again
        return b, c

    assert cpu_peak_memory(fn) == 3_000_000


def test_cpu_peak_of_a_conv_is_at_least_its_output():
    conv = nn.Conv2d(8, 16, 3, padding=1).eval()
    x = torch.randn(1, 8, 64, 64)
    with torch.inference_mode():
        peak = cpu_peak_memory(lambda: conv(x))
    assert peak >= 4 * 16 * 64 * 64


def test_rss_peak_sees_touched_pages():
    import mmap

    size = 40 * 2**20
    with RssPeak() as p:
        # fresh anonymous pages, written: a heap allocation could reuse pages freed (but still resident)
        # by an earlier test, which would rightly not raise the resident peak
        region = mmap.mmap(-1, size)
        region.write(b"\1" * size)
    region.close()
    if p.start is None:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert p.growth >= 0.9 * size


def test_energy_without_nvml_is_none_not_zero():
    pytest.importorskip("pynvml")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with EnergyWindow() as e:
        pass
    assert e.energy_j is None and e.per_image(10) is None and not e.available and e.note


class _FakeNvml(types.ModuleType):
    """A stand-in NVML library with a scripted energy counter, to check the window arithmetic."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_TEMPERATURE_GPU = 1, 2, 0

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj, supported=True):
        super().__init__("pynvml")
        self.readings = list(energy_mj)
        self.supported = supported

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if not self.supported:
            raise self.NVMLError("Not Supported")
        return self.readings.pop(0)

    def nvmlDeviceGetClockInfo(self, handle, which):
        return 1980 if which == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetTemperature(self, handle, which):
        return 50

    def nvmlDeviceGetPowerUsage(self, handle):
        return 300_000


def test_energy_window_arithmetic(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml([1_000_000, 1_150_000]))  # 150 J over the window
    with EnergyWindow() as e:
        pass
    assert e.available and e.energy_j == pytest.approx(150.0)
    assert e.per_image(3000) == pytest.approx(0.05)
    assert e.power_avg_w == pytest.approx(150.0 / e.seconds)
    assert e.end["sm_clock_mhz"] == 1980 and e.start["power_w"] == 300.0
    info = e.as_dict(3000)
    assert info["j_per_img"] == pytest.approx(0.05) and info["images"] == 3000


def test_energy_window_without_the_counter(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", _FakeNvml([], supported=False))
    with EnergyWindow() as e:
        pass
    assert e.energy_j is None and e.per_image(10) is None and "no total-energy counter" in e.note
    assert e.end["sm_clock_mhz"] == 1980  # clocks are still recorded


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_counts_the_window_only():
    held = torch.empty(2 ** 20, device="cuda")  # allocated before the window: not growth
    with CudaPeak() as p:
        tmp = torch.empty(2 ** 22, device="cuda")  # 16 MiB inside
        del tmp
    assert p.growth >= 2 ** 24 and p.peak >= p.growth + held.numel() * 4


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_energy_window_real_counter():
    x = torch.randn(4096, 4096, device="cuda")
    with EnergyWindow() as e:
        for _ in range(200):
            x @ x
    if e.note and "no total-energy counter" in e.note:
        pytest.skip(e.note)
    assert e.available and e.energy_j > 0 and e.power_avg_w > 10
