"""Scaling curves: how latency (batch 1) or throughput (batch > 1), MACs and peak memory grow with the input
resolution and with the batch size, and each model's fitted scaling exponent.

Dense tasks run backbones at 512-1024 px, where attention's cost grows with the square of the number of
pixels and a convolution's linearly. A sweep measures a *cross* of points: every resolution at the first
batch size, and every batch size at one resolution (``batch_resolution``, by default the first resolution).

Each point is one item of :func:`lsbench.results.run_sweep`: it is built, timed in ``settings.rounds``
rounds (each on a fresh build, as ``lsbench profile`` times), counted, and stored as one batch, so a rerun
measures only the points not stored yet. Timing and memory go through :func:`lsbench.profile.time_prepared`,
MACs through :func:`lsbench.counting.count_flops` (one counter, default fvcore, at batch 1: MACs per image),
and the memory lower bound through :func:`lsbench.resources.check_fits` before anything is allocated.

**Built at size.** A model whose constructor takes ``img_size`` (timm's convention: LSNet, EfficientViT-M,
RepViT, MobileViT, MobileOne here) sizes position-dependent parts by it (LSNet's attention-bias tables,
EfficientViT-M's attention windows at small inputs), so it is built at each point's resolution, as it would
be for a dense task, and the records say ``built_at_size``. Other models are built once and fed any size.

**Not supported at N px.** A point that fails (a forward that cannot run at that size, a model that refuses
the size, or a memory refusal) is stored as a ``scale_unsupported`` record with its reason and never stops
the sweep. A memory refusal depends on what is free at the time, so it is stored as partial progress and
retried by a rerun; a size error is final.

**Exponents.** :func:`fit_power_law` is the least-squares line of log(cost) on log(pixels) (pixels = side²,
so a convolution's cost goes as pixels¹ and global attention's towards pixels²), and of log(cost) on
log(batch) for the batch sweep. Nothing here prints or plots (:mod:`lsbench.report.scaling_plot` does).
"""
from __future__ import annotations

import hashlib
import inspect
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

import zoo

from .counting import check_counters, count_flops, param_counts
from .env import fingerprint
from .errors import LsbenchError
from .options import MIN_RESOLUTION, require_device
from .profile import PreparedModel, check_host, prepare, time_prepared
from .resources import available_memory, check_fits, gib
from .results import Record, ResultsStore, run_sweep
from .settings import EAGER, ProfileSettings, get_preset, torch_dtype
from .timing import summarize

__all__ = ["ScalePoint", "ScaleRun", "PowerFit", "Builder", "zoo_builder", "takes_img_size", "parse_sizes",
           "scale_settings", "sweep_points", "sweep_key", "point_key", "measure_point", "scale_sweep",
           "points_frame", "fit_power_law", "exponents_frame", "JOB", "UNSUPPORTED", "RESOLUTIONS",
           "FIT_METRICS", "WINDOWS"]

JOB = "scale"
UNSUPPORTED = "scale_unsupported"
RESOLUTIONS = (224, 320, 448, 640, 896, 1024)
# Windows per point: a sweep to 1024 px has 6 x models points, some 30x slower than at 224 px. On the CPU a
# few calls per round suffice for a curve that spans a factor of 20-40 (the rounds are on fresh builds);
# on CUDA the time windows keep each point at about 1.5 s whatever its size.
WINDOWS = {
    "cpu": dict(warmup=3, repeats=10, rounds=2, warmup_s=None, measure_s=None),
    "cuda": dict(warmup=10, repeats=20, rounds=1, warmup_s=0.5, measure_s=1.0),
}
#: the columns of :func:`points_frame` that are fitted, per sweep
FIT_METRICS = {"resolution": ("latency_ms", "gmacs", "peak_memory_mib"),
               "batch": ("latency_ms", "throughput_img_s", "peak_memory_mib")}
_MIB = float(1 << 20)

#: build(name, resolution) -> (model in eval mode, built_at_size); called under torch.device("meta") for
#: the memory preflight, so it must create its tensors through factory functions (as nn.Modules do)
Builder = Callable[[str, int], "tuple[nn.Module, bool]"]


@dataclass(frozen=True)
class ScalePoint:
    """One measurement of a sweep: a model at one resolution and batch size."""

    model: str
    resolution: int
    batch: int

    @property
    def pixels(self) -> int:
        return self.resolution * self.resolution


# ----------------------------------------------------------------------------------------- inputs

