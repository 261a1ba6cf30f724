"""The registry's published data: every citation names a public, checkable source; reported-only cards and
figure-read numbers behave as documented; the new comparison families carry their sources' figures."""
import re
import tomllib
from importlib import resources

import pytest

from zoo import ZooError, create_model, get_card, list_models

DATA = tomllib.loads(resources.files("zoo").joinpath("published.toml").read_text())
CITATIONS = DATA["citations"]

ARXIV = re.compile(r"\barXiv:\d{4}\.\d{4,5}\b")
REPO_AT_COMMIT = re.compile(r"\bgithub\.com/[\w.-]+/[\w.-]+@[0-9a-f]{7,40}\b")
REPO = re.compile(r"\bgithub\.com/[\w.-]+/[\w.-]+")


def public_source(text: str) -> bool:
    """A citation is checkable by anyone: it names an arXiv id or a public repository (file at a commit),
    and no path outside this repository (the team's shared notes)."""
    if "shared/" in text or "lsnet-facts" in text:
        return False
    return bool(ARXIV.search(text) or REPO_AT_COMMIT.search(text) or REPO.search(text))


@pytest.mark.parametrize("key", sorted(CITATIONS))
def test_every_citation_names_a_public_source(key):
    assert public_source(CITATIONS[key]), (key, CITATIONS[key])


@pytest.mark.parametrize("text, ok", [
    ("Exact GMACs (shared/lsnet-facts.md §1, gathered from github.com/THU-MIG/lsnet@cbe737c)", False),
    ("lsbench team measurements on an H200", False), ("README of the LSNet repository", False),
    ("Wang et al., CVPR 2025, arXiv:2503.23135", True), ("README.md of github.com/THU-MIG/lsnet@cbe737c", True),
])
def test_the_public_source_rule_itself(text, ok):
    assert public_source(text) is ok


def test_measured_citations_say_what_where_with_which_versions_and_when():
    for key in ("team_h200", "official_counts", "lsnet_exact", "efficientformerv2_counts"):
        text = CITATIONS[key]
        assert REPO_AT_COMMIT.search(text), key  # which code
        assert re.search(r"\b(torch|fvcore) \d", text), key  # which versions
    assert "NVIDIA H200" in CITATIONS["team_h200"] and "2026-12-01" in CITATIONS["team_h200"]
    assert "2026-12-01" in CITATIONS["official_counts"] and "2026-12-01" in CITATIONS["efficientformerv2_counts"]


def test_every_protocol_used_is_described_and_every_described_one_used():
    used = {f["protocol"] for m in DATA["models"].values() for f in m.get("figures", ()) if "protocol" in f}
    assert used == set(DATA["protocols"])


def test_reported_only_cards_are_listed_on_request_and_never_built():
    reported = set(list_models(include_reported=True)) - set(list_models())
    assert reported == {"edgevit_xxs", "edgevit_xs", "affnet_et", "affnet_t", "affnet"}
    for name in reported:
        assert get_card(name).reported_only and get_card(name).source == "reported"
    with pytest.raises(ZooError, match="reported-only card .*no code"):
        create_model("affnet")
    assert list_models("AFFNet") == [] and list_models("AFFNet", include_reported=True) == [
        "affnet_et", "affnet_t", "affnet"]


def test_numbers_read_off_a_figure_are_marked():
    for name in list_models(include_reported=True):
        for fig in get_card(name).figures:
            assert fig.from_figure == (fig.cite == "lsnet_figure"), (name, fig)
    fig = get_card("fasternet_t2").figure("throughput", device="NVIDIA RTX 3090")
    assert (fig.value, fig.from_figure, fig.note) == (4603, True, "LSNet figure plots top-1 78.9")
    assert not get_card("lsnet_t").figure("throughput", device="NVIDIA RTX 3090").from_figure


def test_reported_pareto_frame_includes_the_hollow_reported_only_families():
    from lsbench.report.pareto import reported_pareto_frame

    points = reported_pareto_frame("NVIDIA RTX 3090", protocol="lsnet")
    families = set(points["family"])
    assert {"LSNet", "EfficientViT", "FastViT", "FasterNet", "MobileViT", "EdgeNeXt", "EdgeViT",
            "AFFNet"} <= families
    assert set(points["source"]) == {"reported"}  # drawn hollow
    edgevit = points.set_index("model").loc["edgevit_xs"]
    assert (edgevit["x"], edgevit["top1"], edgevit["top1_source"]) == (2740.0, 77.5, "figure")


# published figures as they stand in each source (README tables at the cited commits)
@pytest.mark.parametrize("name, metric, value", [
    ("fasternet_t0", "top1", 71.9), ("fasternet_t1", "params", 7.6), ("mobilevit_xs", "top1", 74.7),
    ("mobilevitv2_100", "top1", 78.09), ("edgenext_small", "params", 5.59), ("mobilenetv4_conv_medium", "top1", 79.916),
    ("starnet_s3", "macs", 0.757), ("shvit_s4", "top1", 79.4), ("mobileone_s1", "top1", 75.9), ("affnet", "macs", 1.5),
])
def test_published_figures_of_the_new_families(name, metric, value):
    assert get_card(name).published(metric) == value


