"""LSNet conformance with the official model: outputs, parameter counts, key layout, deploy form."""
import pytest
import timm
import torch

import zoo
from zoo import LSNet, reparameterize
from zoo.lsnet import Attention

# lsnet-facts.md §1: exact counts of the official model (unfused / BN-fused / tensors in state_dict)
EXACT = {
    "lsnet_t": (11_409_832, 11_370_488, 696),
    "lsnet_s": (16_146_304, 16_098_232, 724),
    "lsnet_b": (23_313_608, 23_249_320, 964),
}
DISTILL_UNFUSED = {"lsnet_t": 11_795_600, "lsnet_s": 16_596_200, "lsnet_b": 23_827_632}


@pytest.fixture(scope="module")
def tiny(data_dir):
    return torch.load(data_dir / "lsnet_tiny.pt", weights_only=True)


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def test_tiny_config_reproduces_official_logits_and_features(tiny):
    model = LSNet(**tiny["config"]).eval()
    model.load_state_dict(tiny["state_dict"], strict=True)
    assert sum(p.numel() for p in model.parameters()) == tiny["param_count"]
    x = tiny["input"].float()
    with torch.no_grad():
        logits = model(x)
        feats = model.forward_stages(x)
    assert _rel(logits, tiny["logits"]) <= 1e-5
    for i, feat in enumerate(feats):
        assert _rel(feat, tiny["features"][f"stage{i + 1}"]) <= 1e-5
    fused = reparameterize(model)
    with torch.no_grad():
        assert _rel(fused(x), tiny["logits"]) <= 1e-5
        for i, feat in enumerate(fused.forward_stages(x)):
            assert _rel(feat, tiny["features"][f"stage{i + 1}"]) <= 1e-5


@pytest.mark.parametrize("name", list(EXACT))
def test_exact_parameter_and_tensor_counts(name):
    unfused, fused, tensors = EXACT[name]
    with torch.device("meta"):
        model = zoo.create_model(name)
        distill = zoo.create_model(name + "_distill")
    assert sum(p.numel() for p in model.parameters()) == unfused
    assert len(model.state_dict()) == tensors
    assert sum(p.numel() for p in distill.parameters()) == DISTILL_UNFUSED[name]
    assert len(distill.state_dict()) == tensors + 7
    real = zoo.create_model(name).eval()
    assert sum(p.numel() for p in reparameterize(real).parameters()) == fused


def test_documented_key_shapes():
    with torch.device("meta"):
        sd = zoo.create_model("lsnet_t").state_dict()
    assert tuple(sd["blocks2.3.mixer.lkp.cv2.c.weight"].shape) == (64, 1, 7, 7)
    assert tuple(sd["blocks2.3.mixer.lkp.cv4.weight"].shape) == (144, 64, 1, 1)
    assert tuple(sd["blocks4.3.mixer.m.qkv.c.weight"].shape) == (512, 384, 1, 1)
    assert tuple(sd["head.l.weight"].shape) == (1000, 384)
    assert not any(k.startswith("blocks1.") for k in sd)  # lsnet_t has no stage-1 blocks
    assert sd["blocks4.3.mixer.m.attention_bias_idxs"].dtype == torch.int64
    assert tuple(sd["blocks4.3.mixer.m.attention_bias_idxs"].shape) == (16, 16)
    assert {k.split(".")[0] for k in sd} == {"patch_embed", "blocks2", "blocks3", "blocks4", "head"}


def test_bias_index_matches_first_seen_numbering():
    att = Attention(64, 16, num_heads=2, attn_ratio=2, resolution=4)
    from zoo.lsnet import offset_index
    assert torch.equal(offset_index(4, 4), att.attention_bias_idxs)


def test_other_input_sizes_interpolate_the_bias_without_touching_weights(tiny):
    model = LSNet(**tiny["config"]).eval()
    model.load_state_dict(tiny["state_dict"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for size in (160, 256, 320, 1024):
            out = model(torch.randn(1, 3, size, size))
            assert out.shape == (1, 10) and torch.isfinite(out).all()
        out = model(torch.randn(1, 3, 224, 320))  # non-square
        assert out.shape == (1, 10)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_interpolated_bias_equals_stored_bias_on_native_grid():
    att = Attention(64, 16, num_heads=2, attn_ratio=2, resolution=4)
    torch.nn.init.normal_(att.attention_biases)
    stored = att.attention_biases[:, att.attention_bias_idxs]
    table = att.attention_biases.view(1, 2, 4, 4)
    via_interp = torch.nn.functional.interpolate(table, size=(4, 4), mode="bicubic", align_corners=False)[0]
    from zoo.lsnet import offset_index
    torch.testing.assert_close(via_interp.flatten(1)[:, offset_index(4, 4)], stored)
    big = att.attention_bias(8, 8)
    assert big.shape == (2, 64, 64)
    # symmetric in the offset: bias(p, q) == bias(q, p)
    torch.testing.assert_close(big, big.transpose(1, 2))


def test_timm_api_and_registration():
    model = timm.create_model("lsnet_t", num_classes=7).eval()
    assert isinstance(model, LSNet)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 384, 4, 4)
        assert model.forward_head(feats, pre_logits=True).shape == (2, 384)
        assert model.forward_head(feats).shape == (2, 7)
        stages = model.forward_stages(x)
        assert [f.shape[1:] for f in stages] == [(64, 28, 28), (128, 14, 14), (256, 7, 7), (384, 4, 4)]
        last, inter = model.forward_intermediates(x, indices=[1, 3])
        assert torch.equal(last, stages[-1]) and len(inter) == 2
    assert [i["reduction"] for i in model.feature_info] == [8, 16, 32, 64]
    model.reset_classifier(3)
    with torch.no_grad():
        assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, 384)


def test_distill_head_averages_in_eval_and_pairs_in_train():
    model = zoo.create_model("lsnet_t_distill", num_classes=5)
    torch.nn.init.normal_(model.head_dist.l.weight)
    x = torch.randn(2, 3, 224, 224)
    model.train()
    a, b = model(x)
    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        expected = (model.head(feats) + model.head_dist(feats)) / 2
        torch.testing.assert_close(model(x), expected)


def test_deploy_form_folds_every_conv_bn_and_repvggdw():
    model = zoo.create_model("lsnet_t").eval()
    for m in model.modules():  # non-trivial BN statistics so folding is really exercised
        if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
            torch.nn.init.uniform_(m.running_var, 0.5, 2.0)
            torch.nn.init.normal_(m.running_mean, 0, 0.1)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    fused = reparameterize(model)
    names = {type(m).__name__ for m in fused.modules()}
    assert not names & {"ConvBN", "BNLinear", "RepVGGDW"}
    # only LSConv's own BN survives, as in the official deploy form
    bns = [n for n, m in fused.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(n.endswith("mixer.bn") for n in bns)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert _rel(fused(x), model(x)) <= 1e-5
