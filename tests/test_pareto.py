"""Pareto frontier on hand-made points; Pareto figures from measured and reported points."""
import pandas as pd
import pytest

from lsbench.errors import LsbenchError
from lsbench.report.pareto import measured_points, pareto_frontier, plot_pareto, reported_pareto_frame
from lsbench.results import Record, ResultsStore

GPU = {"device": "cuda", "batch": 2048, "dtype": "fp32", "fused": True, "preset": "lsnet"}
CPU = {"device": "cpu", "batch": 1, "dtype": "fp32", "threads": 1, "fused": True, "preset": "cpu"}


def _points(rows):
    return pd.DataFrame(rows, columns=["model", "x", "top1"])


def test_frontier_lower_is_better():
    pts = _points([("a", 1.0, 70.0), ("b", 2.0, 75.0), ("c", 3.0, 74.0), ("d", 2.0, 73.0), ("e", 4.0, 80.0),
                   ("f", 5.0, 80.0), ("nan", None, 90.0)])
    front = pareto_frontier(pts, "x", "top1", x_better="lower")
    assert list(front["model"]) == ["a", "b", "e"]


def test_frontier_higher_is_better():
    pts = _points([("t", 15000.0, 74.9), ("s", 9000.0, 77.8), ("b", 4000.0, 80.3), ("m4", 14000.0, 74.3),
                   ("t12", 2500.0, 79.1), ("m5", 9000.0, 77.0), ("twin", 9000.0, 77.8)])
    front = pareto_frontier(pts, "x", "top1", x_better="higher")
    assert list(front["model"]) == ["b", "s", "twin", "t"]  # identical points are both kept
    with pytest.raises(LsbenchError):
        pareto_frontier(pts, "x", "top1", x_better="faster")


def test_reported_frame_reproduces_the_lsnet_figure():
    pts = reported_pareto_frame()
    # every point of the LSNet figure but AFFNet's middle one (it matches no AFFNet model, see published.toml)
    assert set(pts["model"]) == {"lsnet_t", "lsnet_s", "lsnet_b", "efficientvit_m3", "efficientvit_m4",
                                 "efficientvit_m5", "fastvit_t8", "fastvit_t12", "fastvit_s12",
                                 "fasternet_t0", "fasternet_t1", "fasternet_t2", "mobilevit_xxs", "mobilevit_xs",
                                 "mobilevit_s", "edgenext_xx_small", "edgenext_x_small", "edgenext_small",
                                 "edgevit_xxs", "edgevit_xs", "affnet_et", "affnet"}
    t = pts.set_index("model")
    assert t.at["fastvit_t8", "top1"] == 75.6 and t.at["fastvit_t8", "top1_source"] == "figure"
    assert t.at["lsnet_t", "top1"] == 74.9 and t.at["lsnet_t", "top1_source"] == "registry"
    assert t.at["lsnet_t", "x"] == 14708 and (pts["source"] == "reported").all()
    with pytest.raises(LsbenchError, match="several protocols"):
        reported_pareto_frame("NVIDIA H200")
    assert len(reported_pareto_frame("NVIDIA H200", protocol="lsnet_short_fp16")) == 4


def test_plot_reported_writes_png_and_svg_with_every_label(tmp_path):
    paths = plot_pareto(None, "throughput", "NVIDIA RTX 3090", "LSNet protocol (fp32, batch 2048)", tmp_path,
                        source="reported")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.parent == tmp_path for p in paths)
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths[1].read_text(encoding="utf-8")
    for model in reported_pareto_frame()["model"]:
        assert f">{model}<" in svg, model
    assert "hollow: reported" in svg and "NVIDIA RTX 3090" in svg
    again = plot_pareto(None, "throughput", "NVIDIA RTX 3090", "LSNet protocol (fp32, batch 2048)",
                        tmp_path / "again.svg", source="reported")
    assert again[1].read_bytes() == paths[1].read_bytes()  # reproducible SVG (no date, fixed ids)


