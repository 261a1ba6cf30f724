"""The anatomy job: several models dissected in one run beside the machine's roofline ceilings, stored as
records and written as tidy frames and figures. ``lsbench anatomy`` is a thin wrapper over
:func:`run_anatomy` (its files: :func:`lsbench.report.anatomy_files.save_anatomy`).

Each model is built and prepared exactly as ``lsbench profile`` times it (:func:`lsbench.profile.prepare`:
fused, on the device, in the settings' dtype and layout), labelled on its as-built form, then measured by
:func:`lsbench.anatomy.dissect`. Its records go to the store as soon as it is done, so a run stopped
half-way keeps the finished models. Models are re-measured on every run (no resume): the within-run
comparison between models and against the ceilings is the point, and it needs one run.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

import zoo

from .anatomy import BYTES_METHOD, HOOKS_METHOD, Dissection, dissect
from .energy import EnergyWindow
from .env import fingerprint
from .errors import LsbenchError
from .options import require_device
from .profile import prepare
from .results import Record, ResultsStore
from .roofline import Ceiling, best_of, measure_ceilings
from .settings import ProfileSettings
from .timing import time_cuda

__all__ = ["AnatomyRun", "anatomy_settings", "run_anatomy", "anatomy_key", "anatomy_records", "totals_frame",
           "sum_check", "ENERGY_SECONDS"]

WARMUP, REPEATS, ROUNDS = 10, 20, 12
ENERGY_SECONDS = 2.0  # CUDA: length of the timed window the NVML energy counter is read across


@dataclass
class AnatomyRun:
    """Everything one anatomy run measured, in the order the models ran."""

    settings: ProfileSettings
    counter: str
    ceilings: list[Ceiling]
    dissections: list[Dissection] = field(default_factory=list)
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None

    @property
    def parts(self) -> pd.DataFrame:
        """One row per (model, stage, part)."""
        return pd.concat([d.frame for d in self.dissections], ignore_index=True)

    @property
    def totals(self) -> pd.DataFrame:
        return totals_frame(self.dissections)


def anatomy_settings(device: str = "cpu", batch: int = 1, resolution: int | None = None, threads: int = 1,
                     warmup: int | None = None, repeats: int | None = None, rounds: int | None = None,
                     **overrides: Any) -> ProfileSettings:
    """The ``cpu`` preset's recipe (fp32, fused, 1 inter-op thread) with anatomy's windows: many short
    alternating rounds (:data:`ROUNDS` x :data:`REPEATS` calls per form) instead of a few long ones."""
    from .settings import get_preset

    return get_preset("cpu", device=device, batch=batch, resolution=resolution, threads=threads,
                      warmup=WARMUP if warmup is None else warmup, repeats=REPEATS if repeats is None else repeats,
                      rounds=ROUNDS if rounds is None else rounds, preset="anatomy", **overrides)


def anatomy_key(settings: ProfileSettings, counter: str) -> str:
    """Settings key of an anatomy record: the profile settings' key plus the job and its MAC counter."""
    return hashlib.sha1(f"{settings.key()}|anatomy|{counter}".encode()).hexdigest()[:12]


def _check(settings: ProfileSettings) -> None:
    settings.validate()
    if settings.device not in ("cpu", "cuda"):
        raise LsbenchError(f"anatomy runs on cpu or cuda, not {settings.device!r}")
    if settings.compile or settings.jit_trace:
        raise LsbenchError("anatomy hooks the eager modules; drop --compile/--jit-trace")
    require_device(settings.device)


def _energy(prepared, settings: ProfileSettings) -> dict[str, Any]:
    """CUDA: J/img over a dedicated timed window (after the part timing warmed the GPU up)."""
    x = prepared.example

    def step() -> None:
        prepared.model(x)

    with torch.inference_mode(), EnergyWindow(torch.cuda.current_device()) as window:
        samples = time_cuda(step, warmup=0, repeats=settings.repeats, measure_s=ENERGY_SECONDS)
    images = len(samples) * settings.batch
    info = window.as_dict(images)
    return {"j_per_img": info["j_per_img"], "power_avg_w": info["power_avg_w"],
            "energy_window_s": info["seconds"], "energy": info}


