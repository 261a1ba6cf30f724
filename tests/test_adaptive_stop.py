"""Adaptive stopping of CPU timing: the order-statistic CI of the median against exact binomial arithmetic
and against the median's known asymptotic spread, the stopping rule on synthetic timing streams, and a real
sweep whose records say why each model stopped."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from lsbench.profile import ROUND_METRIC, profile_sweep
from lsbench.results import ResultsStore
from lsbench.settings import get_preset
from lsbench.timing import CAP, FIXED, PRECISION, median_ci, median_half_width, stop_reason

from cli_helpers import run_cli


def _exact_rank(n: int, confidence: float) -> int:
    """Largest k with P(B <= k-1) <= (1-confidence)/2, B ~ Binomial(n, 1/2), in exact rational arithmetic."""
    alpha_half = Fraction(1 - Fraction(confidence).limit_denominator(10_000)) / 2
    k, tail = 0, Fraction(0)
    while k < n // 2:
        tail += Fraction(math.comb(n, k), 2 ** n)
        if tail > alpha_half:
            break
        k += 1
    return k


def test_order_statistic_ci_by_hand():
    # n = 20: P(B <= 5) = (1 + 20 + 190 + 1140 + 4845 + 15504) / 2**20 = 0.0207 <= 0.025 < P(B <= 6) = 0.0577,
    # so the 95 % CI is [x(6), x(15)] (the textbook ranks for n = 20)
    rng = np.random.default_rng(0)
    values = rng.permutation(np.arange(1.0, 21.0))
    assert median_ci(values) == (6.0, 15.0)
    assert median_half_width(values) == pytest.approx((15 - 6) / 2 / 10.5)
    # n = 100: ranks 40 and 61 (the textbook table)
    assert median_ci(rng.permutation(np.arange(1.0, 101.0))) == (40.0, 61.0)
    # n <= 5: even [min, max] covers only 1 - 2 / 2**n < 95 %: no finite interval
    assert median_ci([1.0, 2.0, 3.0, 4.0, 5.0]) == (-math.inf, math.inf)
    assert median_half_width([1.0, 2.0, 3.0, 4.0, 5.0]) == math.inf


@pytest.mark.parametrize("n", [6, 7, 9, 17, 30, 31, 90, 240, 301])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_order_statistic_ranks_match_exact_binomial(n, confidence):
    k = _exact_rank(n, confidence)
    values = np.random.default_rng(n).permutation(np.arange(1.0, n + 1.0))
    expected = (float(k), float(n + 1 - k)) if k else (-math.inf, math.inf)
    assert median_ci(values, confidence) == expected


def test_ci_covers_and_matches_the_asymptotic_width_on_a_known_distribution():
    # lognormal(0, s): true median 1, density there 1 / (s sqrt(2 pi)); the median's standard error is
    # 1 / (2 f sqrt(n)), so the 95 % half-width is about 1.96 s sqrt(2 pi) / (2 sqrt(n)) relative to 1
    s, n, reps = 0.05, 400, 400
    rng = np.random.default_rng(20261201)
    covered, widths = 0, []
    for _ in range(reps):
        x = rng.lognormal(0.0, s, size=n)
        low, high = median_ci(x)
        covered += low <= 1.0 <= high
        widths.append(median_half_width(x))
    assert covered / reps >= 0.93  # exact CI: >= 95 % in theory; 400 repetitions leave ~1 % of noise
    expected = 1.96 * s * math.sqrt(2 * math.pi) / (2 * math.sqrt(n))
    assert np.mean(widths) == pytest.approx(expected, rel=0.08)


def _stream(sigma: float, seed: int, per_round: int = 30, median_s: float = 0.01):
    """Rounds of timing samples: lognormal around ``median_s`` with relative spread ``sigma``."""
    rng = np.random.default_rng(seed)
    while True:
        yield list(median_s * rng.lognormal(0.0, sigma, size=per_round))


def _run_until_stop(stream, **rule):
    rounds = []
    while (reason := stop_reason(rounds, **rule)) is None:
        rounds.append(next(stream))
        assert len(rounds) <= rule["max_rounds"]
    return reason, rounds


def test_low_noise_stream_stops_early_on_precision():
    rule = dict(precision=0.01, min_rounds=3, max_rounds=8)
    reason, rounds = _run_until_stop(_stream(0.02, seed=1), **rule)
    # 90 samples of 2 % spread: half-width ~ 1.96 * 0.02 * 1.2533 / sqrt(90) ~ 0.5 %, but never before round 3
    assert reason == PRECISION and len(rounds) == 3
    assert median_half_width([s for r in rounds for s in r]) <= 0.01
    assert stop_reason(rounds[:2], **rule) is None  # precise already, yet interleaving needs 3 rounds


def test_heavy_noise_stream_hits_the_cap():
    rule = dict(precision=0.01, min_rounds=3, max_rounds=8)
    reason, rounds = _run_until_stop(_stream(0.5, seed=2), **rule)
    assert reason == CAP and len(rounds) == 8
    assert median_half_width([s for r in rounds for s in r]) > 0.01


def test_medium_noise_needs_more_rounds_and_the_seconds_cap_holds():
    rule = dict(precision=0.01, min_rounds=3, max_rounds=20)
    reason, rounds = _run_until_stop(_stream(0.06, seed=3), **rule)
    # 6 % spread needs about (1.96 * 0.06 * 1.2533 / 0.01)**2 ~ 216 samples: about 8 rounds of 30
    assert reason == PRECISION and 5 <= len(rounds) <= 11
    pooled = [s for r in rounds for s in r]
    assert median_half_width(pooled) <= 0.01 < median_half_width([s for r in rounds[:-1] for s in r])
    # 0.3 s per round of 30 x 10 ms: a 1 s cap stops after the 4th round
    reason, rounds = _run_until_stop(_stream(0.06, seed=3), **{**rule, "max_s": 1.0})
    assert reason == CAP and len(rounds) == 4


def test_fixed_rounds_without_precision_and_determinism():
    rounds = [next(_stream(0.02, seed=4)) for _ in range(5)]
    assert [stop_reason(rounds[:i], precision=None, min_rounds=3, max_rounds=5) for i in range(6)] == \
        [None] * 5 + [FIXED]
    assert stop_reason([], precision=0.01, min_rounds=1, max_rounds=5) is None
    # the decision depends on the samples only (a resumed sweep decides as the uninterrupted one)
    copy = [list(r) for r in rounds]
    rule = dict(precision=0.004, min_rounds=3, max_rounds=8)
    assert [stop_reason(rounds[:i], **rule) for i in range(6)] == [stop_reason(copy[:i], **rule) for i in range(6)]
    # min_rounds above the cap: the cap rules
    assert stop_reason(rounds[:2], precision=0.5, min_rounds=3, max_rounds=2) == PRECISION


def _settings(**changes):
    return get_preset("cpu", resolution=32, warmup=1, repeats=5, **changes)


def test_profile_records_why_each_model_stopped(tmp_path):
    store = ResultsStore(tmp_path / "cap")
    # a precision no real timing reaches: every model runs to the cap of 3 rounds
    profile_sweep(["mobilenetv3_small_100", "efficientvit_m0"], _settings(precision=1e-9, rounds=3), store,
                  metrics=["latency"])
    latency = {r.model: r for r in store.records() if r.metric == "latency"}
    for record in latency.values():
        assert record.extra["stop"] == CAP and record.extra["rounds"] == 3 and record.stats["n"] == 15
        assert record.extra["precision_target"] == 1e-9
    # a reachable precision: whatever the machine's noise, the record agrees with the rule on its own rounds
    store = ResultsStore(tmp_path / "adaptive")
    settings = _settings(precision=0.2, rounds=6, min_rounds=2)
    profile_sweep(["mobilenetv3_small_100"], settings, store, metrics=["latency"])
    records = store.records()
    rounds = [r.extra["samples_s"] for r in sorted((r for r in records if r.metric == ROUND_METRIC),
                                                   key=lambda r: r.extra["round"])]
    latency = next(r for r in records if r.metric == "latency")
    pooled = [s for r in rounds for s in r]
    assert latency.extra["stop"] == stop_reason(rounds, precision=0.2, min_rounds=2, max_rounds=6) in (PRECISION, CAP)
    assert all(stop_reason(rounds[:i], precision=0.2, min_rounds=2, max_rounds=6) is None
               for i in range(len(rounds)))  # it stopped at the first round the rule allowed
    assert latency.extra["precision_reached"] == pytest.approx(median_half_width(pooled))
    assert latency.stats["n"] == len(pooled)


def test_cli_precision_off_gives_fixed_rounds(tmp_path):
    result = run_cli("profile", "--models", "mobilenetv3_small_100", "--metrics", "latency", "--resolution", "32",
                     "--repeats", "3", "--warmup", "1", "--rounds", "2", "--precision", "off",
                     "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    latency = next(r for r in ResultsStore(tmp_path).records() if r.metric == "latency")
    assert latency.extra["stop"] == FIXED and latency.extra["rounds"] == 2
    assert latency.settings["precision"] is None
