"""Paired verdicts: is A faster than B on this machine, with a 95 % confidence interval.

Two medians measured at different moments of a shared machine differ by 10-25 % on their own. A verdict
therefore comes from *paired* rounds: every round times each model once (the order rotating), each on a
fresh build, so a slow episode of the machine or an unlucky memory placement hits all models of that round.
The latency ratio of a model to the first is the ratio of the medians of their pooled samples; its CI is a
seeded percentile bootstrap that resamples whole rounds (the pairs), keeping each round's models together.

:func:`compare_models` adds rounds until every ratio's CI half-width (relative to the ratio) is at most
``precision`` or the time limit is reached, and says which happened. :func:`verdict_from_rounds` gives the
same verdict lines for the stored ``latency_round`` records of a ``profile`` job (rounds interleaved there
too). Nothing here prints.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .env import cpu_model, fingerprint
from .errors import LsbenchError
from .profile import job_rounds, preflight, prepare, time_prepared
from .results import Record, ResultsStore
from .settings import ProfileSettings
from .timing import summarize

__all__ = ["RatioCI", "Comparison", "ratio_ci", "should_stop", "run_rounds", "compare_models", "verdict_line",
           "verdict_from_rounds", "comparison_verdicts", "comparison_records",
           "comparison_frame", "RATIO_METRIC", "PRECISION", "TIME_LIMIT", "INTERRUPTED", "MIN_ROUNDS"]

RATIO_METRIC = "latency_ratio"
#: why a comparison stopped
PRECISION, TIME_LIMIT, INTERRUPTED = "precision", "time limit", "interrupted"
# The percentile bootstrap over few rounds covers too rarely: on synthetic paired rounds (10 % round drift,
# known ratio) its 95 % CI held the true ratio in 80 % of runs at 3 rounds, 92 % at 5, 94.5 % at 8.
MIN_ROUNDS = 5
#: how many elements one bootstrap chunk may hold (pooled samples x resamples)
_CHUNK = 4_000_000


@dataclass(frozen=True)
class RatioCI:
    """latency(model) / latency(baseline), with its bootstrap CI over ``rounds`` paired rounds."""

    ratio: float
    low: float
    high: float
    rounds: int
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        """The CI half-width relative to the ratio (0.02 = ±2 %)."""
        return (self.high - self.low) / 2 / self.ratio

    def contains_one(self) -> bool:
        return self.low <= 1.0 <= self.high


def _pooled_medians(rounds: Sequence[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Median of the pooled samples of the rounds ``idx[k]`` for every resample ``k``."""
    lengths = {len(r) for r in rounds}
    if len(lengths) == 1:  # equal rounds (a fixed repeat count): one array operation per chunk
        data = np.stack(rounds)
        per = max(1, _CHUNK // max(1, data.size))
        out = np.empty(len(idx))
        for start in range(0, len(idx), per):
            chunk = data[idx[start:start + per]]  # (k, rounds, n)
            out[start:start + per] = np.median(chunk.reshape(len(chunk), -1), axis=1)
        return out
    return np.array([np.median(np.concatenate([rounds[i] for i in row])) for row in idx])


def ratio_ci(model_rounds: Sequence[Sequence[float]], baseline_rounds: Sequence[Sequence[float]],
             confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> RatioCI:
    """Ratio of pooled medians (model / baseline) with a paired percentile-bootstrap CI: round ``i`` of the
    model was timed beside round ``i`` of the baseline, so rounds are resampled as pairs. Deterministic for a
    given ``seed``."""
    if len(model_rounds) != len(baseline_rounds):
        raise LsbenchError(f"paired rounds differ in number: {len(model_rounds)} vs {len(baseline_rounds)}")
    if not model_rounds:
        raise LsbenchError("no rounds to compare")
    if not 0.0 < confidence < 1.0:
        raise LsbenchError(f"confidence must be between 0 and 1, got {confidence}")
    a = [np.asarray(r, dtype=np.float64) for r in model_rounds]
    b = [np.asarray(r, dtype=np.float64) for r in baseline_rounds]
    if any(r.size == 0 for r in a + b) or not all(np.all(np.isfinite(r)) and np.all(r > 0) for r in a + b):
        raise LsbenchError("every round needs positive, finite timing samples")
    ratio = float(np.median(np.concatenate(a)) / np.median(np.concatenate(b)))
    n = len(a)
    if n == 1:
        return RatioCI(ratio, ratio, ratio, 1, confidence)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    ratios = _pooled_medians(a, idx) / _pooled_medians(b, idx)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(ratios, [100 * alpha, 100 * (1 - alpha)])
    return RatioCI(ratio, float(low), float(high), n, confidence)


def should_stop(cis: Iterable[RatioCI], rounds: int, elapsed_s: float, precision: float, max_time_s: float,
                round_s: float = 0.0, min_rounds: int = MIN_ROUNDS) -> str | None:
    """Why to stop now, or None to time another round. Before ``min_rounds`` never; then :data:`PRECISION`
    when every CI half-width is at most ``precision``, else :data:`TIME_LIMIT` when another round (taking
    about ``round_s``) would end past ``max_time_s``."""
    if rounds < min_rounds:
        return None
    if all(ci.half_width <= precision for ci in cis):
        return PRECISION
    if elapsed_s + round_s > max_time_s:
        return TIME_LIMIT
    return None


@dataclass
class Comparison:
    """What a comparison measured: per model and round the samples (s), each ratio's CI, why it stopped."""

    names: list[str]
    samples: dict[str, list[list[float]]]
    cis: dict[str, RatioCI]
    stopped_by: str
    elapsed_s: float
    precision: float
    context: str = ""
    extras: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        return len(self.samples[self.names[0]])


def _all_cis(names: Sequence[str], samples: dict[str, list[list[float]]], confidence: float, n_boot: int,
             seed: int) -> dict[str, RatioCI]:
    base = samples[names[0]]
    return {n: ratio_ci(samples[n], base, confidence, n_boot, seed) for n in names[1:]}


def run_rounds(names: Sequence[str], time_round: Callable[[str], list[float]], precision: float,
               max_time_s: float, min_rounds: int = MIN_ROUNDS, confidence: float = 0.95, n_boot: int = 2000,
               seed: int = 0, clock: Callable[[], float] = time.perf_counter,
               on_round: Callable[[int, dict[str, RatioCI]], None] | None = None) -> Comparison:
    """Interleaved rounds of ``time_round(name)`` (the order rotating each round) until :func:`should_stop`
    says so; ``on_round(rounds, cis)`` after each round."""
    names = list(names)
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    start = clock()
    r = 0
    while True:
        shift = r % len(names)
        try:
            for name in names[shift:] + names[:shift]:
                samples[name].append(list(time_round(name)))
        except KeyboardInterrupt:  # Ctrl-C: the finished rounds still give a verdict (the cut round is dropped)
            if r < 2:
                raise
            samples = {n: s[:r] for n, s in samples.items()}
            return Comparison(names, samples, _all_cis(names, samples, confidence, n_boot, seed), INTERRUPTED,
                              clock() - start, precision)
        r += 1
        now = clock()
        cis = _all_cis(names, samples, confidence, n_boot, seed)
        if on_round:
            on_round(r, cis)
        stop = should_stop(cis.values(), r, now - start, precision, max_time_s, (now - start) / r, min_rounds)
        if stop:
            return Comparison(names, samples, cis, stop, now - start, precision)


def _context(settings: ProfileSettings, device_name: str | None) -> str:
    where = device_name or settings.device
    threads = f", {settings.threads} thread{'s' if settings.threads > 1 else ''}" if settings.device == "cpu" else ""
    res = f", {settings.resolution} px" if settings.resolution else ""
    return f"on {where}{threads}, batch {settings.batch}{res}"


def _device_name(settings: ProfileSettings) -> str | None:
    if settings.device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return cpu_model()


def compare_models(names: Sequence[str], settings: ProfileSettings, precision: float = 0.02,
                   max_time_s: float = 120.0, min_rounds: int = MIN_ROUNDS, store: ResultsStore | None = None,
                   on_round: Callable[[int, dict[str, RatioCI]], None] | None = None,
                   seed: int = 0) -> Comparison:
    """Time ``names`` (eager, ``settings``) in interleaved rounds on fresh builds until every model's latency
    ratio to the first is known to ``precision`` (relative CI half-width) or ``max_time_s`` is reached; the
    minimum of ``min_rounds`` rounds always runs. With a ``store``, each model's pooled latency and every
    ratio are stored as one batch at the end."""
    names = list(dict.fromkeys(names))
    if len(names) < 2:
        raise LsbenchError("compare needs at least 2 different models")
    if not 0 < precision < 1:
        raise LsbenchError(f"precision must be between 0 and 1 (0.02 = ±2 %), got {precision}")
    if max_time_s <= 0:
        raise LsbenchError(f"max time must be positive, got {max_time_s}")
    if min_rounds < 2:
        raise LsbenchError(f"min rounds must be at least 2, got {min_rounds}")
    if settings.runtime != "eager":
        raise LsbenchError("compare times eager PyTorch models; use `lsbench profile --runtime` for runtimes")
    preflight(names, settings, ["latency"])
    extras: dict[str, list[dict]] = {n: [] for n in names}

    def time_round(name: str) -> list[float]:
        prepared = prepare(name, settings)  # a fresh build every round
        samples, extra = time_prepared(prepared, settings)
        extras[name].append({**extra, "form": prepared.form, "resolution": prepared.resolution,
                             "batch": settings.batch})
        return samples

    result = run_rounds(names, time_round, precision, max_time_s, min_rounds, seed=seed, on_round=on_round)
    result.extras = extras
    result.context = _context(settings, _device_name(settings))
    if store is not None:
        store.append(comparison_records(result, settings))
    return result


def comparison_records(result: Comparison, settings: ProfileSettings) -> list[Record]:
    """Each model's pooled latency (ms, with statistics) and each ratio to the first, as records."""
    fp = fingerprint(settings.device, threads={"threads": settings.threads,
                                               "interop_threads": settings.interop_threads})
    settings = settings.replace(rounds=result.rounds)  # the rounds that ran, not the preset's
    how = {"rounds": result.rounds, "stopped_by": result.stopped_by, "precision": result.precision,
           "elapsed_s": result.elapsed_s, "job": "compare", "models": result.names}
    records = []
    for name in result.names:
        samples = [s for r in result.samples[name] for s in r]
        stats = summarize(samples).scaled(1e3)
        records.append(Record(model=name, metric="latency", value=stats.median, unit="ms", stats=stats,
                              settings=settings, fingerprint=fp,
                              extra={**_last_round(result, name), **how,
                                     "round_medians_ms": [float(np.median(r)) * 1e3 for r in result.samples[name]]}))
    base = result.names[0]
    for name, ci in result.cis.items():
        records.append(Record(model=name, metric=RATIO_METRIC, value=ci.ratio, unit="x", settings=settings,
                              fingerprint=fp, extra={**how, "baseline": base, "ci_low": ci.low,
                                                     "ci_high": ci.high, "confidence": ci.confidence,
                                                     "half_width": ci.half_width}))
    return records


def _last_round(result: Comparison, name: str) -> dict:
    """How the last round ran (effective threads, the model's form, its peak memory), as profile records it."""
    rounds = result.extras.get(name) or [{}]
    return {k: v for k, v in rounds[-1].items() if k not in ("energy", "gpu_before", "gpu_after")}


def comparison_frame(result: Comparison) -> pd.DataFrame:
    """One row per model: pooled median latency, its ratio to the first with the CI, rounds, why it stopped."""
    rows = []
    for name in result.names:
        ms = float(np.median([s for r in result.samples[name] for s in r])) * 1e3
        ci = result.cis.get(name)
        rows.append({"model": name, "latency_ms": ms, "ratio_to_first": ci.ratio if ci else 1.0,
                     "ci_low": ci.low if ci else None, "ci_high": ci.high if ci else None,
                     "half_width_pct": ci.half_width * 100 if ci else None, "rounds": result.rounds,
                     "stopped_by": result.stopped_by})
    return pd.DataFrame(rows)


def verdict_line(baseline: str, model: str, ci: RatioCI, precision: float, context: str,
                 stopped_by: str | None = None) -> str:
    """One sentence: the first model faster or slower than ``model`` (the factor >= 1, its CI), no difference
    at ±precision, or undecided (the CI holds 1 but is wider than ``precision``) and why it stopped."""
    if not ci.contains_one():
        if ci.ratio >= 1:
            word, factor, lo, hi = "faster", ci.ratio, ci.low, ci.high
        else:
            word, factor, lo, hi = "slower", 1 / ci.ratio, 1 / ci.high, 1 / ci.low
        return f"{baseline} is {factor:.2f}× {word} than {model} [{lo:.2f}, {hi:.2f}] {context}"
    if ci.half_width <= precision:
        return (f"{baseline} vs {model}: no difference detected at ±{precision * 100:g} % "
                f"(ratio {ci.ratio:.3f} [{ci.low:.3f}, {ci.high:.3f}]) {context}")
    why = {TIME_LIMIT: "stopped at the time limit", INTERRUPTED: f"interrupted after {ci.rounds} rounds",
           None: f"after {ci.rounds} rounds"}.get(stopped_by, stopped_by)
    return (f"undecided: {baseline} vs {model}, ratio {ci.ratio:.3f} (CI [{ci.low:.3f}, {ci.high:.3f}], "
            f"±{ci.half_width * 100:.1f} %) {context}; {why}")


def comparison_verdicts(result: Comparison) -> list[str]:
    base = result.names[0]
    return [verdict_line(base, n, ci, result.precision, result.context, result.stopped_by)
            for n, ci in result.cis.items()]


def verdict_from_rounds(records: Iterable[Record], names: Sequence[str], job_key: str,
                        precision: float = 0.02, seed: int = 0) -> list[str]:
    """Verdict lines (each model vs the first of ``names``) from the ``latency_round`` records of one profile
    job, paired by round index; empty when fewer than 2 models or 2 shared rounds were timed."""
    by_model = job_rounds(records, names, job_key)
    timed = [n for n in names if by_model[n]]
    if len(timed) < 2:
        return []
    base = timed[0]
    first = by_model[base][min(by_model[base])]
    settings = ProfileSettings.from_dict(first.settings)
    device = (first.fingerprint.get("cpu_model") if settings.device == "cpu"
              else (first.fingerprint.get("gpu") or {}).get("name"))
    context = _context(settings, device)
    lines = []
    for name in timed[1:]:
        shared = sorted(set(by_model[base]) & set(by_model[name]))
        if len(shared) < 2:
            continue
        ci = ratio_ci([by_model[name][i].extra["samples_s"] for i in shared],
                      [by_model[base][i].extra["samples_s"] for i in shared], seed=seed)
        lines.append(verdict_line(base, name, ci, precision, context))
    return lines