def _store(tmp_path, records):
    store = ResultsStore(tmp_path / "results")
    store.append(records)
    return store.frame()


def _gpu(model, value, gpu="NVIDIA H200", settings=GPU, time="2025-03-01T00:00:00+00:00"):
    return Record(model=model, metric="throughput", value=value, unit="img/s", settings=settings,
                  fingerprint={"gpu": {"name": gpu}}, time=time)


def test_plot_measured_and_refusals(tmp_path):
    models = {"lsnet_t": 40000.0, "lsnet_s": 30000.0, "efficientvit_m4": 46000.0, "repvit_m0_9": 16000.0}
    records = [_gpu(m, v) for m, v in models.items()]
    records.append(_gpu("lsnet_t", 45000.0, time="2025-03-02T00:00:00+00:00"))  # newest wins
    frame = _store(tmp_path, records)
    pts = measured_points(frame, "throughput", "NVIDIA H200")
    assert pts.set_index("model").at["lsnet_t", "x"] == 45000.0 and (pts["source"] == "measured").all()
    overlay = reported_pareto_frame("NVIDIA H200", protocol="lsnet_short")
    paths = plot_pareto(frame, "throughput", "NVIDIA H200", "preset lsnet, fp32, batch 2048",
                        tmp_path / "figs" / "h200.png", overlay=overlay)
    assert [p.name for p in paths] == ["h200.png", "h200.svg"] and all(p.exists() for p in paths)
    svg = paths[1].read_text(encoding="utf-8")
    for model in models:
        assert f">{model}<" in svg, model
    for model in overlay["model"]:  # reported twins of measured models say so in their label
        assert (f">{model} (reported)<" if model in models else f">{model}<") in svg, model
    assert "filled: measured here" in svg and "hollow: reported" in svg

    # one device only: "cuda" names both GPUs once an H100 run is in the results
    mixed = _store(tmp_path / "mixed", records + [_gpu("lsnet_t", 30000.0, gpu="NVIDIA H100 80GB HBM3")])
    with pytest.raises(LsbenchError, match="mix devices"):
        plot_pareto(mixed, "throughput", "cuda", "x", tmp_path / "bad")
    assert plot_pareto(mixed, "throughput", "NVIDIA H100 80GB HBM3", None, tmp_path / "h100")[0].exists()
    # one protocol only
    other = {**GPU, "batch": 256, "preset": "timm"}
    mixed = _store(tmp_path / "settings", records + [_gpu("lsnet_s", 20000.0, settings=other)])
    with pytest.raises(LsbenchError, match="mix 2 settings"):
        plot_pareto(mixed, "throughput", "NVIDIA H200", "x", tmp_path / "bad")
    # points given directly must be of one device too
    two = pd.concat([pts, pts.assign(device="NVIDIA H100", model="lsnet_b")], ignore_index=True)
    with pytest.raises(LsbenchError, match="mix devices"):
        plot_pareto(two, "throughput", "NVIDIA H200", "x", tmp_path / "bad")
    with pytest.raises(LsbenchError, match="no measured throughput on"):
        plot_pareto(frame, "throughput", "NVIDIA A100", "x", tmp_path / "bad")
    with pytest.raises(LsbenchError, match="unknown x metric"):
        plot_pareto(frame, "flops", "NVIDIA H200", "x", tmp_path / "bad")


def test_plot_measured_cpu_latency(tmp_path):
    records = [Record(model=m, metric="latency", value=v, unit="ms", settings=CPU,
                      fingerprint={"cpu_model": "Test CPU 9000"}, time="2025-03-01T00:00:00+00:00")
               for m, v in {"lsnet_t": 9.0, "lsnet_b": 25.0, "repvit_m1_1": 14.0, "fastvit_t8": 11.0}.items()]
    frame = _store(tmp_path, records)
    paths = plot_pareto(frame, "latency", "cpu", "1 thread, batch 1, fp32, fused", tmp_path)
    assert paths[0].name == "pareto_latency_test_cpu_9000.png"
    svg = paths[1].read_text(encoding="utf-8")
    assert all(f">{m}<" in svg for m in ("lsnet_t", "lsnet_b", "repvit_m1_1", "fastvit_t8"))
    assert "lower is better" in svg


