"""Fair mobile numbers: LSNet's export forms compute the eager function, and ExecuTorch delegates all of them.

The equivalence tests need only torch; the .pte tests skip cleanly without executorch (lsbench[mobile]).
"""
from __future__ import annotations

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lsbench.errors import LsbenchError
from lsbench.export import (SplitDepthwiseConv, edge_op_counts, export_model, exportable_form, pte_op_counts,
                            split_large_depthwise)
from zoo.lsnet import LSNet, AttentionExport, Attention, LSConv, LSConvExport, group_norm_export
from zoo.ska import ska, ska_reference
from zoo.ska.reference import ska_export

from test_export import randomize_norms

needs_executorch = pytest.mark.skipif(importlib.util.find_spec("executorch") is None,
                                      reason="executorch not installed (lsbench[mobile])")
EXACT = 1e-5  # the bound: max abs difference vs the eager path


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random norm statistics / affines (test_export's helper) and attention biases, so no branch is silently
    zero or identity."""
    randomize_norms(model, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Attention):
                m.attention_biases.copy_(torch.randn(m.attention_biases.shape, generator=gen))
    return model


def tiny_lsnet(img: int = 128) -> LSNet:
    """A real LSNet with every part the export forms touch: RepVGGDW+SE, one LSConv (stage 2), one Attention
    (stage 4, a 2x2 grid at 128 px), the BN-Linear head."""
    torch.manual_seed(0)
    return randomize(LSNet(img_size=img, embed_dim=(16, 32, 48, 64), depth=(0, 2, 0, 2),
                           num_heads=(2, 2, 2, 2))).eval()


# --------------------------------------------------------------------------- equivalence (torch only)

@pytest.mark.parametrize("shape,g", [((2, 16, 7, 9), 2), ((1, 64, 14, 14), 8), ((1, 24, 5, 5), 24)])
def test_ska_export_matches_the_reference_and_the_op(shape, g):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen)
    w = torch.randn(shape[0], g, 9, *shape[2:], generator=gen)
    # independent expectation: unfold the 3x3 neighbourhood, weight it per group, sum
    cols = F.unfold(x, 3, padding=1).view(shape[0], shape[1] // g, g, 9, *shape[2:])
    expected = (cols * w[:, None]).sum(3).reshape(shape)
    got = ska_export(x, w)
    assert (got - expected).abs().max().item() <= EXACT
    assert (got - ska_reference(x, w)).abs().max().item() <= EXACT
    assert (got - ska(x, w)).abs().max().item() <= EXACT


@pytest.mark.parametrize("groups,channels", [(2, 18), (8, 72), (1, 9)])
def test_group_norm_export_matches_group_norm(groups, channels):
    norm = randomize(nn.GroupNorm(groups, channels), seed=groups)
    x = torch.randn(2, channels, 6, 5, generator=torch.Generator().manual_seed(2)) * 3 + 1
    assert (group_norm_export(x, norm) - norm(x)).abs().max().item() <= EXACT
    plain = nn.GroupNorm(groups, channels, affine=False)
    assert (group_norm_export(x, plain) - plain(x)).abs().max().item() <= EXACT


def test_lsconv_export_matches_eager():
    torch.manual_seed(0)
    conv = randomize(LSConv(32)).eval()
    x = torch.randn(1, 32, 9, 11)
    with torch.no_grad():
        assert (LSConvExport(conv)(x) - conv(x)).abs().max().item() <= EXACT


@pytest.mark.parametrize("grid", [(4, 4), (5, 3)])  # the native grid (gathered) and another one (resized bias)
def test_attention_export_bias_matches_eager(grid):
    torch.manual_seed(0)
    attn = randomize(Attention(64, 16, num_heads=2, attn_ratio=2, resolution=4)).eval()
    x = torch.randn(2, 64, *grid)
    export = AttentionExport(attn, *grid)
    with torch.no_grad():
        assert torch.equal(export.attention_bias, attn.attention_bias(*grid))
        assert (export(x) - attn(x)).abs().max().item() <= EXACT
    assert "attention_bias" not in export.state_dict()  # derived, never saved
    with pytest.raises(ValueError, match="grid"):
        export(torch.randn(1, 64, 4, 5))


def test_lsnet_export_form_is_the_same_function_and_leaves_the_model_alone():
    model = tiny_lsnet()
    keys = set(model.state_dict())
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    form = model.export_form(x.shape)
    with torch.no_grad():
        assert (form(x) - model(x)).abs().max().item() <= EXACT
    assert set(model.state_dict()) == keys
    assert any(isinstance(m, LSConv) for m in model.modules())  # the model keeps its eager modules
    assert not any(isinstance(m, (LSConv, Attention)) for m in form.modules())


def test_split_depthwise_is_the_same_convolution():
    torch.manual_seed(0)
    for conv in (nn.Conv2d(8, 8, 7, 1, 3, groups=8), nn.Conv2d(8, 16, 7, 2, 3, groups=8, bias=False),
                 nn.Conv2d(4, 4, (9, 5), 1, (4, 2), groups=4)):
        x = torch.randn(1, conv.in_channels, 13, 11)
        split = SplitDepthwiseConv(conv)
        assert all(c.kernel_size[0] * c.kernel_size[1] <= 25 for c in split.convs)
        with torch.no_grad():
            assert (split(x) - conv(x)).abs().max().item() <= EXACT
    net = nn.Sequential(nn.Conv2d(8, 8, 5, padding=2, groups=8), nn.Conv2d(8, 8, 7, padding=3, groups=8),
                        nn.Conv2d(8, 8, 7, padding=3))
    assert split_large_depthwise(net) == 1 and isinstance(net[1], SplitDepthwiseConv)
    assert type(net[0]) is nn.Conv2d and type(net[2]) is nn.Conv2d  # 25 taps, and a dense conv: untouched


def test_exportable_form_copies_before_splitting():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 7, padding=3, groups=8)).eval()
    traced, notes = exportable_form(net, (1, 3, 16, 16), "pte")
    assert notes == {"export_form": False, "split_depthwise": 1}
    assert type(net[1]) is nn.Conv2d and isinstance(traced[1], SplitDepthwiseConv)
    assert exportable_form(net, (1, 3, 16, 16), "onnx") == (net, {"export_form": False, "split_depthwise": 0})


# --------------------------------------------------------------------------- ExecuTorch programs

class MeanNoKeepdim(nn.Module):
    """A conv XNNPACK delegates, then a mean without keepdim, which it does not (a known portable op)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


@needs_executorch
def test_op_counts_see_the_non_delegated_op(tmp_path):
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    model = MeanNoKeepdim().eval()
    x = torch.randn(1, 3, 8, 8)
    edge = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
    counts = edge_op_counts(edge)
    assert counts.delegate_calls == 1 and counts.delegates == {"XnnpackBackend": 1}
    assert counts.portable == {"aten.mean.dim": 1} and counts.portable_ops == 1
    path = tmp_path / "m.pte"
    path.write_bytes(edge.to_executorch().buffer)
    in_file = pte_op_counts(path)
    assert in_file.delegates == {"XnnpackBackend": 1} and in_file.portable == {"aten::mean.out": 1}


@needs_executorch
def test_pte_op_counts_refuses_a_non_program(tmp_path):
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(LsbenchError, match="not an ExecuTorch program"):
        pte_op_counts(bad)
    with pytest.raises(LsbenchError, match="cannot read"):
        pte_op_counts(tmp_path / "missing.pte")


@needs_executorch
def test_lsnet_pte_has_no_portable_ops(tmp_path):
    from zoo import reparameterize

    model = reparameterize(tiny_lsnet())
    r = export_model(model, "tiny_lsnet", "pte", tmp_path, (1, 3, 128, 128))
    assert r.passed and r.max_abs_err <= EXACT and r.details["export_form"] is True
    assert r.details["split_depthwise"] == 1  # LKP's 7x7 depthwise conv
    counts = pte_op_counts(r.path)
    assert counts.portable == {} and counts.delegates == {"XnnpackBackend": 1}
    assert r.details["portable_ops"] == 0