def test_mismatching_source_figures_follow_a_matching_one_with_the_reason():
    """Where the count made here cannot round to the source's figure, the card puts a figure it does round
    to first (the official code's own count, or the implementation's) and explains the source's figure."""
    for name, metric in (("fasternet_t2", "macs"), ("edgenext_xx_small", "macs"), ("edgenext_x_small", "macs"),
                         ("starnet_s4", "macs"), ("shvit_s2", "params"),
                         *((f"efficientformerv2_{v}", m) for v in ("s0", "s1", "s2", "l") for m in ("params", "macs"))):
        counts = ("official_counts", "timm_results", "efficientformerv2_counts")
        figs = [f for f in get_card(name).figures if f.metric == metric]
        assert len(figs) >= 2 and figs[0].cite in counts, name
        paper = next(f for f in figs[1:] if f.cite not in counts)
        assert paper.note and re.search(r"official code", paper.note), name


# README.md of snap-research/EfficientFormer@d01da42: Top-1 (300/450) | #params | MACs | Latency (iPhone 12)
EFFICIENTFORMERV2_README = {
    "s0": ("75.7", "76.2", "3.5", "0.40", "0.9"), "s1": ("79.0", "79.7", "6.1", "0.65", "1.1"),
    "s2": ("81.6", "82.0", "12.6", "1.25", "1.6"), "l": ("83.3", "83.5", "26.1", "2.56", "2.7"),
}


@pytest.mark.parametrize("variant", sorted(EFFICIENTFORMERV2_README))
def test_efficientformerv2_cards_carry_the_readme_figures(variant):
    """Each card has the README's figures as written (trailing zeros kept), cited to the paper + repository at
    its commit; the README's params/MACs follow the exact count of the official code, which comes first."""
    from decimal import Decimal

    top1, top1_450, params, macs, latency = EFFICIENTFORMERV2_README[variant]
    card = get_card(f"efficientformerv2_{variant}")
    assert (card.family, card.source, card.input_size) == ("EfficientFormerV2", "timm", 224)
    readme = {f.metric: f for f in card.figures if f.cite == "efficientformerv2"}
    assert {m: str(f.written) for m, f in readme.items()} == {"top1": top1, "params": params, "macs": macs,
                                                               "latency": latency}
    assert f"450 epochs: {top1_450}" in readme["top1"].note and "distilled" in readme["top1"].note
    assert (readme["latency"].device, readme["latency"].protocol) == ("iPhone 12", "coreml_iphone12_xcode14")
    assert "iOS 16" in DATA["protocols"]["coreml_iphone12_xcode14"]
    assert "Xcode 14" in DATA["protocols"]["coreml_iphone12_xcode14"]
    for metric in ("params", "macs"):
        first = next(f for f in card.figures if f.metric == metric)
        assert first.cite == "efficientformerv2_counts" and "toolbox.py" in readme[metric].note
    cite = CITATIONS["efficientformerv2"]
    assert "arXiv:2212.08059" in cite and "github.com/snap-research/EfficientFormer@d01da42" in cite
    # the notes' claim: toolbox.py's own count rounds to the README's MACs for S0-S2, not for L
    from lsbench.report.flags import within_rounding
    toolbox = float(re.search(r"avg-pool\): ([\d.]+) G", readme["macs"].note).group(1))
    assert within_rounding(toolbox, readme["macs"].written) is (variant != "l")
    assert isinstance(readme["macs"].written, Decimal)


def test_digits_keep_the_written_precision_a_toml_float_drops():
    """FasterNet-T2's "1.90G" is stored as 1.9 with digits = 2: the measurement (1.9106 G, fvcore on the
    official code) rounds to 1.9 but not to 1.90, so the table must flag the paper's figure, with its note."""
    from decimal import Decimal

    from lsbench.report.flags import within_rounding
    from lsbench.report.tables import deterministic_table
    from zoo.registry import Figure

    paper = next(f for f in get_card("fasternet_t2").figures if f.metric == "macs" and f.cite == "fasternet")
    assert paper.written == Decimal("1.90") and str(paper.written) == "1.90"
    assert within_rounding(1.9106, paper.value) and not within_rounding(1.9106, paper.written)
    assert Figure("macs", 0.3, "G", "lsnet").written == Decimal("0.3")  # no digits: the value as written
    assert Figure("throughput", 14708, "img/s", "lsnet").written == Decimal(14708)
    for bad in (0, 13, 1.5, True):  # fewer decimals than the value has, too many, not an integer
        with pytest.raises(RuntimeError, match="digits must be an integer"):
            Figure("macs", 1.91, "G", "fasternet", digits=bad)
    row = deterministic_table(["fasternet_t2"]).iloc[0]
    assert "fasternet 1.90 G: ✗ 1.911 vs 1.90" in row["macs_note"]
