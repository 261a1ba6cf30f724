"""Params and FLOPs through fvcore, ptflops and torch.utils.flop_counter, against hand-computed counts.

Expected values are worked out by hand from each counter's stated convention (fvcore: one multiply-add
per flop, BN 2*numel in eval with affine, GroupNorm 5*numel; ptflops: MACs plus bias/norm/activation
terms; torch: 2 flops per MAC, matmul/conv only) and from the published figures of the models.
"""
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsbench.counting import (COUNTERS, FlopCount, count_flops, count_params, flops_frame, module_breakdown,
                              param_counts)
from lsbench.errors import LsbenchError
from zoo.ska import SKA, ska

from custom_ops import Twice  # noqa: E402  (tests/custom_ops.py: an op no counter knows)


def macs(model, input_size, **kw) -> dict[str, int]:
    return {c.counter: c.total for c in count_flops(model, input_size, **kw)}


def by_counter(model, input_size, **kw) -> dict[str, FlopCount]:
    return {c.counter: c for c in count_flops(model, input_size, **kw)}


# ------------------------------------------------------------------------------------- single layers

def test_conv2d():
    conv = nn.Conv2d(3, 8, 3, stride=1, padding=1)
    m = macs(conv, (1, 3, 16, 16))
    assert m["fvcore"] == m["torch"] == 8 * 3 * 9 * 16 * 16 == 55296
    assert m["ptflops"] == 55296 + 8 * 16 * 16  # ptflops adds the bias, once per output element


def test_torch_counter_raw_unit_is_two_flops_per_mac():
    c = by_counter(nn.Conv2d(3, 8, 3, padding=1), (1, 3, 16, 16), counters=["torch"])["torch"]
    assert c.raw == 2 * 55296 and c.total == 55296 and c.gmacs == pytest.approx(55296e-9)


def test_depthwise_conv():
    dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    assert set(macs(dw, (1, 16, 16, 16)).values()) == {16 * 9 * 16 * 16}


def test_linear():
    m = macs(nn.Linear(64, 10), (2, 64))
    assert m["fvcore"] == m["torch"] == 2 * 64 * 10
    assert m["ptflops"] == 2 * 64 * 10 + 2 * 10


def test_batchnorm_eval():
    # fvcore batchnorm_flop_jit, eval with affine: numel * 2; ptflops bn hook: numel * 2 (affine);
    # torch's flop counter does not count norms.
    m = macs(nn.BatchNorm2d(8), (1, 8, 16, 16))
    numel = 8 * 16 * 16
    assert m == {"fvcore": 2 * numel, "ptflops": 2 * numel, "torch": 0}


def test_groupnorm():
    # fvcore norm_flop_counter: 5 * numel with affine; ptflops maps GroupNorm to its bn hook: 2 * numel.
    m = macs(nn.GroupNorm(2, 8), (1, 8, 16, 16))
    numel = 8 * 16 * 16
    assert m == {"fvcore": 5 * numel, "ptflops": 2 * numel, "torch": 0}


SKA_X, SKA_W = (2, 16, 5, 6), (2, 2, 9, 5, 6)
SKA_MACS = 9 * 2 * 16 * 5 * 6  # 8640


def test_ska_module_counted_by_all_three():
    assert macs(SKA(), (SKA_X, SKA_W)) == {"fvcore": SKA_MACS, "ptflops": SKA_MACS, "torch": SKA_MACS}


class FunctionalSKA(nn.Module):
    def forward(self, x, w):
        return ska(x, w)


def test_functional_ska_counted_by_all_three():
    counts = by_counter(FunctionalSKA(), (SKA_X, SKA_W))
    assert {k: c.total for k, c in counts.items()} == {"fvcore": SKA_MACS, "ptflops": SKA_MACS, "torch": SKA_MACS}
    assert all(c.by_op == {"zoo::ska": SKA_MACS} and not c.unsupported for c in counts.values())