def test_pareto_command_overlays_the_published_figures_on_the_measured_gpu(tmp_path):
    """`lsbench pareto --overlay`: the published H200 figures beside the measured H200 points."""
    from typer.testing import CliRunner

    from lsbench.cli import app

    models = {"lsnet_t": 40000.0, "efficientvit_m4": 46000.0, "repvit_m0_9": 16000.0}
    store = ResultsStore(tmp_path / "results")
    store.append([_gpu(m, v) for m, v in models.items()])
    out = tmp_path / "figs"
    result = CliRunner().invoke(app, ["pareto", "--results", str(tmp_path / "results"), "--device", "NVIDIA H200",
                                      "--metric", "throughput", "--overlay", "--protocol", "lsnet_short",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    svg = (out / "pareto_throughput_nvidia_h200.svg").read_text(encoding="utf-8")
    published = reported_pareto_frame("NVIDIA H200", protocol="lsnet_short")
    assert set(models) & set(published["model"]), "the overlay must share models with the measurement"
    for model in published["model"]:
        assert (f">{model} (reported)<" if model in models else f">{model}<") in svg, model
    assert "hollow: reported" in svg and "filled: measured here" in svg
    # a device without published figures: a one-line refusal, and no folder made for nothing
    cpu = tmp_path / "cpu"
    ResultsStore(cpu).append([Record(model="lsnet_t", metric="latency", value=9.0, unit="ms", settings=CPU,
                                     fingerprint={"cpu_model": "Test CPU 9000"})])
    refused = CliRunner().invoke(app, ["pareto", "--results", str(cpu), "--device", "cpu", "--overlay",
                                       "--out", str(tmp_path / "never")], catch_exceptions=False)
    assert refused.exit_code == 2 and "no published latency on Test CPU 9000" in refused.stderr
    assert not (tmp_path / "never").exists()


def test_energy_per_image_is_an_x_axis(tmp_path):
    records = [Record(model=m, metric="energy_per_image", value=v, unit="J/img", settings=GPU,
                      fingerprint={"gpu": {"name": "NVIDIA H200"}}, time="2025-03-01T00:00:00+00:00")
               for m, v in {"lsnet_t": 0.010, "repvit_m0_9": 0.021, "efficientvit_m4": 0.008}.items()]
    points = measured_points(_store(tmp_path, records), "energy_per_image", "NVIDIA H200")
    assert set(points["unit"]) == {"J/img"}
    frontier = pareto_frontier(points, "x", "top1", x_better="lower")
    assert "efficientvit_m4" in set(frontier["model"])  # the least energy is never dominated
    assert frontier["top1"].is_monotonic_increasing  # along lower energy -> more energy, top-1 must rise
    paths = plot_pareto(points, "energy_per_image", "NVIDIA H200", None, tmp_path / "energy")
    assert "Energy per image" in paths[1].read_text(encoding="utf-8")


def test_pareto_command_resolves_cpu_to_the_cpu_that_ran(tmp_path):
    from typer.testing import CliRunner

    from lsbench.cli import app

    store = ResultsStore(tmp_path / "results")
    store.append([Record(model=m, metric="latency", value=v, unit="ms", settings=CPU,
                         fingerprint={"cpu_model": "Test CPU 9000"}) for m, v in {"lsnet_t": 9.0, "lsnet_b": 25.0}.items()])
    result = CliRunner().invoke(app, ["pareto", "--results", str(tmp_path / "results"), "--device", "cpu",
                                      "--out", str(tmp_path / "figs")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figs" / "pareto_latency_test_cpu_9000.png").is_file()


CPU16 = {"device": "cpu", "batch": 16, "resolution": 224, "dtype": "fp32", "threads": 1, "fused": True,
         "preset": "cpu"}


def _cpu_throughput(model, value):
    return Record(model=model, metric="throughput", value=value, unit="img/s", settings=CPU16,
                  fingerprint={"cpu_model": "Test CPU 9000"}, time="2026-12-01T00:00:00+00:00")


def test_measured_beside_published_is_built_from_the_records(tmp_path):
    """The measured panel's points are the stored records' values (top-1 from the cards), the published panel
    is the LSNet figure, and the reported-only models (no code) are hollow, published, never measured."""
    import zoo
    from matplotlib.colors import to_rgba

    from lsbench.report.pareto import beside_published_figure, beside_published_points, plot_beside_published

    stored = {"lsnet_t": 61.5, "lsnet_b": 20.25, "fasternet_t0": 80.0, "edgenext_small": 17.0}
    frame = _store(tmp_path, [_cpu_throughput(m, v) for m, v in stored.items()]
                   + [_cpu_throughput("repvit_m0_9", 50.0)])  # measured but not in the LSNet figure: left out
    pts = beside_published_points(frame, "cpu")
    measured = pts[pts["panel"] == "measured"].set_index("model")
    assert dict(measured["x"]) == stored and (measured["source"] == "measured").all()
    for model in stored:
        assert measured.at[model, "top1"] == zoo.get_card(model).published("top1")
    only = pts[pts["panel"] == "reported_only"].set_index("model")
    assert set(only.index) == {"edgevit_xxs", "edgevit_xs", "affnet_et", "affnet"}
    assert (only["source"] == "reported").all() and only.at["edgevit_xxs", "x"] == 3670.0  # its RTX 3090 figure
    published = pts[pts["panel"] == "published"]
    assert len(published) == 22 and (published["source"] == "reported").all()
    assert pts.attrs["device"] == "Test CPU 9000" and "lsnet_s" in pts.attrs["not_measured"]

    fig, _ = beside_published_figure(pts)
    left, right, strip = fig.axes[:3]

    def drawn(ax):
        out = []
        for c in ax.collections:
            (x, y), face = c.get_offsets()[0], c.get_facecolors()
            out.append((float(x), float(y), len(face) > 0 and face[0][3] > 0))
        return out

    assert sorted((x, y) for x, y, _ in drawn(right)) == sorted(
        (v, zoo.get_card(m).published("top1")) for m, v in stored.items())
    assert all(filled for *_, filled in drawn(right))  # measured: filled
    assert not any(filled for *_, filled in drawn(left))  # the published figure: hollow
    assert sorted(y for _, y, _ in drawn(strip)) == sorted(only["top1"])
    assert not any(filled for *_, filled in drawn(strip))
    assert to_rgba(strip.collections[0].get_edgecolors()[0]) != to_rgba("none")
    paths = plot_beside_published(pts, tmp_path / "figs" / "beside")
    svg = paths[1].read_text(encoding="utf-8")
    assert "not measured" in svg and "Test CPU 9000" in svg and "NVIDIA RTX 3090" in svg
    assert all(f">{m}<" in svg for m in [*stored, *only.index])
    assert ">repvit_m0_9<" not in svg


def test_noxfile_measures_every_buildable_model_of_the_lsnet_figure():
    import ast
    from pathlib import Path

    from lsbench.report.pareto import figure_models

    tree = ast.parse((Path(__file__).parents[1] / "noxfile.py").read_text())
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    buildable, reported_only = figure_models()
    assert values["LSNET_FIGURE_MODELS"].split(",") == buildable
    assert set(reported_only) == {"edgevit_xxs", "edgevit_xs", "affnet_et", "affnet"}