def run_anatomy(names: Sequence[str], settings: ProfileSettings, *, counter: str = "fvcore",
                store: ResultsStore | None = None, ceilings: Sequence[Ceiling] | None = None,
                on_start: Callable[[str], None] | None = None,
                on_done: Callable[[str, Dissection], None] | None = None) -> AnatomyRun:
    """Dissect every model in ``names`` under ``settings`` (device, batch, resolution, dtype, threads,
    warmup, repeats, rounds), storing each model's records as it finishes. Unless ``ceilings`` are given,
    they are measured before and after the models and the best of the two kept (interference on a shared
    machine only lowers a ceiling); the final ceilings are stored once more at the end."""
    _check(settings)
    for name in names:
        zoo.get_card(name)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    measure = ceilings is None
    if measure:
        if on_start:
            on_start("roofline ceilings (before the models)")
        ceilings = measure_ceilings(settings.device, settings.threads, settings.dtype)
    run = AnatomyRun(settings, counter, list(ceilings), load_before=load_before)
    fp = fingerprint(settings.device, threads={"threads": settings.threads,
                                               "interop_threads": settings.interop_threads})
    for name in names:
        if on_start:
            on_start(name)
        prepared = prepare(name, settings)
        torch.manual_seed(0)
        built = zoo.create_model(name).eval()
        d = dissect(prepared.model, prepared.example, name, built=built, device=settings.device, counter=counter,
                    warmup=settings.warmup, repeats=settings.repeats, rounds=settings.rounds,
                    threads=settings.threads, interop_threads=settings.interop_threads, batch=settings.batch)
        d.totals.update(resolution=prepared.resolution, dtype=settings.dtype, form=prepared.form)
        if settings.device == "cuda":
            d.totals.update(_energy(prepared, settings))
        run.dissections.append(d)
        if store is not None:
            store.append(anatomy_records(d, run, fp))
        if on_done:
            on_done(name, d)
        del prepared, built
    if measure:
        if on_start:
            on_start("roofline ceilings (after the models)")
        run.ceilings = best_of(run.ceilings, measure_ceilings(settings.device, settings.threads, settings.dtype))
        if store is not None:
            store.append(_ceiling_records(run.dissections[-1], run, fp, final=True) if run.dissections else [])
    run.load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    return run


def _clean(value: Any) -> Any:
    """JSON-safe scalars for a record's extra (NaN -> None, numpy -> Python)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def anatomy_records(d: Dissection, run: AnatomyRun, fp: dict) -> list[Record]:
    """One model's records: per-part times, the two latency figures, memory, energy, and the ceilings."""
    key = anatomy_key(run.settings, run.counter)
    totals = _clean(d.totals)
    method = {"timing": HOOKS_METHOD, "bytes": BYTES_METHOD, "counter": run.counter, "load_before": run.load_before}

    def rec(metric: str, value: float, unit: str, counter: str | None = None, **extra) -> Record:
        return Record(model=d.model, metric=metric, value=float(value), unit=unit, settings=run.settings,
                      settings_key=key, fingerprint=fp, counter=counter, extra=_clean(extra))

    out = [rec("anatomy_part_time", row["time_ms"], "ms", **{k: row[k] for k in (
        "stage", "part", "kind", "share", "macs", "bytes", "intensity_mac_per_byte", "gflop_s", "gb_s")})
        for row in d.frame.to_dict("records")]
    out += [rec("anatomy_latency", totals["latency_ms"], "ms", **totals, method=method),
            rec("anatomy_parts_sum", totals["parts_sum_ms"], "ms", latency_ms=totals["latency_ms"],
                sum_over_latency=totals["sum_over_latency"]),
            rec("weight_bytes", totals["weight_bytes"], "B")]
    if totals.get("peak_bytes") is not None:
        out.append(rec("peak_memory", totals["peak_bytes"], "B", method=totals["peak_method"],
                       peak_abs_bytes=totals.get("peak_abs_bytes")))
    if totals.get("j_per_img") is not None:
        out.append(rec("energy_per_image", totals["j_per_img"], "J/img", **totals["energy"]))
    return out + _ceiling_records(d, run, fp)


def _ceiling_records(d: Dissection, run: AnatomyRun, fp: dict, final: bool = False) -> list[Record]:
    """The run's ceilings as records: with each model as measured so far, and once more at the end with
    ``final`` set (the best of before and after the models, the ones the figure uses)."""
    key = anatomy_key(run.settings, run.counter)
    return [Record(model=d.model, metric="roofline_ceiling", value=c.value / 1e9,
                   unit="GFLOP/s" if c.kind == "compute" else "GB/s", settings=run.settings, settings_key=key,
                   fingerprint=fp, counter=c.name, extra={"ceiling": c.as_dict(), "final": final})
            for c in run.ceilings]


def totals_frame(dissections: Sequence[Dissection]) -> pd.DataFrame:
    """One row per model: the sum check (parts' sum, hooked forward, latency measured the normal way), MACs,
    bytes, weight and peak memory, and J/img where measured."""
    cols = ["model", "latency_ms", "parts_sum_ms", "sum_over_latency", "within_tolerance", "hooked_ms",
            "latency_median_ms", "latency_iqr_ms", "macs_total", "bytes_total", "weight_bytes", "peak_bytes",
            "j_per_img", "power_avg_w", "device", "threads", "batch", "resolution", "dtype", "counter", "warmup",
            "repeats", "rounds", "keep", "n_normal", "n_hooked", "hook_boundaries"]
    rows = [{c: d.totals.get(c) for c in cols} for d in dissections]
    return pd.DataFrame(rows, columns=cols).dropna(axis=1, how="all")


def sum_check(totals: pd.DataFrame) -> pd.DataFrame:
    """The columns that answer "do the parts add up?", plus the memory figures, one row per model."""
    cols = ["model", "latency_ms", "parts_sum_ms", "sum_over_latency", "within_tolerance", "hooked_ms",
            "latency_median_ms", "weight_bytes", "peak_bytes", "j_per_img", "power_avg_w"]
    return totals[[c for c in cols if c in totals.columns]]