def test_ska_scales_with_batch_in_every_counter():
    one = macs(SKA(), ((1, 16, 5, 6), (1, 2, 9, 5, 6)))
    assert one == {k: SKA_MACS // 2 for k in COUNTERS}


class Attention(nn.Module):
    """q = k = v = x of shape (B, heads, N, d): attn = softmax(q k^T), out = attn v."""

    def __init__(self, use_torch_matmul: bool = False):
        super().__init__()
        self.use_torch_matmul = use_torch_matmul

    def mm(self, a, b):
        return torch.matmul(a, b) if self.use_torch_matmul else a @ b

    def forward(self, x):
        attn = self.mm(x, x.transpose(-2, -1)).softmax(dim=-1)
        return self.mm(attn, x)


ATTN_SHAPE = (1, 2, 10, 8)
ATTN_MACS = 1 * 2 * 10 * 10 * 8 + 1 * 2 * 10 * 8 * 10  # q k^T: (10x8)(8x10) per head; attn v: (10x10)(10x8)


def test_attention_matmuls():
    counts = by_counter(Attention(), ATTN_SHAPE)
    assert counts["fvcore"].total == counts["torch"].total == ATTN_MACS == 3200
    assert counts["fvcore"].unsupported == {"aten::softmax": 1}
    # ptflops does not see `a @ b` nor Tensor.softmax outside a hooked module: zero, but listed.
    assert counts["ptflops"].total == 0
    assert counts["ptflops"].unsupported == {"matmul()": 2, "softmax()": 1}


def test_attention_torch_matmul_is_seen_by_ptflops():
    c = by_counter(Attention(use_torch_matmul=True), ATTN_SHAPE, counters=["ptflops"])["ptflops"]
    assert c.total == ATTN_MACS and c.by_op == {"matmul": ATTN_MACS}
    assert c.unsupported == {"softmax()": 1}


class SDPA(nn.Module):
    def forward(self, x):
        return F.scaled_dot_product_attention(x, x, x)


def test_sdpa_unsupported_by_fvcore_and_ptflops_counted_by_torch():
    counts = by_counter(SDPA(), ATTN_SHAPE)
    assert counts["fvcore"].total == 0 and counts["fvcore"].unsupported == {"aten::scaled_dot_product_attention": 1}
    assert counts["ptflops"].total == 0 and counts["ptflops"].unsupported == {"scaled_dot_product_attention()": 1}
    assert counts["torch"].total == ATTN_MACS


def test_torch_lists_attention_without_formula(monkeypatch):
    import lsbench.counting as counting

    monkeypatch.setattr(counting, "_torch_custom_mapping", lambda: {})
    c = by_counter(SDPA(), ATTN_SHAPE, counters="torch")["torch"]
    assert c.total == 0 and c.unsupported == {"aten::_scaled_dot_product_flash_attention_for_cpu": 1}


def test_custom_op_without_formula_is_listed_by_torch_and_fvcore():
    counts = by_counter(Twice(), (1, 4), counters=["fvcore", "torch"])
    assert counts["torch"].total == 0 and counts["torch"].unsupported == {"lsbench_test::twice": 1}
    assert counts["fvcore"].unsupported == {"lsbench_test::twice": 1}


def test_ptflops_lists_leaf_modules_it_has_no_hook_for():
    c = by_counter(nn.Sequential(nn.Hardswish(), nn.Identity(), nn.Dropout()), (1, 4),
                   counters="ptflops")["ptflops"]
    assert c.total == 0 and c.unsupported == {"Hardswish": 1}


# ---------------------------------------------------------------------- ptflops agrees with its own API

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.body(x))


def test_ptflops_total_equals_get_model_complexity_info():
    from ptflops import get_model_complexity_info

    model = Small().eval()
    x = torch.randn(1, 3, 16, 16)
    c = count_flops(model, inputs=x, counters="ptflops")[0]
    ref, _ = get_model_complexity_info(model, (3, 16, 16), input_constructor=lambda _: x, backend="pytorch",
                                       as_strings=False, print_per_layer_stat=False, ost=io.StringIO())
    assert c.total == ref
    # ptflops counts ReLU and the pool once by its module hook and again through the patched functional:
    # 8*16*16 each. Kept, and said.
    conv, bn, relu, pool, lin = 8 * 27 * 256 + 8 * 256, 2 * 8 * 256, 8 * 256, 8 * 256, 8 * 4 + 4
    assert ref == conv + bn + 2 * relu + 2 * pool + lin
    assert c.notes and "twice" in c.notes[0]


class SkaKw(nn.Module):
    def __init__(self):
        super().__init__()
        self.ska = SKA()

    def forward(self, x, w):
        return self.ska(x, w)


