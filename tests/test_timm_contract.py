"""LSNet as a timm model: pretrained configs, offline pretrained loading, features_only, the model contract
(constructor keywords, heads, intermediates, pruning, gradient checkpointing) and FX / TorchScript /
torch.export. Expectations come from the official repository's facts (hub ids, eval transform, layouts),
from hooks on the stage modules, and from the same model run eagerly."""
import argparse
import math
from collections import OrderedDict

import pytest
import timm
import torch
from timm.models import create_feature_extractor
from torch import nn

import zoo
from zoo import LSNet, ZooError

VARIANTS = ["lsnet_t", "lsnet_s", "lsnet_b"]
NAMES = VARIANTS + [v + "_distill" for v in VARIANTS]
# lsnet-facts.md §1: stage widths and the number of stage-4 attention blocks (odd indices of 10 blocks)
WIDTHS = {"lsnet_t": [64, 128, 256, 384], "lsnet_s": [96, 192, 320, 448], "lsnet_b": [128, 256, 384, 512]}


def _trained(model: nn.Module) -> nn.Module:
    """Non-trivial weights and BN statistics, so that loading, fusing and comparing really test something."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if "running_var" in name
                        else torch.randn(t.shape, generator=g) * 0.05)
    return model


def _stage_outputs(model: LSNet, x: torch.Tensor) -> list[torch.Tensor]:
    """Independent of forward_intermediates: forward hooks on blocks1..4 (lsnet_t's empty blocks1 passes
    the stem output through)."""
    outs = {}
    handles = [getattr(model, f"blocks{i + 1}").register_forward_hook(
        lambda m, inp, out, i=i: outs.__setitem__(i, out)) for i in range(4)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return [outs[i] for i in range(4)]


# --- pretrained configs ---------------------------------------------------------------------------------

def test_pretrained_configs_are_the_official_ones():
    assert sorted(timm.list_pretrained("lsnet*")) == sorted(n + ".in1k" for n in NAMES)
    for name in NAMES:
        cfg = timm.get_pretrained_cfg(name)
        assert cfg.hf_hub_id == f"jameslahm/{name}"  # THU-MIG/lsnet model/lsnet.py default_cfgs
        # the official eval transform: Resize(256, bicubic) + CenterCrop(224) -> crop_pct 224/256
        assert cfg.input_size == (3, 224, 224) and cfg.crop_pct == 224 / 256 and cfg.interpolation == "bicubic"
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
        assert cfg.num_classes == 1000 and cfg.pool_size == (4, 4)
        with torch.device("meta"):
            sd = timm.create_model(name).state_dict()
        classifiers = (cfg.classifier,) if isinstance(cfg.classifier, str) else cfg.classifier
        assert len(classifiers) == (2 if name.endswith("_distill") else 1)
        for key in (*classifiers, cfg.first_conv):
            assert key + ".weight" in sd
    assert timm.is_model_pretrained("lsnet_t") and "lsnet" in timm.list_modules()


def test_data_config_resolves_to_the_official_eval_transform():
    model = timm.create_model("lsnet_t")
    transform = timm.data.create_transform(**timm.data.resolve_data_config(model=model))
    resize, crop = transform.transforms[0], transform.transforms[1]
    assert resize.size == 256 and crop.size == (224, 224)
    assert "bicubic" in str(resize.interpolation).lower()


# --- offline pretrained loading in the official layouts -------------------------------------------------

@pytest.fixture(scope="module")
def official_t():
    """lsnet_t weights as the official training code saves them, and a different EMA copy beside them."""
    weights = {k: v.clone() for k, v in _trained(zoo.create_model("lsnet_t")).state_dict().items()}
    ema = {k: (v + 1 if v.is_floating_point() else v) for k, v in weights.items()}
    return weights, ema


def _equal_state(model, sd, skip=()):
    for k, v in model.state_dict().items():
        if not any(k.startswith(s) for s in skip):
            assert torch.equal(v, sd[k]), k


def test_timm_pretrained_file_official_training_checkpoint(tmp_path, official_t):
    weights, ema = official_t
    path = tmp_path / "lsnet_t.pth"
    torch.save({"model": weights, "optimizer": {}, "lr_scheduler": {}, "epoch": 299, "model_ema": ema,
                "scaler": {}, "args": argparse.Namespace(model="lsnet_t", lr=0.004)}, path)
    model = timm.create_model("lsnet_t", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    _equal_state(model, weights)  # the evaluated 'model' weights, not 'model_ema'
    fresh = zoo.create_model("lsnet_t", checkpoint=path)  # our loader: same filter, same result
    _equal_state(fresh, weights)


def test_timm_pretrained_file_bare_state_dict_and_adaptations(tmp_path, official_t):
    weights, _ = official_t
    path = tmp_path / "pytorch_model.bin"
    torch.save(weights, path)
    model = timm.create_model("lsnet_t", pretrained=True, num_classes=10, in_chans=1,
                              pretrained_cfg_overlay=dict(file=str(path)))
    _equal_state(model, weights, skip=("head.l.", "patch_embed.0.c.weight"))
    assert model.head.l.weight.shape == (10, 384)
    # one input channel: timm's rule sums the RGB filters of the first conv
    torch.testing.assert_close(model.patch_embed[0].c.weight, weights["patch_embed.0.c.weight"].sum(1, keepdim=True))
    headless = timm.create_model("lsnet_t", pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(path)))
    _equal_state(headless, weights)
    assert not any(k.startswith("head.") for k in headless.state_dict())


def test_timm_pretrained_state_dict_goes_through_the_shared_filter(official_t):
    """The non-file route (timm's loader + pretrained_filter_fn): a DDP-prefixed {'model': ...} dict."""
    weights, _ = official_t
    wrapped = {"model": {"module." + k: v for k, v in weights.items()}, "epoch": 3}
    model = timm.create_model("lsnet_t", pretrained=True, pretrained_cfg_overlay=dict(state_dict=wrapped))
    _equal_state(model, weights)


def test_timm_pretrained_distilled_file_and_wrong_variant(tmp_path):
    weights = {k: v.clone() for k, v in _trained(zoo.create_model("lsnet_t_distill")).state_dict().items()}
    path = tmp_path / "lsnet_t_distill.pth"
    torch.save({"model": weights}, path)
    model = timm.create_model("lsnet_t_distill", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    _equal_state(model, weights)
    other = timm.create_model("lsnet_t_distill", pretrained=True, num_classes=3,
                              pretrained_cfg_overlay=dict(file=str(path)))  # both heads replaced
    assert other.head.l.weight.shape == other.head_dist.l.weight.shape == (3, 384)
    with pytest.raises(ZooError, match="distilled checkpoint: use the model's _distill variant") as err:
        timm.create_model("lsnet_t", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert "\n" not in str(err.value)


def test_features_only_pretrained(tmp_path, official_t):
    weights, _ = official_t
    path = tmp_path / "lsnet_t.pth"
    torch.save({"model": weights}, path)
    feats = timm.create_model("lsnet_t", pretrained=True, features_only=True, pretrained_cfg_overlay=dict(file=str(path)))
    full = timm.create_model("lsnet_t", pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        for got, want in zip(feats.eval()(x), _stage_outputs(full, x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


# --- features_only and dense tasks ----------------------------------------------------------------------

@pytest.mark.parametrize("name", VARIANTS)
def test_features_only_feature_info(name):
    model = timm.create_model(name, features_only=True)
    assert model.feature_info.reduction() == [8, 16, 32, 64]
    assert model.feature_info.channels() == WIDTHS[name]
    assert model.feature_info.module_name() == ["blocks1", "blocks2", "blocks3", "blocks4"]
    two = timm.create_model(name, features_only=True, out_indices=(2, 3))
    assert two.feature_info.channels() == WIDTHS[name][2:]
    assert [f.shape[1] for f in two(torch.randn(1, 3, 96, 96))] == WIDTHS[name][2:]


@pytest.mark.parametrize("height, width", [(512, 512), (480, 640)])
def test_dense_features_feed_a_feature_pyramid(height, width):
    from torchvision.ops import FeaturePyramidNetwork

    backbone = timm.create_model("lsnet_t", features_only=True).eval()
    fpn = FeaturePyramidNetwork(backbone.feature_info.channels(), out_channels=96).eval()
    x = torch.randn(1, 3, height, width)
    with torch.no_grad():
        feats = backbone(x)
        pyramid = fpn(OrderedDict((f"p{i + 2}", f) for i, f in enumerate(feats)))
    # stride-2 convs with padding 1: each level is ceil(previous / 2)
    sizes = []
    h, w = height, width
    for _ in range(3):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    for _ in range(4):
        sizes.append((h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    assert [tuple(f.shape) for f in feats] == [(1, c, *s) for c, s in zip(WIDTHS["lsnet_t"], sizes)]
    assert [tuple(p.shape) for p in pyramid.values()] == [(1, 96, *s) for s in sizes]
    assert all(torch.isfinite(p).all() for p in pyramid.values())


# --- the constructor and head contract -------------------------------------------------------------------

def test_device_dtype_keywords_place_every_tensor():
    model = timm.create_model("lsnet_s_distill", device="meta", dtype=torch.float64)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert {t.device.type for t in tensors.values()} == {"meta"}
    assert {t.dtype for n, t in tensors.items() if t.is_floating_point()} == {torch.float64}
    assert model.blocks4[3].mixer.m.attention_bias_idxs.dtype == torch.int64
    model.reset_classifier(4)
    heads = model.get_classifier()
    assert isinstance(heads, tuple) and len(heads) == 2
    assert all(p.device.type == "meta" and p.dtype == torch.float64 for h in heads for p in h.parameters())


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError):
        timm.create_model("lsnet_t", not_an_option=1)


def test_in_chans_and_global_pool_keywords():
    model = timm.create_model("lsnet_t", in_chans=1, num_classes=0, global_pool="").eval()
    assert model.in_chans == 1 and model.patch_embed[0].c.in_channels == 1
    with torch.no_grad():
        out = model(torch.randn(2, 1, 224, 224))
    assert out.shape == (2, 384, 4, 4)
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model("lsnet_t", global_pool="max")


def test_reset_classifier_pooling_and_train_mode():
    model = _trained(timm.create_model("lsnet_t")).eval()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        torch.testing.assert_close(pre, feats.mean((2, 3)))
        model.reset_classifier(0)  # global_pool None keeps the pooling
        torch.testing.assert_close(model(x), pre)
        model.reset_classifier(0, "")  # '' removes it
        torch.testing.assert_close(model(x), feats)
        model.reset_classifier(7, "avg")
        assert model(x).shape == (2, 7)
    assert not model.head.training
    model.train()
    model.reset_classifier(3)
    assert model.head.training and model.num_classes == 3


def test_distilled_training_pair_can_be_turned_off():
    model = zoo.create_model("lsnet_t_distill", num_classes=5)
    torch.nn.init.normal_(model.head_dist.l.weight)
    x = torch.randn(2, 3, 96, 96)
    model.train()
    assert isinstance(model(x), tuple)
    model.set_distilled_training(False)
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)


def test_group_matcher_and_no_weight_decay():
    from timm.models import group_parameters
    from timm.optim import param_groups_weight_decay

    model = timm.create_model("lsnet_t")
    groups = group_parameters(model, model.group_matcher(coarse=False))
    names = dict(model.named_parameters())
    assert sum(len(v) for v in groups.values()) == len(names)
    assert groups[0] == [n for n in names if n.startswith("patch_embed")]
    # fine groups: the 3 downsample pairs + the 20 blocks of lsnet_t (0 + 2 + 8 + 10), plus the head
    assert len(groups) == 1 + 3 * 2 + 20 + 1
    coarse = group_parameters(model, model.group_matcher(coarse=True))
    assert len(coarse) == 1 + 3 + 1  # stem, blocks2..4 (blocks1 is empty), head
    nwd = model.no_weight_decay()
    assert nwd == {f"blocks4.{i}.mixer.m.attention_biases" for i in (3, 5, 7, 9, 11)}  # 5 attention blocks
    by_decay = {g["weight_decay"]: g["params"] for g in param_groups_weight_decay(model, 0.05, no_weight_decay_list=nwd)}
    decay, no_decay = by_decay[0.05], by_decay[0.0]
    assert all(p.ndim > 1 for p in decay) and not any(p is names["blocks4.3.mixer.m.attention_biases"] for p in decay)
    assert any(p is names["blocks4.3.mixer.m.attention_biases"] for p in no_decay)


# --- intermediates and pruning ---------------------------------------------------------------------------

def test_forward_intermediates_matches_stage_hooks():
    model = _trained(timm.create_model("lsnet_s")).eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        want = _stage_outputs(model, x)
        final, inter = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        for got, exp in zip(inter, want):
            torch.testing.assert_close(got, exp, rtol=0, atol=0)
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [t.shape for t in last_two] == [t.shape for t in want[2:]]
        final, picked = model.forward_intermediates(x, indices=[0, -1], norm=True)
        torch.testing.assert_close(picked[1], want[3], rtol=0, atol=0)
        early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
        torch.testing.assert_close(early[0], want[1], rtol=0, atol=0)
        final, _ = model.forward_intermediates(x, indices=[1], stop_early=True)
        torch.testing.assert_close(final, want[1], rtol=0, atol=0)  # stopped after stage 2
    with pytest.raises(ValueError, match="NCHW"):
        model.forward_intermediates(x, output_fmt="NHWC")
    with pytest.raises(ValueError, match="out of range"):
        model.forward_intermediates(x, indices=[4])


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_prune_intermediate_layers(index):
    model = _trained(timm.create_model("lsnet_s")).eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        taps = _stage_outputs(model, x)
    pruned = timm.create_model("lsnet_s")
    pruned.load_state_dict(model.state_dict())
    pruned.eval()
    take = pruned.prune_intermediate_layers([index])
    assert take == [index]
    assert pruned.num_features == pruned.head_hidden_size == WIDTHS["lsnet_s"][index]
    assert pruned.num_classes == 0 and pruned.global_pool == ""
    with torch.no_grad():
        torch.testing.assert_close(pruned.forward_features(x), taps[index], rtol=0, atol=0)
        got = pruned.forward_intermediates(x, indices=take, intermediates_only=True)
        torch.testing.assert_close(got[0], taps[index], rtol=0, atol=0)
    pruned.reset_classifier(7, "avg")  # the new head is as wide as the kept tap
    assert pruned(x).shape == (2, 7)
    pruned.train()
    pruned(x).sum().backward()
    assert not [n for n, p in pruned.named_parameters() if p.grad is None]  # nothing unused (DDP)
    kept = {k.split(".")[0] for k in pruned.state_dict()}
    assert kept == {"patch_embed", "head", *(f"blocks{i + 1}" for i in range(index + 1))}


def test_prune_without_head_keeps_the_output():
    model = timm.create_model("lsnet_t").eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        expected = model(x)
        model.prune_intermediate_layers([3], prune_head=False)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


# --- gradient checkpointing ------------------------------------------------------------------------------

def _loss_and_grads(model, x):
    model.zero_grad()
    out = model(x)
    loss = out.square().mean() if torch.is_tensor(out) else sum(o.square().mean() for o in out)
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("features_only", [False, True])
def test_grad_checkpointing_recomputes_and_changes_nothing(features_only, monkeypatch):
    model = _trained(timm.create_model("lsnet_t", features_only=features_only, num_classes=10)).train()
    x = torch.randn(2, 3, 96, 96)
    block = model.blocks3[2] if not features_only else model["blocks3"][2]
    calls = []
    block.register_forward_hook(lambda *a: calls.append(1))
    torch.manual_seed(0)
    out0, grads0 = _loss_and_grads(model, x)
    assert len(calls) == 1
    used = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: used.append(1) or real(*a, **k))
    model.set_grad_checkpointing(True)
    calls.clear()
    torch.manual_seed(0)
    out1, grads1 = _loss_and_grads(model, x)
    assert used  # torch.utils.checkpoint ran ...
    assert len(calls) == 2  # ... and the block's forward was recomputed during backward
    for a, b in zip(out0 if isinstance(out0, list) else [out0], out1 if isinstance(out1, list) else [out1]):
        torch.testing.assert_close(a, b)
    assert grads0.keys() == grads1.keys()
    for name in grads0:
        torch.testing.assert_close(grads1[name], grads0[name], msg=name)


# --- FX, TorchScript, torch.export -----------------------------------------------------------------------

def test_fx_feature_extraction_any_resolution():
    """timm's FX feature extraction; the size-dependent attention bias is a registered leaf function, so a
    graph traced once also runs on another grid."""
    model = _trained(timm.create_model("lsnet_s")).eval()
    extractor = create_feature_extractor(
        model, return_nodes={"blocks1": "s1", "blocks2": "s2", "blocks3": "s3", "blocks4": "s4", "head": "logits"})
    with torch.no_grad():
        for size in [(224, 224), (160, 288)]:  # native bias grid, and an interpolated one
            x = torch.randn(1, 3, *size)
            out = extractor(x)
            for got, want in zip([out[f"s{i}"] for i in range(1, 5)], _stage_outputs(model, x)):
                torch.testing.assert_close(got, want)
            torch.testing.assert_close(out["logits"], model(x))


@pytest.mark.parametrize("name", ["lsnet_t", "lsnet_b_distill"])
def test_torchscript(name):
    model = _trained(timm.create_model(name, num_classes=11)).eval()
    scripted = torch.jit.script(model)
    with torch.no_grad():
        for size in [(224, 224), (192, 256)]:
            x = torch.randn(1, 3, *size)
            torch.testing.assert_close(scripted(x), model(x))
    assert "zoo::ska" in str(scripted.inlined_graph)  # the custom op, not a Python fallback


def test_torchscript_features_only():
    model = _trained(timm.create_model("lsnet_t", features_only=True)).eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        for got, want in zip(scripted(x), model(x)):
            torch.testing.assert_close(got, want)


def test_torch_export_keeps_the_ska_op():
    model = _trained(timm.create_model("lsnet_t")).eval()
    x = torch.randn(1, 3, 224, 224)
    exported = torch.export.export(model, (x,))
    assert any(node.target is torch.ops.zoo.ska.default for node in exported.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))