def parse_sizes(text: str | Sequence[int], what: str, minimum: int = 1, example: str = "224,320") -> list[int]:
    """'224,320' -> [224, 320] (order kept, duplicates dropped); a one-line error for anything else."""
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t) for t in text]
    items = [t for t in items if t]
    if not items:
        raise LsbenchError(f"{what} takes a comma-separated list like {example}, got nothing")
    values = []
    for item in items:
        if not re.fullmatch(r"\d+", item):
            raise LsbenchError(f"{what} takes whole numbers like {example}, got {item!r}")
        value = int(item)
        if value < minimum:
            raise LsbenchError(f"{what.lstrip('-')} must be at least {minimum}, got {value}")
        values.append(value)
    return list(dict.fromkeys(values))


def scale_settings(device: str = "cpu", **overrides) -> ProfileSettings:
    """The ``cpu`` preset's recipe (fp32, fused, 1 thread) on the CPU, ``lsnet_short``'s on CUDA, with the
    sweep's :data:`WINDOWS`; ``overrides`` (None: not given) win. Resolution and batch are set per point."""
    require_device(device)
    base = get_preset("cpu" if device == "cpu" else "lsnet_short")
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = base.replace(**{**WINDOWS[device], "batch": 1, "resolution": None, "preset": JOB, **given})
    settings.validate()
    if settings.runtime != EAGER or settings.compile or settings.jit_trace:
        raise LsbenchError("scale times eager PyTorch models; drop --runtime/--compile/--jit-trace")
    return settings


def sweep_points(names: Sequence[str], resolutions: Sequence[int], batches: Sequence[int] = (1,),
                 batch_resolution: int | None = None) -> list[ScalePoint]:
    """Every resolution at the first batch size, then every other batch size at ``batch_resolution``
    (default: the first resolution). Models alternate within each size, so a slow spell of a shared
    machine falls on several models instead of one model's whole curve."""
    if not names or not resolutions or not batches:
        raise LsbenchError("a scaling sweep needs at least one model, one resolution and one batch size")
    for r in [*resolutions, *([batch_resolution] if batch_resolution else [])]:
        if r < MIN_RESOLUTION:
            raise LsbenchError(f"resolution must be at least {MIN_RESOLUTION}, got {r}")
    b0, r0 = batches[0], batch_resolution or resolutions[0]
    pairs = [(r, b0) for r in resolutions] + [(r0, b) for b in batches]
    pairs = list(dict.fromkeys(pairs))
    return [ScalePoint(name, r, b) for r, b in pairs for name in names]


def sweep_key(settings: ProfileSettings, counter: str) -> str:
    """Key of a sweep's recipe (every setting but the point's resolution and batch, plus the counter): the
    records of one sweep are found by it, whatever points it has."""
    base = settings.replace(resolution=None, batch=1, preset=None)
    return hashlib.sha1(f"{base.key()}|{JOB}|{counter}".encode()).hexdigest()[:12]