def test_ptflops_ska_hook_matches_get_model_complexity_info():
    from ptflops import get_model_complexity_info

    from lsbench.counting import _ptflops_ska_hook

    x, w = torch.randn(1, 16, 5, 6), torch.randn(1, 2, 9, 5, 6)
    ref, _ = get_model_complexity_info(SkaKw(), (16, 5, 6), input_constructor=lambda _: {"x": x, "w": w},
                                       backend="pytorch", as_strings=False, print_per_layer_stat=False,
                                       custom_modules_hooks={SKA: _ptflops_ska_hook})
    assert ref == count_flops(SkaKw(), inputs=(x, w), counters="ptflops")[0].total == SKA_MACS // 2


def test_ptflops_run_leaves_torch_and_model_untouched():
    model = Small().train()
    relu, matmul, tmatmul = F.relu, torch.matmul, torch.Tensor.matmul
    count_flops(model, (1, 3, 16, 16))
    assert (F.relu, torch.matmul, torch.Tensor.matmul) == (relu, matmul, tmatmul)
    assert model.training and all(m.training for m in model.modules())
    assert not any(hasattr(m, "__flops__") or m._forward_hooks or m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------------- per-module, frames

def test_by_module_is_exclusive_and_sums_to_total():
    for c in count_flops(Small(), (1, 3, 16, 16)):
        assert sum(c.by_module.values()) == c.total, c.counter
    fv = count_flops(Small(), (1, 3, 16, 16), counters="fvcore")[0]
    assert fv.by_module == {"body.0": 8 * 27 * 256, "body.1": 2 * 8 * 256, "body.3": 8 * 256, "head": 32}


def test_module_breakdown_depth():
    fv = count_flops(Small(), (1, 3, 16, 16), counters="fvcore")[0]
    frame = module_breakdown(fv, depth=1)
    assert list(frame.columns) == ["module", "macs", "share"]
    assert frame["module"].tolist() == ["body", "head"]
    assert frame["macs"].tolist() == [8 * 27 * 256 + 2 * 8 * 256 + 8 * 256, 32]
    assert frame["share"].sum() == pytest.approx(1.0)
    assert module_breakdown(fv, depth=0)["module"].tolist() == ["(root)"]
    assert len(module_breakdown(fv)) == 4
    with pytest.raises(LsbenchError, match="depth"):
        module_breakdown(fv, depth=-1)


def test_module_breakdown_root_work():
    c = count_flops(Attention(), ATTN_SHAPE, counters="torch")[0]
    frame = module_breakdown(c, depth=1)
    assert frame.to_dict("list") == {"module": ["(root)"], "macs": [ATTN_MACS], "share": [1.0]}


def test_flops_frame():
    frame = flops_frame(count_flops(nn.Conv2d(3, 8, 3, padding=1, bias=False), (1, 3, 16, 16)))
    assert list(frame.columns[:3]) == ["counter", "convention", "gmacs"]
    assert frame["counter"].tolist() == list(COUNTERS)
    assert frame["gmacs"].tolist() == pytest.approx([55296e-9] * 3)
    assert frame["convention"].str.len().min() > 10


# ------------------------------------------------------------------------------------------- errors

def test_unknown_counter():
    with pytest.raises(LsbenchError, match="fvcore, ptflops, torch") as info:
        count_flops(nn.Linear(2, 2), (1, 2), counters=["fvcore", "thop"])
    assert "'thop'" in str(info.value)
    with pytest.raises(LsbenchError):
        count_flops(nn.Linear(2, 2), (1, 2), counters=[])


@pytest.mark.parametrize("size", [(1, 0, 4), (1, -3), (), "abc", (1.5, 2)])
def test_bad_input_size(size):
    with pytest.raises(LsbenchError, match="input_size"):
        count_flops(nn.Linear(2, 2), size)


def test_model_failure_is_one_line_error():
    with pytest.raises(LsbenchError, match="torch could not count Linear"):
        count_flops(nn.Linear(2, 2), (1, 3), counters="torch")


# ------------------------------------------------------------------------------------------- params

class ConvBN(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))

    def fuse(self) -> nn.Conv2d:
        conv, bn = self[0], self[1]
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        fused = nn.Conv2d(3, 8, 3)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


def test_param_counts_fused():
    model = nn.Sequential(ConvBN())
    model.register_buffer("not_a_param", torch.zeros(100))
    assert count_params(model) == 8 * 27 + 2 * 8
    assert param_counts(model) == {"total": 8 * 27 + 2 * 8, "fused": 8 * 27 + 8}
    assert isinstance(model[0], ConvBN) and model.training  # the model itself is not fused


