"""Memory estimates before allocating (issue 10): hand-computed toy models, the lower-bound property
against the real peak, and the out-of-memory reproductions refused at once."""
import re
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from lsbench.errors import LsbenchError
from lsbench.resources import (MemoryEstimate, available_memory, cgroup_headroom, check_fits, estimate_memory,
                               gib, meminfo_available)

REPO = Path(__file__).resolve().parents[1]
F32 = 4


def test_single_conv_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    inp, out, weights = 2 * 3 * 10 * 10 * F32, 2 * 8 * 10 * 10 * F32, (8 * 3 * 3 * 3 + 8) * F32
    assert estimate_memory(conv, (2, 3, 10, 10)) == MemoryEstimate(inp, out, weights)
    # backward to the input: conv saves its input and weight (counted already) -> output + input gradient
    assert estimate_memory(conv, (2, 3, 10, 10), backward=True) == MemoryEstimate(inp, out + inp, weights)
    half = estimate_memory(conv, (2, 3, 10, 10), dtype="fp16")
    assert half == MemoryEstimate(inp // 2, out // 2, weights // 2)


def _toy(channels=64):
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))


def test_toy_network_by_hand():
    b, c, s = 4, 64, 32
    act = b * c * s * s * F32  # one 64-channel feature map
    inp = b * 3 * s * s * F32
    weights = ((c * 3 * 9 + c) + (c * c * 9 + c)) * F32
    # inference: relu and the second conv each read one feature map and write another -> 2 maps at once
    assert estimate_memory(_toy(c), (b, 3, s, s)) == MemoryEstimate(inp, 2 * act, weights)
    # backward: relu saves its output (the second conv saves the same storage), + the output, + input grad
    assert estimate_memory(_toy(c), (b, 3, s, s), backward=True) == MemoryEstimate(inp, 2 * act + inp, weights)
    # an in-place ReLU writes into its input: the inference peak is the same two maps (conv2 in + out)
    inplace = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1))
    assert estimate_memory(inplace, (b, 3, s, s)).activation_bytes == 2 * act


def test_estimate_does_not_touch_the_model():
    model = _toy(8)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    estimate_memory(model, (1, 3, 16, 16), backward=True)
    after = model.state_dict()
    assert all(t.device.type == "cpu" and torch.equal(t, before[k]) for k, t in after.items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ["lsnet_t", "repvit_m0_9", "mobilenetv3_small_100"])
def test_registry_models_weights_and_native_forward(name):
    model = zoo.create_model(name).eval()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    est = estimate_memory(model, (1, 3, 224, 224))
    assert est.weight_bytes == weights
    assert est.input_bytes == 3 * 224 * 224 * F32
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))  # the stem's first output at least
    out_side = (224 + 2 * first.padding[0] - first.kernel_size[0]) // first.stride[0] + 1
    assert est.activation_bytes >= first.out_channels * out_side ** 2 * F32


_PEAK = """
import resource, sys, torch
from torch import nn
torch.set_num_threads(1)
c, s, b, backward = 64, int(sys.argv[1]), 4, sys.argv[2] == "1"
model = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1))
x = torch.randn(b, 3, s, s, requires_grad=backward)
with torch.no_grad():
    model(torch.randn(1, 3, 8, 8))  # first-call allocations out of the way
with open("/proc/self/statm") as f:  # resident now (ru_maxrss is a high-water mark of the past)
    before = int(f.read().split()[1]) * resource.getpagesize()
if backward:
    for p in model.parameters():
        p.requires_grad_(False)
    model(x).sum().backward()
else:
    with torch.no_grad():
        model(x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(after - before)
"""


@pytest.mark.parametrize("backward", [False, True])
def test_estimate_is_a_lower_bound_of_the_real_peak(backward):
    side = 512  # 4 x 64 x 512^2 fp32 feature maps: 256 MiB each
    est = estimate_memory(_toy(), (4, 3, side, side), backward=backward)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(_PEAK), str(side), str(int(backward))],
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    grown = int(proc.stdout.split()[-1])  # peak RSS growth during the run: activations (input existed before)
    print(f"real peak growth {grown / 2**20:.1f} MiB, estimate {est.activation_bytes / 2**20:.1f} MiB")
    assert grown >= est.activation_bytes, (grown, est)
    assert grown < 4 * est.activation_bytes  # and the bound is not vacuous (seen: 1.5x inference, 2x backward)


def _rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("shape", [(1_000_000_000, 3, 224, 224), (1, 3, 100_000, 100_000)],
                         ids=["batch 1e9", "resolution 100000"])