def point_key(settings: ProfileSettings, counter: str) -> str:
    """Resume key of one point: its settings (resolution and batch set) plus the job and its counter."""
    return hashlib.sha1(f"{settings.key()}|{JOB}|{counter}".encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- building

def takes_img_size(model_or_class) -> bool:
    """Whether a model's constructor takes ``img_size`` (timm's convention for size-dependent parts)."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return "img_size" in inspect.signature(cls.__init__).parameters


def zoo_builder(features_only: bool = False) -> Builder:
    """Registry models, built at the point's size when their constructor takes ``img_size``."""
    kwargs = {"features_only": True} if features_only else {}
    sized: dict[str, bool] = {}

    def build(name: str, resolution: int) -> tuple[nn.Module, bool]:
        if name not in sized:
            with torch.device("meta"):
                sized[name] = takes_img_size(zoo.create_model(name, **kwargs))
        at_size = sized[name]
        model = zoo.create_model(name, **kwargs, **({"img_size": resolution} if at_size else {}))
        return model.eval(), at_size

    return build


def _prepare(point: ScalePoint, settings: ProfileSettings, build: Builder) -> tuple[PreparedModel, bool]:
    """The point's model in the form ``lsbench profile`` times, built by ``build`` at the point's size."""
    torch.manual_seed(0)  # random weights are the papers' speed protocol; seeded for repeatability
    model, at_size = build(point.model, point.resolution)
    prepared = prepare(point.model, settings, model=model)
    prepared.form["built_at_size"] = at_size
    return prepared, at_size


# ----------------------------------------------------------------------------------------- measuring

_MEMORY_WORDS = ("out of memory", "can't allocate memory", "needs at least")


def _failure(point: ScalePoint, settings: ProfileSettings, fp: dict, key: str, info: dict, exc: Exception,
             built_at_size: bool | None) -> Record:
    message = " ".join(str(exc).split()) or type(exc).__name__
    memory = any(w in message for w in _MEMORY_WORDS)
    if not isinstance(exc, LsbenchError):
        message = f"{type(exc).__name__}: {message}"
    return Record(model=point.model, metric=UNSUPPORTED, value=float(point.resolution), unit="px",
                  settings=settings, fingerprint=fp, job_key=key, partial=memory,
                  extra={**info, "kind": "memory" if memory else "error", "reason": message[:400],
                         "built_at_size": built_at_size})


def _check_input_fits(point: ScalePoint, settings: ProfileSettings) -> None:
    """Refuse a point whose input batch alone cannot fit, before building anything: a model built at an
    absurd size may take minutes to construct (LSNet's bias index is quadratic in the grid)."""
    size = torch.empty((), dtype=torch_dtype(settings.dtype)).element_size()
    need = point.batch * 3 * point.pixels * size
    free = available_memory(settings.device)
    if free is not None and need > free:
        raise LsbenchError(f"needs at least {gib(need)} GiB for the input alone, {settings.device} has "
                           f"{gib(free)} GiB available")


def measure_point(point: ScalePoint, settings: ProfileSettings, counter: str = "fvcore",
                  build: Builder | None = None, fp: dict | None = None) -> list[Record]:
    """One point's records: params, MACs per image, latency (ms per call), throughput (img/s), peak memory
    and weight bytes; or one :data:`UNSUPPORTED` record saying why the model cannot run there."""
    build = build or zoo_builder(settings.features_only)
    s = settings.replace(resolution=point.resolution, batch=point.batch)
    key = point_key(s, counter)
    fp = fp if fp is not None else _fingerprint(s)
    info = {"job": JOB, "sweep_key": sweep_key(s, counter), "resolution": point.resolution, "batch": point.batch,
            "pixels": point.pixels, "counter": counter}
    at_size = None
    try:
        _check_input_fits(point, s)
        with torch.device("meta"):
            meta, at_size = build(point.model, point.resolution)
        check_fits(meta, (point.batch, 3, point.resolution, point.resolution), s.device, dtype=s.dtype)
        del meta
        samples: list[float] = []
        rounds = []
        for _ in range(s.rounds):  # each round on a fresh build, as lsbench profile times
            prepared, at_size = _prepare(point, s, build)
            round_samples, extra = time_prepared(prepared, s)
            samples += round_samples
            rounds.append({**extra, "form": prepared.form, "median_ms": float(np.median(round_samples)) * 1e3})
            del prepared
        torch.manual_seed(0)
        model, at_size = build(point.model, point.resolution)
        counts = param_counts(model)
        (macs,) = count_flops(model, (1, 3, point.resolution, point.resolution), [counter], fused=True)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure at this size is a result, never a crashed sweep
        if s.device == "cuda":
            torch.cuda.empty_cache()
        return [_failure(point, s, fp, key, info, exc, at_size)]
    info["built_at_size"] = at_size
    peaks = [r["memory"]["peak_bytes"] for r in rounds if isinstance(r["memory"].get("peak_bytes"), (int, float))]
    last = {k: v for k, v in rounds[-1].items() if k not in ("memory", "energy", "median_ms")}
    timing = {**info, **last, "rounds": len(rounds), "round_medians_ms": [r["median_ms"] for r in rounds]}
    latency = summarize(samples).scaled(1e3)
    per_image = summarize([point.batch / t for t in samples])

    def rec(metric: str, value: float, unit: str, stats=None, counter_name=None, **extra) -> Record:
        return Record(model=point.model, metric=metric, value=float(value), unit=unit, stats=stats or {},
                      settings=s, fingerprint=fp, job_key=key, counter=counter_name, extra={**info, **extra})

    out = [rec("params", counts["total"], "count", form="as built"),
           rec("params_fused", counts["fused"], "count", form="reparameterized"),
           rec("macs", macs.gmacs, "GMac", counter_name=counter, per="image", convention=macs.convention,
               form="reparameterized", unsupported=macs.unsupported),
           Record(model=point.model, metric="latency", value=latency.median, unit="ms", stats=latency, settings=s,
                  fingerprint=fp, job_key=key, extra=timing),
           # the papers' throughput: batch / mean call time; stats are of per-call img/s
           Record(model=point.model, metric="throughput", value=point.batch * len(samples) / sum(samples),
                  unit="img/s", stats=per_image, settings=s, fingerprint=fp, job_key=key, extra=timing)]
    if peaks:
        out.append(rec("peak_memory", max(peaks), "B", method=rounds[0]["memory"]["method"], per_round=peaks))
    if rounds[0]["memory"].get("weight_bytes"):
        out.append(rec("weight_bytes", rounds[0]["memory"]["weight_bytes"], "B"))
    return out


def _fingerprint(settings: ProfileSettings) -> dict:
    return fingerprint(settings.device, threads={"threads": settings.threads,
                                                 "interop_threads": settings.interop_threads})


@dataclass
class ScaleRun:
    """A finished (or resumed) sweep: its recipe, its points and one row per point read back from the store."""

    settings: ProfileSettings
    counter: str
    resolutions: list[int]
    batches: list[int]
    batch_resolution: int
    points: pd.DataFrame
    new: list[Record] = field(default_factory=list)

    @property
    def resolution_frame(self) -> pd.DataFrame:
        """The resolution sweep: every resolution at the first batch size."""
        p = self.points
        return p[(p["batch"] == self.batches[0]) & p["resolution"].isin(self.resolutions)].reset_index(drop=True)

    @property
    def batch_frame(self) -> pd.DataFrame:
        """The batch sweep: every batch size at ``batch_resolution``."""
        p = self.points
        return p[(p["resolution"] == self.batch_resolution) & p["batch"].isin(self.batches)].reset_index(drop=True)


def scale_sweep(names: Sequence[str], resolutions: Sequence[int], batches: Sequence[int], settings: ProfileSettings,
                store: ResultsStore, *, counter: str = "fvcore", batch_resolution: int | None = None,
                build: Builder | None = None,
                on_start: Callable[[ScalePoint], None] | None = None,
                on_skip: Callable[[ScalePoint], None] | None = None) -> ScaleRun:
    """Measure every point of the sweep not stored yet (see :func:`sweep_points`), each stored as soon as it
    is done; returns the run with one row per point (stored and new). ``build`` defaults to the registry
    (:func:`zoo_builder`), whose names are checked first."""
    resolutions, batches = list(resolutions), list(batches)
    (counter,) = check_counters([counter])
    settings.validate()
    if build is None:
        for name in names:
            zoo.get_card(name)
        build = zoo_builder(settings.features_only)
    check_host(settings)
    points = sweep_points(names, resolutions, batches, batch_resolution)
    fp = _fingerprint(settings)
    keys = {p: point_key(settings.replace(resolution=p.resolution, batch=p.batch), counter) for p in points}

    def measure(p: ScalePoint) -> list[Record]:
        if on_start:
            on_start(p)
        return measure_point(p, settings, counter, build, fp)

    new = run_sweep(points, measure, store, key=lambda p: (p.model, keys[p]), on_skip=on_skip)
    frame = points_frame(store.records(), {(p.model, keys[p]): p for p in points})
    return ScaleRun(settings, counter, resolutions, batches, batch_resolution or resolutions[0], frame, new)


# ----------------------------------------------------------------------------------------- frames

POINT_COLUMNS = ["model", "resolution", "batch", "pixels", "built_at_size", "status", "latency_ms",
                 "latency_iqr_ms", "throughput_img_s", "gmacs", "peak_memory_mib", "params_m", "rounds", "repeats",
                 "warmup", "threads", "dtype", "device", "hardware", "torch", "measured", "reason"]


def points_frame(records: Iterable[Record], points: dict[tuple[str, str], ScalePoint]) -> pd.DataFrame:
    """One row per point of ``points`` ((model, point key) -> point): its newest complete measurement, or
    "not supported at N px" with the reason; points never measured are left out. Peak memory in MiB."""
    newest: dict[tuple[str, str], dict[str, Record]] = {}
    batches: dict[tuple[str, str], str] = {}
    for r in records:  # file order: a later batch of a point replaces an earlier one
        k = (r.model, r.job_key)
        if k not in points:
            continue
        if batches.get(k) != r.batch_id:
            batches[k], newest[k] = r.batch_id, {}
        newest[k][r.metric] = r
    rows = []
    for k, point in points.items():
        got = newest.get(k)
        if not got:
            continue
        any_record = next(iter(got.values()))
        s = any_record.settings
        fp = any_record.fingerprint or {}
        gpu = fp.get("cuda_device") if isinstance(fp.get("cuda_device"), dict) else {}
        row = {"model": point.model, "resolution": point.resolution, "batch": point.batch, "pixels": point.pixels,
               "built_at_size": any_record.extra.get("built_at_size"), "rounds": s.get("rounds"),
               "repeats": s.get("repeats"), "warmup": s.get("warmup"), "threads": s.get("threads"),
               "dtype": s.get("dtype"), "device": s.get("device"),
               "hardware": (gpu.get("name") if s.get("device") == "cuda" else fp.get("cpu_model")) or s.get("device"),
               "torch": fp.get("torch_version"), "measured": any_record.time[:10]}
        if UNSUPPORTED in got:
            bad = got[UNSUPPORTED]
            row.update(status=f"not supported at {point.resolution} px" + (
                f", batch {point.batch}" if point.batch > 1 else ""), reason=bad.extra.get("reason"))
        else:
            lat = got["latency"]
            row.update(status="ok", latency_ms=lat.value, latency_iqr_ms=lat.stats.get("iqr"),
                       throughput_img_s=got["throughput"].value, gmacs=got["macs"].value,
                       peak_memory_mib=got["peak_memory"].value / _MIB if "peak_memory" in got else None,
                       params_m=got["params"].value / 1e6, reason="")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=POINT_COLUMNS)
    return frame.sort_values(["model", "batch", "resolution"], kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------------- fits

@dataclass(frozen=True)
class PowerFit:
    """cost ≈ coefficient · x^exponent, from least squares of log(cost) on log(x)."""

    exponent: float
    coefficient: float
    r2: float
    n: int
    stderr: float | None  # of the exponent; None with 2 points (a line through them has no residual)

    def predict(self, x) -> np.ndarray:
        return self.coefficient * np.asarray(x, dtype=float) ** self.exponent


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> PowerFit:
    """Slope and intercept of the least-squares line of log(y) on log(x). Needs at least 2 distinct,
    positive, finite x values and positive, finite y; anything else is a one-line error."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise LsbenchError(f"a power-law fit needs two equally long lists, got {xs.shape} and {ys.shape}")
    if len(xs) < 2:
        raise LsbenchError(f"a power-law fit needs at least 2 points, got {len(xs)}")
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys)) and np.all(xs > 0) and np.all(ys > 0)):
        raise LsbenchError("a power-law fit needs positive, finite values (log-log)")
    lx, ly = np.log(xs), np.log(ys)
    if np.ptp(lx) == 0:
        raise LsbenchError(f"a power-law fit needs at least 2 distinct x values, got only {xs[0]:g}")
    centred = lx - lx.mean()
    slope = float(centred @ (ly - ly.mean()) / (centred @ centred))
    intercept = float(ly.mean() - slope * lx.mean())
    residual = ly - (intercept + slope * lx)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((residual ** 2).sum()) / total if total > 0 else 1.0
    n = len(xs)
    stderr = math.sqrt(float((residual ** 2).sum()) / (n - 2) / float(centred @ centred)) if n > 2 else None
    return PowerFit(slope, math.exp(intercept), r2, n, stderr)


def exponents_frame(frame: pd.DataFrame, against: str) -> pd.DataFrame:
    """One row per model and fitted metric (:data:`FIT_METRICS`): the exponent of cost against pixels
    (``against="resolution"``: x = side²) or against the batch size (``against="batch"``), over the points
    that ran. A model with fewer than 2 such points gets no exponent and says why."""
    if against not in FIT_METRICS:
        raise LsbenchError(f"exponents are fitted against resolution or batch, not {against!r}")
    x_col = "pixels" if against == "resolution" else "batch"
    rows = []
    for model, group in frame.groupby("model", sort=False):
        ok = group[group["status"] == "ok"]
        for metric in FIT_METRICS[against]:
            points = ok[ok[metric].notna() & (ok[metric] > 0)] if metric in ok else ok.iloc[0:0]
            row = {"model": model, "metric": metric, "against": x_col, "points": len(points),
                   "x_min": points[x_col].min() if len(points) else None,
                   "x_max": points[x_col].max() if len(points) else None,
                   "built_at_size": bool(group["built_at_size"].fillna(False).any())}
            try:
                fit = fit_power_law(points[x_col], points[metric])
            except LsbenchError as exc:
                row.update(exponent=None, stderr=None, r2=None, note=str(exc))
            else:
                row.update(exponent=fit.exponent, stderr=fit.stderr, r2=fit.r2, note="")
            rows.append(row)
    columns = ["model", "metric", "against", "exponent", "stderr", "r2", "points", "x_min", "x_max", "built_at_size",
               "note"]
    return pd.DataFrame(rows, columns=columns)