def test_count_flops_fused_counts_the_deploy_form():
    model = nn.Sequential(ConvBN())
    assert macs(model, (1, 3, 6, 6), counters="fvcore")["fvcore"] == 8 * 27 * 16 + 2 * 8 * 16
    assert macs(model, (1, 3, 6, 6), counters="fvcore", fused=True)["fvcore"] == 8 * 27 * 16


# --------------------------------------------------------------------- published figures: timm, LSNet

def test_mobilenetv3_large_published():
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv3_large_100")
    assert count_params(model) == 5_483_032  # 5.48M
    fv = count_flops(model, counters="fvcore")[0]
    assert round(fv.gmacs, 2) == 0.23 and fv.gmacs == pytest.approx(0.23, rel=0.02)


def test_repvit_m0_9_published():
    timm = pytest.importorskip("timm")
    model = timm.create_model("repvit_m0_9")
    params = param_counts(model)
    assert params["fused"] < params["total"]
    assert params["fused"] / 1e6 == pytest.approx(5.1, abs=0.05)  # deploy 5.1M
    assert count_flops(model, counters="fvcore", fused=True)[0].gmacs == pytest.approx(0.8, abs=0.05)


def test_efficientvit_m0_after_a_forward_with_grad():
    # Its attention-bias cache holds a non-leaf tensor after an eval forward with grad: deepcopy and
    # timm's reparameterize fail on it unless the cache is cleared first.
    timm = pytest.importorskip("timm")
    model = timm.create_model("efficientvit_m0").eval()
    model(torch.randn(1, 3, 224, 224))
    params = param_counts(model)
    assert params["fused"] / 1e6 == pytest.approx(2.3, abs=0.05)  # published 2.3M
    assert round(count_flops(model, counters="fvcore", fused=True)[0].total / 1e6) == 79  # published 79M
    assert not any(m.training for m in model.modules())


LSNET_PUBLISHED = {  # fvcore GMACs of the BN-fused model, fused params
    "lsnet_t": (0.3163, 11_370_488),
    "lsnet_s": (0.5385, 16_098_232),
    "lsnet_b": (1.2475, 23_249_320),
}


@pytest.mark.parametrize("name", list(LSNET_PUBLISHED))
def test_lsnet_published(name):
    zoo = pytest.importorskip("zoo")
    gmacs, params = LSNET_PUBLISHED[name]
    fused = zoo.reparameterize(zoo.create_model(name))
    assert count_params(fused) == params
    fv = count_flops(fused, counters="fvcore")[0]
    assert round(fv.total / 1e9, 4) == gmacs
    assert fv.by_op["zoo::ska"] > 0 and not any(k.startswith("zoo::") for k in fv.unsupported)


@pytest.mark.parametrize("name", ["lsnet_t", "fastvit_t8"])
def test_ptflops_total_equals_its_own_api_on_real_models(name):
    # The watch (module stack, function mode) must not change what ptflops counts: `a @ b` in LSNet's
    # attention and `x * gamma` in FastViT's layer scale stay uncounted, as in plain ptflops.
    from ptflops import get_model_complexity_info

    from lsbench.counting import _ptflops_ska_hook, reparameterized

    zoo = pytest.importorskip("zoo")
    model = reparameterized(zoo.create_model(name))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ref, _ = get_model_complexity_info(model, (3, 224, 224), input_constructor=lambda _: x, backend="pytorch",
                                           as_strings=False, print_per_layer_stat=False, ost=io.StringIO(),
                                           custom_modules_hooks={SKA: _ptflops_ska_hook})
    assert count_flops(model, inputs=x, counters="ptflops")[0].total == ref


def test_lsnet_all_counters_see_ska():
    zoo = pytest.importorskip("zoo")
    model = zoo.reparameterize(zoo.create_model("lsnet_t"))
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, args, out: shapes.append(args[0].shape))
             for m in model.modules() if isinstance(m, SKA)]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    expected = sum(9 * math.prod(s) for s in shapes)
    assert expected > 0
    for c in count_flops(model, (1, 3, 64, 64)):
        assert c.by_op["zoo::ska"] == expected, c.counter
        assert sum(c.by_module.values()) == c.total
        assert module_breakdown(c, depth=1)["share"].sum() == pytest.approx(1.0)
