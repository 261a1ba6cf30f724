"""Effective receptive field: area ratios on hand-made maps, exact support of conv stacks, end to end."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lsbench import erf
from lsbench.errors import LsbenchError

# ------------------------------------------------------------------ area ratio on hand-made maps


def test_block_map_area_ratios_hand_derived():
    # 33x33 zeros with a centred 5x5 block of ones (rows/cols 14..18; the centre is 16).
    m = np.zeros((33, 33))
    m[14:19, 14:19] = 1.0
    m = erf.normalize_map(m)  # log10(2)/log10(2): still a block of ones
    np.testing.assert_array_equal(m[14:19, 14:19], 1.0)
    # i=1: 3x3 square holds 9/25 = 0.36 (> 0.2, > 0.3, < 0.5); i=2: 5x5 holds 25/25 = 1 (> 0.5, > 0.99).
    r = erf.area_ratios(m)
    assert r == {0.2: 9 / 33**2, 0.3: 9 / 33**2, 0.5: 25 / 33**2, 0.99: 25 / 33**2}
    assert erf.high_contribution_square(m, 0.5) == (5, 25 / 33**2)


def test_threshold_is_strict_and_search_starts_at_side_3():
    m = np.zeros((11, 11))
    m[5, 5] = 1.0  # everything in the centre pixel: RepLKNet's search still starts at i=1 (side 3)
    assert erf.high_contribution_square(m, 0.99) == (3, 9 / 121)
    u = np.ones((9, 9))  # uniform: 0.99 needs the full map (the search runs past RepLKNet's h//2 - 1 bound)
    assert erf.high_contribution_square(u, 0.99) == (9, 1.0)
    # 7x7 holds exactly 49/81; "more than" 49/81 needs the 9x9 square
    assert erf.high_contribution_square(u, 49 / 81)[0] == 9


def _brute_force_side(m: np.ndarray, t: float) -> int:
    """Independent search: smallest odd side s >= 3 whose centred square holds more than t of the total."""
    h, w = m.shape
    total = m.sum()
    for s in range(3, 2 * max(h, w) + 2, 2):
        half = s // 2
        sq = m[max(h // 2 - half, 0): h // 2 + half + 1, max(w // 2 - half, 0): w // 2 + half + 1]
        if sq.sum() / total > t:
            return s
    raise AssertionError


def _analytic_half_width(sigma: float, t: float) -> float:
    """Half-width a of the centred square holding fraction t of an isotropic Gaussian: erf(a/(sigma*sqrt2))^2 = t."""
    lo, hi = 0.0, 20 * sigma
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if math.erf(mid / (sigma * math.sqrt(2))) ** 2 < t else (lo, mid)
    return lo


@pytest.mark.parametrize("sigma", [3.0, 6.0])
def test_gaussian_map_matches_brute_force_and_analytic_bound(sigma):
    n = 129  # +-10 sigma at sigma 6: the truncation is negligible
    yy, xx = np.mgrid[:n, :n] - n // 2
    # amplitude 1e-6: log10(1 + x) is linear to 1e-6 relative, so the normalised map is the Gaussian itself
    raw = 1e-6 * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    m = erf.normalize_map(raw)
    np.testing.assert_allclose(m, raw / raw.max(), rtol=1e-5, atol=1e-9)  # far tails underflow to 0
    ratios = erf.area_ratios(m)
    for t in erf.DEFAULT_THRESHOLDS:
        side = _brute_force_side(m, t)
        assert ratios[t] == side**2 / n**2
        # the square of side s covers [-s/2, s/2] around the centre pixel's centre: a = s/2
        analytic_side = 2 * _analytic_half_width(sigma, t)
        smallest_odd = 2 * math.ceil((analytic_side - 1) / 2) + 1  # smallest odd side >= the continuous one
        assert abs(side - max(smallest_odd, 3)) <= 2, (t, side, analytic_side)  # within one step of i


def test_area_ratio_on_log_normalised_gaussian_matches_brute_force():
    # a large amplitude: the log flattens the peak, the ratios must follow the normalised map
    n, sigma = 65, 4.0
    yy, xx = np.mgrid[:n, :n] - n // 2
    m = erf.normalize_map(1e4 * np.exp(-(xx**2 + yy**2) / (2 * sigma**2)))
    for t, r in erf.area_ratios(m).items():
        assert r == _brute_force_side(m, t) ** 2 / n**2


def test_area_ratio_input_errors():
    with pytest.raises(LsbenchError):
        erf.area_ratios(np.ones((5, 5)), thresholds=(1.0,))
    with pytest.raises(LsbenchError):
        erf.area_ratios(np.ones(5))
    assert math.isnan(erf.area_ratios(np.zeros((5, 5)))[0.5])


# ------------------------------------------------------------------ exact support of conv stacks


class ConvStack(nn.Module):
    """k 3x3 convs (padding 1) with positive weights; stage i = output of conv i."""

    def __init__(self, k: int, width: int = 4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        convs = []
        for i in range(k):
            c = nn.Conv2d(3 if i == 0 else width, width, 3, padding=1, bias=False)
            with torch.no_grad():
                c.weight.copy_(0.5 + 0.5 * torch.rand(c.weight.shape, generator=g))
            convs.append(c)
        self.convs = nn.ModuleList(convs)

    def forward_stages(self, x):
        outs = []
        for c in self.convs:
            x = c(x)
            outs.append(x)
        return outs

    def forward_features(self, x):
        return self.forward_stages(x)[-1]


@pytest.mark.parametrize("k", [1, 3])
def test_conv_stack_erf_is_exactly_the_theoretical_field(k):
    images = torch.rand(2, 3, 64, 64)  # positive: every centre feature is positive
    m = erf.erf_maps(ConvStack(k), images, progress=False)["final"]
    assert m.shape == (64, 64)
    r = k  # support: rows/cols 32-k .. 32+k
    inside = np.zeros_like(m, dtype=bool)
    inside[32 - r:32 + r + 1, 32 - r:32 + r + 1] = True
    assert (m[~inside] == 0).all()
    assert (m[inside] > 0).all()  # border included
    assert m.max() == 1.0


def test_conv_stack_stage_maps_grow_by_one_pixel_per_conv():
    images = torch.rand(1, 3, 32, 32)
    maps = erf.erf_maps(ConvStack(3), images, layers=("final", 0, 1, 2), progress=False)
    for i in range(3):
        ys, xs = np.nonzero(maps[i])
        assert (ys.min(), ys.max(), xs.min(), xs.max()) == (15 - i, 17 + i, 15 - i, 17 + i)
    np.testing.assert_array_equal(maps["final"], maps[2])
    with pytest.raises(LsbenchError, match="stage 5"):
        erf.erf_maps(ConvStack(3), images, layers=(5,), progress=False)


def test_batching_does_not_change_the_map():
    images = torch.rand(3, 3, 32, 32)
    model = ConvStack(2)
    a = erf.erf_maps(model, images, progress=False, normalize=False)["final"]
    b = erf.erf_maps(model, images, progress=False, normalize=False, batch_size=3)["final"]
    np.testing.assert_allclose(a, b, rtol=1e-6)


def _reference_maps(model, images, layers):
    """The method computed the plain way, independently of erf_maps: for every image and every layer its
    own forward pass (forward_features or forward_stages) and its own backward, parameters left trainable."""
    model.eval()
    sums = {layer: torch.zeros(images.shape[-2:], dtype=torch.float64) for layer in layers}
    for img in images:
        for layer in layers:
            x = img[None].clone().requires_grad_(True)
            feat = model.forward_features(x) if layer == "final" else model.forward_stages(x)[layer]
            h, w = feat.shape[-2:]
            torch.nn.functional.relu(feat[:, :, h // 2, w // 2]).sum().backward()
            sums[layer] += torch.nn.functional.relu(x.grad).sum(1)[0].double()
    return {layer: erf.normalize_map((sums[layer] / len(images)).numpy()) for layer in layers}


@pytest.mark.parametrize("batch_size", [1, 2])
def test_shared_forward_gives_the_reference_maps_on_lsnet(batch_size):
    from zoo import create_model

    torch.manual_seed(0)
    model = create_model("lsnet_t")
    images = torch.randn(1, 3, 64, 64)
    layers = ["final", 0, 1, 2, 3]
    assert erf.final_stage(model, images[:1], layers) == 3  # LSNet: forward_features is the last stage
    new = erf.erf_maps(model, images, layers, batch_size=batch_size, progress=False, fuse=False,
                       stem_channels_last=False)
    ref = _reference_maps(model, images, layers)
    # one image per pass: the same numbers; batched kernels may round float32 sums differently (~1e-7)
    atol = 1e-9 if batch_size == 1 else 2e-6
    for layer in layers:
        np.testing.assert_allclose(new[layer], ref[layer], rtol=1e-6, atol=atol, err_msg=str(layer))
    assert all(p.requires_grad for p in model.parameters())  # restored after the frozen pass


def test_deploy_form_gives_the_same_maps_as_the_model_as_built():
    """The default path differentiates the re-parameterized copy. "Same" here: every normalised map (max 1)
    within 1e-5 of the unfused float32 map, both within 2e-6 of the unfused model's maps computed in float64
    (the unfused path is checked against the plain way above), and the same area ratios; the model handed in
    is left as it was."""
    import copy

    from zoo import create_model

    torch.manual_seed(0)
    model = create_model("lsnet_t")
    images = torch.randn(1, 3, 64, 64)
    layers = ["final", 0, 1, 2, 3]
    exact = erf.erf_maps(copy.deepcopy(model).double(), images.double(), layers, progress=False, fuse=False)
    fused = erf.erf_maps(model, images, layers, progress=False)
    unfused = erf.erf_maps(model, images, layers, progress=False, fuse=False)
    for layer in layers:
        np.testing.assert_allclose(fused[layer], unfused[layer], rtol=0, atol=1e-5, err_msg=str(layer))
        np.testing.assert_allclose(fused[layer], exact[layer], rtol=0, atol=2e-6, err_msg=str(layer))
        np.testing.assert_allclose(unfused[layer], exact[layer], rtol=0, atol=2e-6, err_msg=str(layer))
        assert erf.area_ratios(fused[layer]) == erf.area_ratios(unfused[layer])
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # not folded in place


@pytest.mark.parametrize("name", ["lsnet_t", "repvit_m0_9", "mobilenetv3_small_100"])
def test_channels_last_stem_gives_the_maps_of_the_stem_as_it_is(name):
    """The default stem layout is the same function: every map within 2e-6 of a float64 computation (as the
    contiguous stem is), the same area ratios, and the model left as it was (weights contiguous, no hooks)."""
    import copy

    from zoo import create_model

    torch.manual_seed(0)
    model = create_model(name).eval()
    stem = erf.find_stem(model)
    assert stem is not None and any(isinstance(m, nn.Conv2d) for m in stem.modules())
    images = torch.randn(1, 3, 64, 64)
    layers = ["final", 0, 1]
    exact = erf.erf_maps(copy.deepcopy(model).double(), images.double(), layers, progress=False, fuse=False,
                         stem_channels_last=False)
    as_is = erf.erf_maps(model, images, layers, progress=False, fuse=False, stem_channels_last=False)
    first_conv = next(m for m in stem.modules() if isinstance(m, nn.Conv2d))
    seen = []
    handle = first_conv.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))  # after pre-hooks
    with erf.channels_last_stem(model):
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in stem.parameters() if p.dim() == 4)
        out = stem(images)
    handle.remove()
    assert seen[0].is_contiguous(memory_format=torch.channels_last) and not seen[0].is_contiguous()
    assert out.is_contiguous()  # what follows the stem sees the layout it always saw
    channels_last = erf.erf_maps(model, images, layers, progress=False, fuse=False)
    for layer in layers:
        np.testing.assert_allclose(channels_last[layer], exact[layer], rtol=0, atol=2e-6, err_msg=str(layer))
        np.testing.assert_allclose(as_is[layer], exact[layer], rtol=0, atol=2e-6, err_msg=str(layer))
        assert erf.area_ratios(channels_last[layer]) == erf.area_ratios(as_is[layer])
    assert all(p.is_contiguous() for p in model.parameters())
    assert not stem._forward_hooks and not stem._forward_pre_hooks
    stem.to(memory_format=torch.channels_last)  # a stem that was channels-last stays so
    with erf.channels_last_stem(model):
        pass
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in stem.parameters() if p.dim() == 4)


def test_channels_last_stem_leaves_a_model_without_a_stem_alone():
    model = ConvStack(2)
    assert erf.find_stem(model) is None
    images = torch.rand(1, 3, 32, 32)
    with erf.channels_last_stem(model):
        assert all(p.is_contiguous() for p in model.parameters())
    np.testing.assert_array_equal(erf.erf_maps(model, images, ["final", 0, 1], progress=False)[0],
                                  erf.erf_maps(model, images, ["final", 0, 1], progress=False,
                                               stem_channels_last=False)[0])


def test_final_map_has_its_own_pass_when_forward_features_is_not_the_last_stage():
    class Headed(ConvStack):
        def forward_features(self, x):
            return self.forward_stages(x)[-1] * 2.0 + 1.0

    model = Headed(2)
    images = torch.rand(1, 3, 32, 32)
    assert erf.final_stage(model, images, ["final", 0, 1]) is None
    assert erf.final_stage(ConvStack(2), images, ["final", 0, 1]) == 1
    assert erf.final_stage(ConvStack(2), images, ["final", 0]) is None  # last stage not requested
    new = erf.erf_maps(model, images, ["final", 0, 1], progress=False)
    ref = _reference_maps(model, images, ["final", 0, 1])
    for layer in ref:
        np.testing.assert_allclose(new[layer], ref[layer], rtol=1e-6, atol=1e-9)


def test_one_stage_pass_per_batch_and_one_check_of_the_final_map():
    """The first batch's own stage outputs settle whether "final" is the last stage: per batch one
    forward_stages call, and forward_features once (the check), not once per batch."""
    calls = {"stages": 0, "features": 0}

    class Counted(ConvStack):
        def forward_stages(self, x):
            calls["stages"] += 1
            return super().forward_stages(x)

        def forward_features(self, x):
            calls["features"] += 1
            for conv in self.convs:
                x = conv(x)
            return x

    model, images = Counted(2), torch.rand(5, 3, 16, 16)
    outs = model.forward_stages(images[:1])
    assert erf.final_stage(model, images[:1], ["final", 0, 1], outs) == 1
    calls.update(stages=0, features=0)
    erf.erf_maps(model, images, ["final", 0, 1], batch_size=2, progress=False)
    assert calls == {"stages": 3, "features": 1}


def test_stage_outputs_fallbacks_and_error():
    import timm

    m = timm.create_model("test_efficientnet").eval()
    x = torch.randn(1, 3, 64, 64)
    via_intermediates = erf.stage_outputs(m, x)
    via_hooks = erf._hooked_stage_outputs(m, x)
    assert [t.shape for t in via_intermediates] == [t.shape for t in via_hooks]
    for a, b in zip(via_intermediates, via_hooks):
        torch.testing.assert_close(a, b)
    with pytest.raises(LsbenchError, match="per-stage"):
        erf.stage_outputs(nn.Conv2d(3, 3, 3), x)


# ------------------------------------------------------------------ images


def test_load_images_default_skimage_and_cycling():
    with pytest.warns(UserWarning, match="cycling"):
        im = erf.load_images(num_images=len(erf.SKIMAGE_IMAGES) + 2, size=32, seed=0)
    assert im.shape == (len(erf.SKIMAGE_IMAGES) + 2, 3, 32, 32)
    # crops of the same source differ from the source
    assert not torch.equal(im[0], im[len(erf.SKIMAGE_IMAGES)])
    with pytest.warns(UserWarning):
        again = erf.load_images(num_images=len(erf.SKIMAGE_IMAGES) + 2, size=32, seed=0)
    torch.testing.assert_close(im, again, rtol=0, atol=0)
    # ImageNet normalisation: values outside [0, 1]
    assert im.min() < 0 and im.max() > 1


def test_load_images_directory(tmp_path):
    from PIL import Image

    for i, colour in enumerate(["red", "green"]):
        Image.new("RGB", (40, 30), colour).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored")
    with pytest.warns(UserWarning, match="broken.jpg"):
        im = erf.load_images(tmp_path, num_images=None, size=16)
    assert im.shape == (2, 3, 16, 16)
    red = (1 - 0.485) / 0.229
    torch.testing.assert_close(im[0, 0], torch.full((16, 16), red), atol=1e-4, rtol=0)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LsbenchError, match="no image files"):
        erf.load_images(empty)
    with pytest.raises(LsbenchError, match="does not exist"):
        erf.load_images(tmp_path / "missing")


# ------------------------------------------------------------------ end to end on a tiny timm model


def test_erf_analysis_end_to_end_tiny_timm(tmp_path):
    images = erf.load_images(num_images=2, size=128)
    maps, table = erf.erf_analysis(["test_convnext"], images, stages=True, seed=0, progress=False)
    layers = ["final", "stage0", "stage1", "stage2", "stage3"]
    assert list(maps["test_convnext"]) == layers
    for m in maps["test_convnext"].values():
        assert m.shape == (128, 128)
        assert (m >= 0).all() and m.max() == pytest.approx(1.0)
    assert len(table) == len(layers) * 4
    assert set(table.columns) >= {"model", "layer", "threshold", "ratio", "weights", "size", "num_images"}
    assert (table.weights == "random init").all() and (table["size"] == 128).all() and (table.num_images == 2).all()
    assert table.ratio.between(0, 1).all()
    # per layer the ratio grows with the threshold
    for _, g in table.groupby("layer"):
        assert g.sort_values("threshold").ratio.is_monotonic_increasing
    # deterministic for a seed
    maps2, table2 = erf.erf_analysis(["test_convnext"], images, stages=False, seed=0, progress=False)
    np.testing.assert_array_equal(maps2["test_convnext"]["final"], maps["test_convnext"]["final"])
    # a checkpoint is recorded with its hash
    import timm

    torch.manual_seed(1)
    ckpt = tmp_path / "w.pth"
    torch.save(timm.create_model("test_convnext").state_dict(), ckpt)
    maps3, table3 = erf.erf_analysis(["test_convnext"], images, weights={"test_convnext": ckpt}, stages=False,
                                     progress=False)
    assert table3.weights.iloc[0].startswith(str(ckpt)) and len(table3.sha256.iloc[0]) == 64
    assert not np.array_equal(maps3["test_convnext"]["final"], maps["test_convnext"]["final"])


# ------------------------------------------------------------------ plots


def _fake_table(models, weights="random init", size=64, n=3):
    import pandas as pd

    rows = [dict(model=m, layer="final", threshold=t, side=3, ratio=0.01 * (k + 1), weights=weights, sha256=None,
                 size=size, num_images=n) for m in models for k, t in enumerate(erf.DEFAULT_THRESHOLDS)]
    return pd.DataFrame(rows)


def test_plot_erf_writes_png_and_svg_with_provenance_in_title(tmp_path):
    from lsbench.report.erf_plots import plot_erf

    m = erf.normalize_map(np.random.default_rng(0).random((64, 64)))
    paths = plot_erf(m, "lsnet_t final", tmp_path / "sub" / "erf.png", weights="random init", num_images=3)
    assert [p.name for p in paths] == ["erf.png", "erf.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text()
    assert "random init" in svg and "64×64" in svg and "3 images" in svg


def test_plot_erf_comparison_subtitles_carry_ratios_and_weights(tmp_path):
    from lsbench.report.erf_plots import plot_erf_comparison

    rng = np.random.default_rng(0)
    maps = {"a": {"final": rng.random((32, 32))}, "b": rng.random((32, 32))}
    table = _fake_table(["a", "b"], size=32)
    table.loc[table.model == "b", "weights"] = "ckpt.pth (sha256 0123456789ab)"
    paths = plot_erf_comparison(maps, table, tmp_path / "cmp")
    svg = paths[1].read_text()
    assert paths[0].stat().st_size > 0
    for text in ("random init", "ckpt.pth (sha256 0123456789ab)", "t=0.2: 0.010", "t=0.99: 0.040", "32×32",
                 "3 images"):
        assert text in svg, text
    with pytest.raises(LsbenchError, match="no rows"):
        plot_erf_comparison({"c": rng.random((8, 8))}, table, tmp_path / "x")
