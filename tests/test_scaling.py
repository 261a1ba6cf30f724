"""lsbench scale: the power-law fit, building at size, "not supported at N px", resume, and the CLI end to end.

Sweeps here are tiny (32-96 px, 1 timed call) so that they test the bookkeeping, not the machine's speed.
"""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from torch import nn

import zoo
from cli_helpers import run_cli
from lsbench.counting import model_flops
from lsbench.errors import LsbenchError
from lsbench.results import ResultsStore
from lsbench.scaling import (UNSUPPORTED, exponents_frame, fit_power_law, parse_sizes,
                             scale_settings, scale_sweep, sweep_points, takes_img_size, zoo_builder)

TINY = dict(warmup=0, repeats=1, rounds=1)


# ----------------------------------------------------------------------------------------- the fit

@pytest.mark.parametrize("exponent", [1.0, 2.0])
def test_fit_recovers_a_known_exponent_through_noise(exponent):
    rng = np.random.default_rng(0)
    pixels = np.array([224, 320, 448, 640, 896, 1024], dtype=float) ** 2
    cost = 3e-4 * pixels ** exponent * np.exp(rng.normal(0, 0.05, len(pixels)))  # 5 % multiplicative noise
    fit = fit_power_law(pixels, cost)
    assert fit.exponent == pytest.approx(exponent, abs=0.05)
    assert fit.n == 6 and fit.r2 > 0.99 and 0 < fit.stderr < 0.05


def test_fit_matches_a_hand_computed_line():
    # through (1, 3) and (4, 12): slope log(4)/log(4) = 1, coefficient 3
    fit = fit_power_law([1, 4], [3, 12])
    assert fit.exponent == pytest.approx(1.0) and fit.coefficient == pytest.approx(3.0)
    assert fit.stderr is None and fit.r2 == pytest.approx(1.0)
    # exact y = 2 x^2 over three points: slope 2, no residual
    exact = fit_power_law([10, 100, 1000], [200, 20000, 2e6])
    assert exact.exponent == pytest.approx(2.0, abs=1e-12) and exact.stderr == pytest.approx(0.0, abs=1e-9)
    assert exact.predict([50])[0] == pytest.approx(2 * 50 ** 2)


@pytest.mark.parametrize("x, y, fragment", [
    ([224], [1.0], "at least 2 points"),
    ([224, 224, 224], [1.0, 2.0, 3.0], "at least 2 distinct x values"),
    ([224, 320], [1.0, 0.0], "positive, finite"),
    ([224, 320], [1.0, float("nan")], "positive, finite"),
    ([-1, 320], [1.0, 2.0], "positive, finite"),
    ([1, 2, 3], [1.0, 2.0], "two equally long lists"),
])
def test_degenerate_fits_are_clear_errors(x, y, fragment):
    with pytest.raises(LsbenchError, match=fragment):
        fit_power_law(x, y)


def test_a_model_with_one_point_gets_no_exponent_and_says_why():
    import pandas as pd

    frame = pd.DataFrame([{"model": "m", "status": "ok", "pixels": 4096, "latency_ms": 1.0, "gmacs": 0.1,
                           "peak_memory_mib": 1.0, "built_at_size": False},
                          {"model": "m", "status": "not supported at 96 px", "pixels": 9216, "latency_ms": None,
                           "gmacs": None, "peak_memory_mib": None, "built_at_size": False}])
    exps = exponents_frame(frame, "resolution")
    assert exps["exponent"].isna().all() and (exps["points"] == 1).all()
    assert exps["note"].str.contains("at least 2 points").all()


# ----------------------------------------------------------------------------------------- inputs, sizes

def test_sizes_parse_and_the_sweep_is_a_cross():
    assert parse_sizes("224, 320,224", "--resolution") == [224, 320]
    with pytest.raises(LsbenchError, match="whole numbers"):
        parse_sizes("224,2.5", "--resolution")
    points = sweep_points(["a", "b"], [64, 96], [1, 4, 16])
    assert [(p.model, p.resolution, p.batch) for p in points] == [
        ("a", 64, 1), ("b", 64, 1), ("a", 96, 1), ("b", 96, 1), ("a", 64, 4), ("b", 64, 4), ("a", 64, 16),
        ("b", 64, 16)]
    assert {(p.resolution, p.batch) for p in sweep_points(["a"], [64, 96], [1, 2], batch_resolution=96)} == {
        (64, 1), (96, 1), (96, 2)}


def test_models_taking_img_size_are_built_at_size():
    assert takes_img_size(zoo.lsnet.LSNet) and not takes_img_size(nn.Conv2d)
    build = zoo_builder()
    with torch.device("meta"):
        mobilenet, at_size = build("mobilenetv3_small_100", 320)
        assert not at_size
        for side, grid in ((224, 4), (320, 5)):  # stage-4 grid: side/8 halved three times, rounding up
            model, at_size = build("lsnet_t", side)
            attention = [m for m in model.modules() if isinstance(m, zoo.lsnet.Attention)]
            assert at_size and attention and {a.resolution for a in attention} == {grid}


# ----------------------------------------------------------------------------------------- not supported

