"""Cost anatomy: part labels, per-part MACs/bytes/intensity against hand-computed values, the time split of a
model with a known 1:3 cost ratio, and the parts' sum against the latency measured the normal way."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from lsbench.anatomy import (SUM_TOLERANCE, boundary_labels, by_part, by_stage, bytes_by_label, classify_parts,
                             dissect, fast_mean, macs_by_label, op_bytes, part_kind)

F32 = 4


def _single(module: nn.Module, x: torch.Tensor):
    labels = {"": ("s", "only")}
    b = boundary_labels(module, labels)
    macs, total = macs_by_label(module, x, b)
    moved = bytes_by_label(module, x, b)
    return macs[("s", "only")], total, moved[("s", "only")]


@pytest.mark.parametrize("module, shape, macs, nbytes", [
    # Conv2d 3->8, 3x3, pad 1, bias, on 1x3x16x16: out 8x16x16, each output 3*9 MACs;
    # bytes: input 3*256 + weight 8*3*9 + bias 8 + output 8*256
    (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16), 8 * 256 * 27, F32 * (3 * 256 + 216 + 8 + 8 * 256)),
    # Linear 64->32 with bias on 4x64: 4*64*32 MACs; bytes: x 256 + W 2048 + b 32 + y 128
    (nn.Linear(64, 32), (4, 64), 4 * 64 * 32, F32 * (256 + 2048 + 32 + 128)),
    # depthwise 3x3 on 16 channels of 8x8 (groups=16, bias): 16*64*9 MACs; x 1024 + W 144 + b 16 + y 1024
    (nn.Conv2d(16, 16, 3, padding=1, groups=16), (1, 16, 8, 8), 16 * 64 * 9, F32 * (1024 + 144 + 16 + 1024)),
], ids=["conv", "linear", "depthwise"])
def test_single_op_macs_bytes_intensity(module, shape, macs, nbytes):
    module.eval()
    x = torch.randn(shape)
    got_macs, total, got_bytes = _single(module, x)
    assert got_macs == total == macs
    assert got_bytes == nbytes
    d = dissect(module, x, "toy", labels={"": ("s", "only")}, warmup=1, repeats=3, rounds=1)
    row = d.frame.iloc[0]
    assert row["macs"] == macs and row["bytes"] == nbytes
    assert row["intensity_mac_per_byte"] == pytest.approx(macs / nbytes)
    assert row["gflop_s"] == pytest.approx(2 * macs / (row["time_ms"] / 1e3) / 1e9)
    assert row["gb_s"] == pytest.approx(nbytes / (row["time_ms"] / 1e3) / 1e9)


def test_op_bytes_counts_broadcast_once_and_views_not_at_all():
    seen = []

    class Record(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            seen.append((func._overloadpacket.__name__, op_bytes(func, args, kwargs or {}, out)))
            return out

    x, b = torch.randn(1, 8, 4, 4), torch.randn(8, 1, 1)
    with Record():
        x + b  # reads 128 + 8, writes 128 elements
        x.view(8, 16)  # a view moves nothing
        x.add_(1.0)  # in place: reads and writes x
    assert seen == [("add", F32 * (128 + 8 + 128)), ("view", 0), ("add_", F32 * (128 + 128))]


class _Chain(nn.Module):
    """``k`` chained 384x384 matmuls (no bias): each one the same kernel on the same shapes."""

    def __init__(self, k: int, n: int = 384) -> None:
        super().__init__()
        self.k = k
        self.w = nn.Parameter(torch.randn(n, n) / n ** 0.5)

    def forward(self, x):
        for _ in range(self.k):
            x = x @ self.w
        return x


class _Split(nn.Module):
    """Part A: one matmul; part B: three of the same. A known 1:3 cost in MACs, bytes and time."""

    def __init__(self) -> None:
        super().__init__()
        self.a = _Chain(1)
        self.b = _Chain(3)

    def forward(self, x):
        return self.b(self.a(x))


SPLIT_LABELS = {"": ("s", "root"), "a": ("s", "A"), "b": ("s", "B")}


def test_known_one_to_three_split():
    torch.manual_seed(0)
    d = dissect(_Split().eval(), torch.randn(384, 384), "split", labels=SPLIT_LABELS, warmup=3, repeats=6,
                rounds=8)
    rows = d.frame.set_index("part")
    assert rows.loc["B", "macs"] == 3 * rows.loc["A", "macs"] == 3 * 384 ** 3
    assert rows.loc["B", "bytes"] == 3 * rows.loc["A", "bytes"] == 3 * F32 * 3 * 384 ** 2  # x, w read; y written
    assert rows.loc["A", "share"] == pytest.approx(0.25, abs=0.05)
    assert rows.loc["B", "time_ms"] / rows.loc["A", "time_ms"] == pytest.approx(3.0, rel=0.2)


def test_parts_sum_matches_total():
    torch.manual_seed(0)
    d = dissect(_Split().eval(), torch.randn(384, 384), "split", labels=SPLIT_LABELS, warmup=3, repeats=6,
                rounds=8)
    t = d.totals
    assert d.frame["time_ms"].sum() == pytest.approx(t["parts_sum_ms"])
    assert d.frame["share"].sum() == pytest.approx(1.0)
    # the parts partition each hooked forward: their sum is the kept calls' mean total
    kept = d.times.kept()
    assert t["parts_sum_ms"] == pytest.approx(1e3 * sum(sum(c.values()) for c in kept) / len(kept))
    assert t["parts_sum_ms"] == pytest.approx(t["hooked_ms"], rel=0.02)
    assert abs(t["sum_over_latency"] - 1) <= SUM_TOLERANCE and t["within_tolerance"]
    assert t["macs_parts"] == t["macs_total"]


def test_fast_mean_is_the_mean_of_the_fastest_quarter():
    assert fast_mean([4.0, 1.0, 3.0, 2.0, 9.0, 8.0, 7.0, 6.0]) == pytest.approx(1.5)
    assert fast_mean([5.0]) == 5.0


def test_lsnet_parts_use_the_paper_vocabulary():
    built = zoo.create_model("lsnet_t").eval()
    labels = classify_parts(built)
    parts = {p for _, p in labels.values()}
    assert parts == {"stem", "downsample", "RepVGGDW", "SE", "LKP", "SKA", "LSConv BN+residual", "Attention",
                     "FFN", "head", "other", "block own ops"}
    # blocks3: the Conv-BN pair that opens the stage (0, 1), then blocks alternating RepVGGDW+SE / LSConv
    assert labels["blocks3.0"] == labels["blocks3.1.c"] == ("stage3", "downsample")
    assert labels["blocks3.2.mixer.conv1.c"] == ("stage3", "RepVGGDW")
    assert labels["blocks3.2.se.fc1"] == ("stage3", "SE")
    assert labels["blocks3.2.ffn"] == ("stage3", "FFN")  # the residual add around the FFN
    assert labels["blocks3.3.mixer.ska"] == ("stage3", "SKA")
    assert labels["blocks3.3.mixer.lkp.cv2.c"] == ("stage3", "LKP")
    assert labels["blocks3.3.mixer.bn"] == ("stage3", "LSConv BN+residual")
    assert labels["blocks4.3.mixer"] == ("stage4", "Attention")  # the residual add around attention
    assert labels["patch_embed.2.c"] == ("stem", "stem") and labels["head.l"] == ("head", "head")
    assert part_kind("RepVGGDW") == part_kind("RepVggDw") == part_kind("dw conv 3x3") == "depthwise mixer"


def test_lsnet_ska_bytes_and_macs_by_hand_and_partition():
    # LSNet-T at 224: SKA once in stage 2 (128 ch, 14x14) and four times in stage 3 (256 ch, 7x7).
    # Each reads x (C*HW) and the kernels (C/8 * 9 * HW), writes C*HW; 9 MACs per output element.
    built = zoo.create_model("lsnet_t").eval()
    fused = zoo.reparameterize(built)
    b = boundary_labels(fused, classify_parts(built))
    x = torch.randn(1, 3, 224, 224)
    macs, total = macs_by_label(fused, x, b)
    moved = bytes_by_label(fused, x, b)
    elems = lambda c, hw: 2 * c * hw + c // 8 * 9 * hw  # noqa: E731
    assert moved[("stage2", "SKA")] == F32 * elems(128, 196)
    assert moved[("stage3", "SKA")] == F32 * 4 * elems(256, 49)
    assert macs[("stage2", "SKA")] == 9 * 128 * 196 and macs[("stage3", "SKA")] == 4 * 9 * 256 * 49
    assert macs[("stage3", "SKA")] / moved[("stage3", "SKA")] == pytest.approx(9 / (F32 * (2 + 9 / 8)))
    assert sum(macs.values()) == total


def test_baselines_get_module_types_per_stage():
    labels = classify_parts(zoo.create_model("repvit_m0_9").eval())
    parts = {p for _, p in labels.values()}
    assert {"stem", "RepVggDw", "SE", "RepVitMlp", "downsample", "head"} <= parts
    assert {s for s, _ in labels.values()} == {"stem", "stage1", "stage2", "stage3", "stage4", "head"}
    labels = classify_parts(zoo.create_model("efficientvit_m4").eval())
    assert labels["stages.0.blocks.0.mixer"] == ("stage1", "LocalWindowAttention")
    assert labels["stages.0.blocks.0.dw0"] == ("stage1", "dw conv 3x3")
    assert labels["stages.1.downsample.patchmerge.conv1"] == ("stage2", "downsample")


def test_aggregations_recompute_intensity():
    torch.manual_seed(0)
    d = dissect(_Split().eval(), torch.randn(64, 384), "split",
                labels={"": ("s1", "root"), "a": ("s1", "A"), "b": ("s2", "A")}, warmup=1, repeats=3, rounds=1)
    part = by_part(d.frame).set_index("part").loc["A"]
    assert part["macs"] == 4 * 64 * 384 * 384  # four 64x384 @ 384x384 matmuls
    assert part["intensity_mac_per_byte"] == pytest.approx(part["macs"] / part["bytes"])
    assert list(by_stage(d.frame)["stage"]) == ["s1", "s2"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_parts_sum_matches_total():
    torch.manual_seed(0)
    model = _Split().cuda().eval()
    d = dissect(model, torch.randn(2048, 384, device="cuda"), "split", labels=SPLIT_LABELS, device="cuda",
                warmup=5, repeats=20, rounds=4)
    rows = d.frame.set_index("part")
    assert rows.loc["A", "share"] == pytest.approx(0.25, abs=0.05)
    assert abs(d.totals["sum_over_latency"] - 1) <= SUM_TOLERANCE
    assert d.totals["peak_bytes"] > 0
