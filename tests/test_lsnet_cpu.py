"""The CPU inference form (zoo.lsnet_cpu) computes the deploy model's function; SKA keeps its op and layouts."""
import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import zoo
from zoo import LSNet, reparameterize
from zoo.lsnet_cpu import LSNetCPU, compile_for_inference, mkldnn_available, optimize_for_inference, ska_decomposition
from zoo.ska import ska, ska_reference

TOL = 1e-5  # relative to the output's largest magnitude, as in test_lsnet.py


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def _randomize_statistics(model):
    """Non-trivial BN / GN / bias-table values, so every fold and the attention bias are exercised."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                m.running_var.uniform_(0.5, 2.0)
                m.running_mean.normal_(0, 0.1)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            elif isinstance(m, torch.nn.GroupNorm):
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
        for name, p in model.named_parameters():
            if "attention_biases" in name:
                p.normal_()
    return model


@pytest.fixture(scope="module")
def lsnet_t():
    torch.manual_seed(0)
    return _randomize_statistics(zoo.create_model("lsnet_t").eval())


@pytest.fixture(scope="module")
def lsnet_t_pair(lsnet_t):
    return reparameterize(lsnet_t), optimize_for_inference(lsnet_t)


@pytest.fixture(scope="module")
def tiny(data_dir):
    return torch.load(data_dir / "lsnet_tiny.pt", weights_only=True)


def test_reproduces_official_tiny_logits(tiny):
    model = LSNet(**tiny["config"]).eval()
    model.load_state_dict(tiny["state_dict"], strict=True)
    x = tiny["input"].float()
    for use_mkldnn in (None, False):
        opt = optimize_for_inference(model, use_mkldnn=use_mkldnn)
        with torch.inference_mode():
            assert _rel(opt(x), tiny["logits"]) <= TOL
            for i, feat in enumerate(opt.forward_stages(x)):
                assert _rel(feat, tiny["features"][f"stage{i + 1}"]) <= TOL


@pytest.mark.parametrize("shape", [(1, 3, 224, 224), (2, 3, 160, 160), (1, 3, 256, 192)],
                         ids=["224", "batch2-160", "256x192"])
def test_lsnet_t_matches_deploy_form(lsnet_t_pair, shape):
    fused, opt = lsnet_t_pair
    x = torch.randn(shape)
    with torch.inference_mode():
        assert _rel(opt(x), fused(x)) <= TOL
        for got, want in zip(opt.forward_stages(x), fused.forward_stages(x), strict=True):
            assert got.shape == want.shape
            assert got.is_contiguous(memory_format=torch.channels_last)  # no layout round trips inside
            assert _rel(got, want) <= TOL


def test_portable_path_without_onednn(lsnet_t, lsnet_t_pair):
    fused, _ = lsnet_t_pair
    opt = optimize_for_inference(lsnet_t, use_mkldnn=False)
    assert not any(getattr(m, "use_mkldnn", False) for m in opt.modules() if m is not opt)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert _rel(opt(x), fused(x)) <= TOL


def test_uses_onednn_where_available(lsnet_t_pair):
    _, opt = lsnet_t_pair
    assert opt.use_mkldnn == mkldnn_available()


def test_timm_style_api(lsnet_t_pair):
    fused, opt = lsnet_t_pair
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        feats = opt.forward_features(x)
        assert feats.shape == (1, 384, 4, 4)
        torch.testing.assert_close(opt.forward_head(feats, pre_logits=True),
                                   fused.forward_head(fused.forward_features(x), pre_logits=True),
                                   rtol=1e-4, atol=1e-5)
        last, picked = opt.forward_intermediates(x, indices=[1, 3])
        assert len(picked) == 2 and torch.equal(last, picked[-1])


def test_distilled_heads_are_averaged():
    model = _randomize_statistics(zoo.create_model("lsnet_t_distill", num_classes=7).eval())
    with torch.no_grad():
        torch.nn.init.normal_(model.head_dist.l.weight)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert _rel(optimize_for_inference(model)(x), reparameterize(model)(x)) <= TOL


def test_headless_model():
    model = zoo.create_model("lsnet_t", num_classes=0).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        out = optimize_for_inference(model)(x)
        assert out.shape == (1, 384)
        assert _rel(out, reparameterize(model)(x)) <= TOL


def test_argument_is_left_untouched_and_deploy_input_accepted(lsnet_t):
    before = {k: v.clone() for k, v in lsnet_t.state_dict().items()}
    optimize_for_inference(lsnet_t)
    after = lsnet_t.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert any(type(m).__name__ == "ConvBN" for m in lsnet_t.modules())
    fused = reparameterize(lsnet_t)
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert _rel(optimize_for_inference(fused)(x), fused(x)) <= TOL


def test_copy_and_pickle_repack_weights(lsnet_t_pair):
    _, opt = lsnet_t_pair
    x = torch.randn(1, 3, 224, 224)
    buf = io.BytesIO()
    torch.save(opt, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    with torch.inference_mode():
        want = opt(x)
        assert torch.equal(copy.deepcopy(opt)(x), want)
        assert torch.equal(loaded(x), want)


def test_ska_still_dispatches_through_the_op(lsnet_t_pair):
    _, opt = lsnet_t_pair
    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(str(func))
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Record():
        opt(torch.randn(1, 3, 224, 224))
    assert sum(name.startswith("zoo.ska") for name in seen) == 5  # lsnet_t: 1 + 4 LSConv blocks


def test_rejects_other_devices_and_models():
    with pytest.raises(ValueError, match="CPU"):
        optimize_for_inference(zoo.create_model("lsnet_t"), device="cuda")
    with pytest.raises(TypeError, match="LSNet"):
        optimize_for_inference(torch.nn.Conv2d(3, 3, 1))


def test_cpu_form_is_its_own_class(lsnet_t_pair):
    _, opt = lsnet_t_pair
    assert isinstance(opt, LSNetCPU) and not opt.training


# --- the zoo::ska CPU kernel: layouts, and fake (compile-time) strides equal to the real ones ---------------

@pytest.mark.parametrize("shape,groups", [((1, 128, 14, 14), 16), ((2, 24, 5, 9), 3), ((1, 16, 1, 1), 2)])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "strided"])
def test_ska_cpu_kernel_layouts(shape, groups, layout):
    b, c, h, w = shape
    x = torch.randn(shape, dtype=torch.float64)
    wt = torch.randn(b, groups, 9, h, w, dtype=torch.float64)
    want = ska_reference(x, wt)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
        wt = wt.permute(0, 3, 4, 1, 2).contiguous().permute(0, 3, 4, 1, 2)  # as GroupNorm leaves it
    elif layout == "strided":
        x = torch.randn(b, c, h, 2 * w, dtype=torch.float64)[..., ::2]
        want = ska_reference(x, wt)
    with torch.inference_mode():
        got = ska(x, wt)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode() as mode:
        fake = torch.ops.zoo.ska(mode.from_tensor(x), mode.from_tensor(wt))
    assert fake.stride() == got.stride()


def test_ska_decomposition_matches():
    x, w = torch.randn(2, 16, 6, 5), torch.randn(2, 2, 9, 6, 5)
    torch.testing.assert_close(ska_decomposition(x, w), ska_reference(x, w), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_compile_for_inference_matches_and_freezes(tiny):
    from torch._dynamo.utils import counters

    model = LSNet(**tiny["config"]).eval()
    model.load_state_dict(tiny["state_dict"], strict=True)
    x = tiny["input"].float()
    counters.clear()
    compiled = compile_for_inference(model)
    with torch.inference_mode():
        assert _rel(compiled(x), tiny["logits"]) <= TOL
        assert _rel(compiled(x), tiny["logits"]) <= TOL  # second call: no recompilation needed
    assert counters["stats"]["unique_graphs"] == 1
    if mkldnn_available():  # freezing really happened: the convolution weights were prepacked
        assert sum(v for k, v in counters["inductor"].items() if "weight_pack_matcher_count" in k) > 0


def test_unfold_baseline_definition_agrees():
    """The benchmark's 'official' SKA (unfold) and the op agree, so the baseline is the same function."""
    x, w = torch.randn(1, 64, 7, 7), torch.randn(1, 8, 9, 7, 7)
    b, c, h, wd = x.shape
    cols = F.unfold(x, 3, padding=1).view(b, c // 8, 8, 9, h, wd)
    torch.testing.assert_close((cols * w[:, None]).sum(3).view(b, c, h, wd), ska(x, w), rtol=1e-5, atol=1e-5)