class FixedGridNet(nn.Module):
    """A real network with a learned position embedding for one input size (as a classic ViT has, built
    without an ``img_size`` argument): at any other size the embedding cannot be added."""

    def __init__(self, side: int = 64):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 8, stride=8)
        self.pos = nn.Parameter(torch.zeros(1, 8, side // 8, side // 8))
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head((self.stem(x) + self.pos).mean((2, 3)))


def fixed_grid_builder(name, resolution):
    return FixedGridNet(64).eval(), False


def test_a_size_the_model_cannot_run_is_a_row_not_a_crash(tmp_path):
    store = ResultsStore(tmp_path)
    run = scale_sweep(["fixed_grid"], [64, 96], [1], scale_settings("cpu", **TINY), store, build=fixed_grid_builder)
    rows = run.points.set_index("resolution")
    assert rows.loc[64, "status"] == "ok" and rows.loc[64, "latency_ms"] > 0
    # hand count: conv 8 out x 3 in x 8x8 kernel at an 8x8 grid, then the 8->10 head
    assert rows.loc[64, "gmacs"] == pytest.approx((8 * 3 * 64 * 64 + 8 * 10) / 1e9, rel=0.01)
    assert rows.loc[96, "status"] == "not supported at 96 px"
    assert "RuntimeError" in rows.loc[96, "reason"] and "size of tensor" in rows.loc[96, "reason"]
    failure = [r for r in store.records() if r.metric == UNSUPPORTED]
    assert len(failure) == 1 and not failure[0].partial and failure[0].extra["kind"] == "error"
    assert failure[0].settings["resolution"] == 96  # the point's settings travel with it
    again = scale_sweep(["fixed_grid"], [64, 96], [1], scale_settings("cpu", **TINY), store,
                        build=fixed_grid_builder)
    assert again.new == []  # a size error is final: not retried


def test_a_memory_refusal_is_a_row_and_is_retried(tmp_path):
    store = ResultsStore(tmp_path)
    side = 400_000  # the input batch alone is 1.9 TB
    run = scale_sweep(["mobilenetv3_small_100"], [side], [1], scale_settings("cpu", **TINY), store)
    (row,) = run.points.to_dict("records")
    assert row["status"] == f"not supported at {side} px" and "needs at least" in row["reason"]
    (refusal,) = store.records()
    assert refusal.partial and refusal.extra["kind"] == "memory"
    again = scale_sweep(["mobilenetv3_small_100"], [side], [1], scale_settings("cpu", **TINY), store)
    assert len(again.new) == 1  # what is free may change: a refusal is tried again


# ----------------------------------------------------------------------------------------- resume

def test_a_rerun_does_not_measure_stored_points(tmp_path):
    store = ResultsStore(tmp_path)
    settings = scale_settings("cpu", **TINY)
    started = []
    first = scale_sweep(["mobilenetv3_small_100"], [32, 48], [1, 2], settings, store, on_start=started.append)
    assert len(started) == 3 and len(first.points) == 3
    lines = store.path.read_text().count("\n")
    skipped = []
    # a longer sweep: the stored points are skipped, only the new resolution is measured
    second = scale_sweep(["mobilenetv3_small_100"], [32, 48, 64], [1, 2], settings, store,
                         on_start=started.append, on_skip=skipped.append)
    assert [(p.resolution, p.batch) for p in started[3:]] == [(64, 1)]
    assert sorted((p.resolution, p.batch) for p in skipped) == [(32, 1), (32, 2), (48, 1)]
    assert store.path.read_text().count("\n") > lines
    old = first.points.set_index(["resolution", "batch"])["latency_ms"]
    new = second.points.set_index(["resolution", "batch"])["latency_ms"]
    assert new.loc[(32, 1)] == old.loc[(32, 1)]  # read back, not re-measured
    # other settings are another sweep: nothing is skipped
    other = scale_sweep(["mobilenetv3_small_100"], [32], [1], settings.replace(repeats=2), store)
    assert len(other.new) > 0


# ----------------------------------------------------------------------------------------- CLI

def test_cli_end_to_end(tmp_path):
    out = tmp_path / "scaling"
    result = run_cli("scale", "--models", "mobilenetv3_small_100", "--resolution", "64,96", "--batch", "1,2",
                     "--warmup", "0", "--repeats", "1", "--rounds", "1", "--out", str(out), "--format", "csv")
    assert result.exit_code == 0, result.output
    for stem in ("scaling_latency_ms_vs_resolution", "scaling_gmacs_vs_resolution",
                 "scaling_peak_memory_mib_vs_resolution", "scaling_vs_batch"):
        for suffix in (".png", ".svg"):
            assert (out / f"{stem}{suffix}").stat().st_size > 1000
    for stem in ("scaling_points", "scaling_exponents"):
        for suffix in (".md", ".csv"):
            assert (out / f"{stem}{suffix}").is_file()
    with open(out / "scaling_points.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["resolution"], r["batch"], r["status"]) for r in rows] == [
        ("64", "1", "ok"), ("96", "1", "ok"), ("64", "2", "ok")]
    stored = {(r.settings["resolution"], r.settings["batch"]): r.value
              for r in ResultsStore(out).records() if r.metric == "macs"}
    for r in rows:  # the MACs are those `lsbench flops` counts at that size
        counts, _ = model_flops("mobilenetv3_small_100", ["fvcore"], int(r["resolution"]))
        assert stored[(int(r["resolution"]), int(r["batch"]))] == pytest.approx(counts[0].gmacs, rel=1e-9)
        assert float(r["gmacs"]) == round(counts[0].gmacs, 4)  # the table keeps 4 decimals
        assert r["built_at_size"] == "False" and int(r["threads"]) == 1
    with open(out / "scaling_exponents.csv") as fh:
        exps = {(e["metric"], e["against"]): e for e in csv.DictReader(fh)}
    macs = exps[("gmacs", "pixels")]
    expected = math.log(stored[(96, 1)] / stored[(64, 1)]) / math.log(96 ** 2 / 64 ** 2)
    assert float(macs["exponent"]) == pytest.approx(expected, abs=1e-3)
    assert ("throughput_img_s", "batch") in exps