def test_oom_repros_are_refused_at_once_without_allocating(shape):
    model = zoo.create_model("lsnet_t").eval()
    before, start = _rss(), time.perf_counter()
    with pytest.raises(LsbenchError) as info:
        check_fits(model, shape, "cpu")
    elapsed = time.perf_counter() - start
    message = str(info.value)
    assert "\n" not in message
    est = estimate_memory(model, shape)
    assert est.input_bytes == shape[0] * 3 * shape[2] * shape[3] * F32  # by hand: 560,760.5 / 111.8 GiB
    needs, free = re.fullmatch(r"(.*), this machine has ([\d,.]+) GiB available", message).groups()
    assert needs == (f"needs at least {gib(est.total)} GiB (input {gib(est.input_bytes)}, activations "
                     f"{gib(est.activation_bytes)}, weights {gib(est.weight_bytes)})")
    assert float(free.replace(",", "")) == pytest.approx(available_memory("cpu") / 2 ** 30, rel=0.1)
    assert _rss() - before < 512 * 2 ** 20  # nothing of the 100+ GiB was allocated
    assert elapsed < 30, f"a meta forward should take about a second, took {elapsed:.1f} s"


def test_erf_at_5000_pixels_is_judged_against_this_machine():
    # `lsbench erf --size 5000`: 50 images of 3 x 5000 x 5000 fp32 held (15 GB), one at a time through the model
    model = zoo.create_model("lsnet_t").eval()
    held = 50 * 3 * 5000 * 5000 * F32
    assert held == 15_000_000_000
    est = estimate_memory(model, (1, 3, 5000, 5000), backward=True, held_bytes=held)
    assert est.input_bytes == held + 3 * 5000 * 5000 * F32
    assert est.activation_bytes > 3 * 5000 * 5000 * F32  # at least the input's gradient and the output
    free = available_memory("cpu")
    if est.total > free:
        with pytest.raises(LsbenchError, match=r"^needs at least .* this machine has .* GiB available$"):
            check_fits(model, (1, 3, 5000, 5000), backward=True, held_bytes=held)
    else:
        assert check_fits(model, (1, 3, 5000, 5000), backward=True, held_bytes=held) == est
    # the whole stack through the model at once is far beyond any one machine's memory
    assert estimate_memory(model, (50, 3, 5000, 5000), backward=True).total > 50 * est.activation_bytes // 2


def test_a_run_that_fits_is_let_through():
    est = check_fits(zoo.create_model("lsnet_t").eval(), (1, 3, 224, 224), "cpu")
    assert isinstance(est, MemoryEstimate) and est.total < available_memory("cpu")


def test_a_model_that_cannot_run_on_meta_goes_ahead_unchecked():
    class DataDependent(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum().item() > 0 else x  # .item() has no meaning on the meta device

    assert check_fits(DataDependent(), (1, 3, 8, 8)) is None


def test_available_cpu_memory_is_meminfo_or_tighter():
    free = available_memory("cpu")
    meminfo = meminfo_available()
    assert meminfo is not None and 0 < free <= meminfo
    assert available_memory("onnxruntime") is not None


def test_meminfo_parsing(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text("MemTotal:       24683652 kB\nMemFree:  100 kB\nMemAvailable:   21542256 kB\n")
    assert meminfo_available(path) == 21542256 * 1024
    path.write_text("MemTotal: 1 kB\n")
    assert meminfo_available(path) is None


def test_cgroup_v2_headroom_takes_the_tightest_ancestor(tmp_path):
    root = tmp_path / "cg"
    group = root / "a" / "b"
    group.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "a" / "memory.max").write_text(f"{8 << 30}\n")
    (root / "a" / "memory.current").write_text(f"{6 << 30}\n")
    (root / "a" / "memory.stat").write_text(f"anon 1\ninactive_file {1 << 30}\n")
    (group / "memory.max").write_text("max\n")
    (group / "memory.current").write_text(f"{1 << 30}\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/a/b\n")
    assert cgroup_headroom(root, proc) == (8 << 30) - (6 << 30) + (1 << 30)  # "max" below is no limit


def test_cgroup_v1_headroom(tmp_path):
    root = tmp_path / "cg"
    mem = root / "memory"
    mem.mkdir(parents=True)
    (mem / "memory.limit_in_bytes").write_text(f"{4 << 30}\n")
    (mem / "memory.usage_in_bytes").write_text(f"{3 << 30}\n")
    (mem / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {1 << 29}\n")
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/container/id\n0::/\n")
    assert cgroup_headroom(root, proc) == (1 << 30) + (1 << 29)
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # unlimited
    assert cgroup_headroom(root, proc) is None


def test_unknown_dtype_and_device_are_user_errors():
    with pytest.raises(LsbenchError, match="unknown dtype"):
        estimate_memory(nn.Linear(2, 2), (1, 2), dtype="fp64")
    with pytest.raises(LsbenchError, match="unknown device"):
        available_memory("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(LsbenchError, match="CUDA is not available"):
            available_memory("cuda")


@pytest.mark.cuda
def test_cuda_lower_bound_against_the_caching_allocator():
    model = _toy().cuda()
    for backward in (False, True):
        est = estimate_memory(model, (4, 3, 256, 256), backward=backward)
        x = torch.randn(4, 3, 256, 256, device="cuda", requires_grad=backward)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        if backward:
            model.requires_grad_(False)
            model(x).sum().backward()
        else:
            with torch.no_grad():
                model(x)
        torch.cuda.synchronize()
        grown = torch.cuda.max_memory_allocated() - base
        assert est.activation_bytes <= grown < 3 * est.activation_bytes
    assert 0 < available_memory("cuda") <= torch.cuda.mem_get_info()[1]
