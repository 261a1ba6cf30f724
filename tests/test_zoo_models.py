"""Every registry model: builds, runs at batch 1, keeps its outputs when reparameterized, and round-trips
its state_dict; the registry's published figures and name handling."""
import pytest
import torch

import zoo
from zoo import ZooError, create_model, get_card, list_models, reparameterize

ALL = list_models()


def test_registry_covers_the_benchmarked_models():
    expected = {"lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill", "lsnet_s_distill", "lsnet_b_distill",
                *(f"efficientvit_m{i}" for i in range(6)),
                "repvit_m0_9", "repvit_m1_0", "repvit_m1_1", "repvit_m1_5", "repvit_m2_3",
                "mobilenetv3_small_100", "mobilenetv3_large_100",
                *(f"fastvit_{v}" for v in ("t8", "t12", "s12", "sa12", "sa24", "sa36", "ma36")),
                *(f"fasternet_{v}" for v in ("t0", "t1", "t2")),
                "mobilevit_xxs", "mobilevit_xs", "mobilevit_s",
                *(f"mobilevitv2_{v}" for v in ("050", "075", "100", "125", "150")),
                "edgenext_xx_small", "edgenext_x_small", "edgenext_small",
                *(f"mobilenetv4_conv_{v}" for v in ("small", "medium", "large")),
                *(f"starnet_s{i}" for i in range(1, 5)), *(f"shvit_s{i}" for i in range(1, 5)),
                *(f"mobileone_s{i}" for i in range(5)),
                *(f"efficientformerv2_{v}" for v in ("s0", "s1", "s2", "l"))}
    assert set(ALL) == expected


@pytest.mark.parametrize("name", ALL)
def test_build_forward_reparameterize_and_round_trip(name):
    card = get_card(name)
    model = create_model(name).eval()
    # non-trivial BN statistics so that folding is really checked
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            torch.nn.init.uniform_(m.running_var, 0.5, 2.0)
    x = torch.randn(1, 3, card.input_size, card.input_size)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 1000) and torch.isfinite(out).all()
        fused = reparameterize(model)
        out_fused = fused(x)
    assert float((out_fused - out).abs().max() / out.abs().max()) <= 1e-5
    if card.published("params") is not None and card.family != "FastViT":
        measured = sum(p.numel() for p in fused.parameters()) / 1e6
        # where the card says the paper counts the deployed model with one head (EfficientFormerV2's counts both)
        if hasattr(fused, "head_dist") and "one head" in (card.figure("params").note or ""):
            measured -= sum(p.numel() for p in fused.head_dist.parameters()) / 1e6
        # published params (deploy form) match within the rounding of the published figure
        assert abs(measured - card.published("params")) <= 0.05 + 1e-9, measured
    again = create_model(name)
    again.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), out)


def test_every_published_figure_is_cited():
    for name in ALL:
        for fig in get_card(name).figures:
            assert zoo.registry.citation(fig.cite)
            if fig.protocol:
                assert zoo.registry.protocol_description(fig.protocol)
            if fig.metric in ("latency", "throughput"):
                assert fig.device, (name, fig)


def test_published_lsnet_figures():
    assert get_card("lsnet_t").published("top1") == 74.9
    assert get_card("lsnet_b_distill").published("top1") == 81.6
    fig = get_card("lsnet_t").figure("throughput", device="NVIDIA RTX 3090")
    assert (fig.value, fig.protocol) == (14708, "lsnet")
    assert get_card("fastvit_t8").input_size == 256


def test_adhoc_timm_model():
    card = get_card("resnet18")
    assert card.adhoc and card.source == "timm" and card.figures == ()
    model = create_model("resnet18", num_classes=4)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4)


def test_unknown_names_suggest_close_ones():
    with pytest.raises(ZooError) as err:
        get_card("lsnet_tt")
    assert str(err.value) == "unknown model 'lsnet_tt'; did you mean lsnet_t, lsnet_s, lsnet_b, lsnet_t_distill?"
    with pytest.raises(ZooError, match="did you mean repvit_m0_9"):
        create_model("repvit_m09")


def test_bad_constructor_arguments_are_a_zoo_error():
    with pytest.raises(ZooError, match="bad model arguments"):
        create_model("lsnet_t", not_an_option=3)
