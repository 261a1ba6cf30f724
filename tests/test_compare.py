"""Paired verdicts: the ratio CI on synthetic rounds with a known ratio, the stopping rule on synthetic timing
streams, the verdict sentences, and real comparisons of two small models through the CLI."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lsbench.cli import app
from lsbench.compare import (INTERRUPTED, MIN_ROUNDS, PRECISION, TIME_LIMIT, RatioCI, ratio_ci, run_rounds, should_stop,
                             verdict_from_rounds, verdict_line)
from lsbench.profile import ROUND_METRIC
from lsbench.results import ResultsStore

runner = CliRunner()


def _rounds(rng, n_rounds, n, drift, noise, scale=1.0):
    """Per-round samples: a shared per-round factor (the machine's episode), then per-sample noise."""
    return [list(scale * f * rng.lognormal(0, noise, n)) for f in drift]


def test_ratio_ci_contains_the_known_ratio_and_excludes_one():
    rng = np.random.default_rng(3)
    drift = rng.lognormal(0, 0.15, 8)  # rounds differ by ~15 %: the pairing must cancel it
    base = _rounds(rng, 8, 60, drift, 0.05)
    model = _rounds(rng, 8, 60, drift, 0.05, scale=1.3)
    ci = ratio_ci(model, base)
    assert ci.low <= 1.3 <= ci.high and ci.low > 1.0
    assert ci.rounds == 8
    # the point estimate is the ratio of the pooled medians, computed here independently
    assert ci.ratio == pytest.approx(np.median(np.concatenate(model)) / np.median(np.concatenate(base)))
    assert ratio_ci(model, base) == ci  # seeded: deterministic
    assert ratio_ci(model, base, seed=1) != ci


def test_ratio_ci_coverage_on_repeated_synthetic_experiments():
    """Over many synthetic experiments with a known ratio, the 95 % CI at 8 rounds holds it about 95 % of the
    time (an independent check of the interval, not of one draw)."""
    rng = np.random.default_rng(7)
    hits = 0
    for e in range(120):
        drift = rng.lognormal(0, 0.1, 8)
        base = _rounds(rng, 8, 15, drift * rng.lognormal(0, 0.03, 8), 0.05)
        model = _rounds(rng, 8, 15, drift * rng.lognormal(0, 0.03, 8), 0.05, scale=1.3)
        ci = ratio_ci(model, base, n_boot=400, seed=e)
        hits += ci.low <= 1.3 <= ci.high
    assert 0.85 <= hits / 120 <= 1.0


def test_pairing_cancels_round_drift():
    """The same rounds, unpaired (the baseline's rounds shuffled), give a much wider CI: pairing matters."""
    rng = np.random.default_rng(4)
    drift = rng.lognormal(0, 0.2, 10)
    base = _rounds(rng, 10, 40, drift, 0.03)
    model = _rounds(rng, 10, 40, drift, 0.03, scale=0.8)
    paired = ratio_ci(model, base)
    unpaired = ratio_ci(model, base[3:] + base[:3])
    assert paired.half_width < 0.03 < unpaired.half_width
    assert paired.low <= 0.8 <= paired.high


def test_ratio_ci_rejects_unpaired_or_empty_rounds():
    from lsbench.errors import LsbenchError

    with pytest.raises(LsbenchError, match="differ in number"):
        ratio_ci([[1.0]], [[1.0], [1.0]])
    with pytest.raises(LsbenchError, match="positive, finite"):
        ratio_ci([[1.0], []], [[1.0], [1.0]])


def test_should_stop_rule():
    narrow, wide = RatioCI(1.2, 1.19, 1.21, 5), RatioCI(1.2, 1.0, 1.4, 5)
    assert narrow.half_width == pytest.approx(0.01 / 1.2)
    assert should_stop([narrow], rounds=2, elapsed_s=100, precision=0.02, max_time_s=10, min_rounds=3) is None
    assert should_stop([narrow], rounds=3, elapsed_s=1, precision=0.02, max_time_s=10, min_rounds=3) == PRECISION
    assert should_stop([narrow], rounds=4, elapsed_s=1, precision=0.02, max_time_s=10) is None  # default min 5
    assert should_stop([narrow, wide], rounds=5, elapsed_s=1, precision=0.02, max_time_s=10) is None
    # another round of 2 s would end past the 10 s limit
    assert should_stop([wide], rounds=5, elapsed_s=8.5, precision=0.02, max_time_s=10, round_s=2) == TIME_LIMIT
    assert should_stop([wide], rounds=5, elapsed_s=7.5, precision=0.02, max_time_s=10, round_s=2) is None


class _SimulatedMachine:
    """Synthetic timing streams on a simulated clock: timing a round advances the clock by its samples."""

    def __init__(self, scales, noise, drift, seed=0):
        self.rng = np.random.default_rng(seed)
        self.scales, self.noise, self.drift = scales, noise, drift
        self.now = 0.0
        self.factor, self.order = 1.0, []

    def clock(self):
        return self.now

    def time_round(self, name):
        if not self.order or name == self.order[-1][0]:  # a new round starts: new machine episode
            self.factor = self.rng.lognormal(0, self.drift)
        self.order.append((name, len(self.order)))
        samples = list(self.scales[name] * self.factor * self.rng.lognormal(0, self.noise, 30))
        self.now += sum(samples)
        return samples


def test_narrow_stream_stops_on_precision():
    machine = _SimulatedMachine({"a": 0.01, "b": 0.013}, noise=0.02, drift=0.01)
    result = run_rounds(["a", "b"], machine.time_round, precision=0.02, max_time_s=100.0, clock=machine.clock)
    assert result.stopped_by == PRECISION
    assert result.rounds == MIN_ROUNDS  # the minimum: ±2 % is reached at once with 2 % noise
    assert result.cis["b"].half_width <= 0.02 and result.cis["b"].low <= 1.3 <= result.cis["b"].high
    # interleaved, the order rotating each round
    assert [n for n, _ in machine.order][:6] == ["a", "b", "b", "a", "a", "b"]


def test_wide_stream_hits_the_time_limit():
    machine = _SimulatedMachine({"a": 0.01, "b": 0.0101}, noise=0.4, drift=0.3)
    seen = []
    result = run_rounds(["a", "b"], machine.time_round, precision=0.005, max_time_s=10.0, clock=machine.clock,
                        on_round=lambda r, cis: seen.append(r))
    assert result.stopped_by == TIME_LIMIT
    assert result.elapsed_s <= 10.0 and result.rounds > MIN_ROUNDS
    assert seen == list(range(1, result.rounds + 1))
    assert result.cis["b"].half_width > 0.005


def test_interrupt_keeps_the_finished_rounds():
    machine = _SimulatedMachine({"a": 0.01, "b": 0.02}, noise=0.02, drift=0.01)
    calls = []

    def time_round(name):
        calls.append(name)
        if len(calls) == 7:  # Ctrl-C inside round 4
            raise KeyboardInterrupt
        return machine.time_round(name)

    result = run_rounds(["a", "b"], time_round, precision=0.001, max_time_s=100.0, clock=machine.clock)
    assert result.stopped_by == INTERRUPTED and result.rounds == 3
    assert all(len(s) == 3 for s in result.samples.values())
    assert "interrupted after 3 rounds" in verdict_line("a", "b", RatioCI(1.0, 0.9, 1.1, 3), 0.01, "", INTERRUPTED)
    with pytest.raises(KeyboardInterrupt):  # nothing finished to report yet
        run_rounds(["a", "b"], lambda n: (_ for _ in ()).throw(KeyboardInterrupt), 0.01, 100.0)


def test_verdict_sentences():
    where = "on AMD EPYC 7B13, 1 thread, batch 1"
    assert verdict_line("lsnet_t", "repvit_m0_9", RatioCI(1.32, 1.28, 1.36, 9), 0.02, where) == \
        "lsnet_t is 1.32× faster than repvit_m0_9 [1.28, 1.36] on AMD EPYC 7B13, 1 thread, batch 1"
    # the first model slower: the factor is the inverse ratio, its CI the inverted bounds
    assert verdict_line("a", "b", RatioCI(0.8, 0.78, 0.82, 9), 0.02, where).startswith(
        "a is 1.25× slower than b [1.22, 1.28]")
    assert "no difference detected at ±2 %" in verdict_line("a", "b", RatioCI(1.005, 0.99, 1.02, 9), 0.02, where)
    undecided = verdict_line("a", "b", RatioCI(1.01, 0.95, 1.07, 9), 0.02, where, TIME_LIMIT)
    assert undecided.startswith("undecided: a vs b") and "[0.950, 1.070]" in undecided
    assert undecided.endswith("stopped at the time limit")


def _invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_compare_two_small_models_through_the_cli(tmp_path):
    result = _invoke("compare", "mobilenetv3_small_100", "efficientvit_m0", "--resolution", "64",
                     "--repeats", "8", "--warmup", "2", "--max-time", "4", "--min-rounds", "3",
                     "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert rows["mobilenetv3_small_100"]["ratio_to_first"] == 1.0
    verdicts = [ln for ln in result.stderr.splitlines() if "efficientvit_m0" in ln]
    assert len(verdicts) == 1 and "mobilenetv3_small_100" in verdicts[0] and "1 thread, batch 1, 64 px" in verdicts[0]
    records = ResultsStore(tmp_path).records()
    latency = {r.model: r for r in records if r.metric == "latency"}
    (ratio,) = [r for r in records if r.metric == "latency_ratio"]
    # the ratio is the ratio of the two stored pooled medians
    assert ratio.value == pytest.approx(latency["efficientvit_m0"].value / latency["mobilenetv3_small_100"].value)
    assert ratio.extra["baseline"] == "mobilenetv3_small_100"
    assert ratio.extra["ci_low"] <= ratio.value <= ratio.extra["ci_high"]
    assert ratio.extra["rounds"] >= 3 and ratio.extra["stopped_by"] in (PRECISION, TIME_LIMIT)
    assert rows["efficientvit_m0"]["rounds"] == ratio.extra["rounds"]
    assert latency["efficientvit_m0"].stats["n"] == 8 * ratio.extra["rounds"]
    assert ratio.settings["resolution"] == 64 and ratio.settings["threads"] == 1
    assert ratio.settings["rounds"] == ratio.extra["rounds"]  # the rounds that ran
    assert latency["efficientvit_m0"].extra["form"]["fused"] is True
    assert latency["efficientvit_m0"].extra["threads_effective"]["threads"] == 1


def test_profile_ends_with_a_verdict_line(tmp_path):
    names = ["mobilenetv3_small_100", "efficientvit_m0"]
    result = _invoke("profile", "--models", ",".join(names), "--metrics", "latency", "--repeats", "5",
                     "--rounds", "3", "--warmup", "1", "--resolution", "64", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    last = [ln for ln in result.stdout.splitlines() if ln.strip()][-1]
    assert last.startswith("mobilenetv3_small_100 ") or last.startswith("undecided: mobilenetv3_small_100")
    assert "efficientvit_m0" in last and "batch 1, 64 px" in last
    records = ResultsStore(tmp_path).records()
    rounds = {(r.model, r.extra["round"]): r.extra["samples_s"] for r in records if r.metric == ROUND_METRIC}
    assert len(rounds) == 6
    ratio = np.median(np.concatenate([rounds[("efficientvit_m0", i)] for i in range(3)])) / \
        np.median(np.concatenate([rounds[("mobilenetv3_small_100", i)] for i in range(3)]))
    (line,) = verdict_from_rounds(records, names, records[0].job_key)
    assert line == last
    shown = ratio if "faster" in line else 1 / ratio
    assert f"{shown:.2f}×" in line or "undecided" in line or "no difference" in line


@pytest.mark.parametrize("args,fragment", [
    (["compare", "lsnet_t"], "at least 2 different models"),
    (["compare", "lsnet_t", "lsnet_t"], "at least 2 different models"),
    (["compare", "lsnet_t", "lsnet_tt"], "unknown model 'lsnet_tt'"),
    (["compare", "lsnet_t", "repvit_m0_9", "--precision", "0"], "precision must be between 0 and 1"),
    (["compare", "lsnet_t", "repvit_m0_9", "--max-time", "-1"], "max time must be positive"),
    (["compare", "lsnet_t", "repvit_m0_9", "--resolution", "16"], "resolution must be at least 32"),
    (["compare", "lsnet_t", "repvit_m0_9", "--format", "xml"], "unknown format 'xml'"),
    (["compare", "lsnet_t", "repvit_m0_9", "--device", "tpu"], "unknown device 'tpu'"),
])
def test_compare_bad_input_is_one_line_exit_2(args, fragment):
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
