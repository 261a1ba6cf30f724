"""Scaling figures and tables: cost against resolution and against batch size, log-log, each model's fitted
exponent in the legend.

Pure functions of the tidy frames of :mod:`lsbench.scaling` (one row per point; the exponents frame).
The resolution figures put the side in pixels on the x axis (log) while the exponent is fitted against the
number of pixels (side²): a line of exponent k therefore climbs 2k decades per decade of side. Two grey
guides, ∝ pixels¹ (convolution) and ∝ pixels² (global attention), are drawn for reading slopes by eye.
Points that did not run are named under the figure ("not supported at N px") and listed in the tables.
"""
from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from lsbench.options import writable_dir
from lsbench.scaling import FIT_METRICS, ScaleRun, exponents_frame

from .render import figure_paths, write_table

__all__ = ["LABELS", "plot_vs_resolution", "plot_vs_batch", "points_table", "exponents_table", "save_scaling",
           "provenance"]

LABELS = {"latency_ms": "latency per call (ms)", "gmacs": "GMACs per image (fvcore)",
          "peak_memory_mib": "peak memory of a call (MiB)", "throughput_img_s": "throughput (img/s)"}
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
MADE_BY = "lsbench.report.scaling_plot"
# decimals of the points table (the records keep every digit)
_DECIMALS = {"latency_ms": 2, "latency_iqr_ms": 2, "throughput_img_s": 2, "gmacs": 4, "peak_memory_mib": 2,
             "params_m": 3}


def _styles(models: Sequence[str]) -> dict[str, dict]:
    colours = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    return {m: {"color": colours[i % len(colours)], "marker": _MARKERS[i % len(_MARKERS)]}
            for i, m in enumerate(models)}


def _label(model: str, exponents: pd.DataFrame, metric: str, symbol: str, built: bool) -> str:
    row = exponents[(exponents["model"] == model) & (exponents["metric"] == metric)]
    size = " (built at size)" if built else ""
    if row.empty or pd.isna(row["exponent"].iloc[0]):
        return f"{model}{size}: too few points to fit"
    r = row.iloc[0]
    err = f" ± {r['stderr']:.2f}" if pd.notna(r["stderr"]) else ""
    return f"{model}{size}: ∝ {symbol}^{r['exponent']:.2f}{err}"


def _unsupported_note(frame: pd.DataFrame) -> str:
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return ""
    items = [f"{r['model']} {r['status'].replace('not supported at ', 'at ')} ({textwrap.shorten(str(r['reason']), 90, placeholder='…')})"
             for _, r in bad.iterrows()]
    return "Not supported: " + "; ".join(items)


def _save(fig: Figure, path: str | Path) -> list[Path]:
    paths = figure_paths(path)
    for p in paths:
        fig.savefig(p, dpi=140 if p.suffix == ".png" else None, bbox_inches="tight")
    return paths


def _guides(ax, xs: np.ndarray, y0: float) -> None:
    """∝ pixels¹ and ∝ pixels² from (xs[0], y0): slopes 2 and 4 per decade of side."""
    for power, style, name in ((1, "--", "∝ pixels¹"), (2, ":", "∝ pixels²")):
        ys = y0 * (xs / xs[0]) ** (2 * power)
        ax.plot(xs, ys, style, color="0.55", lw=1.1, zorder=1)
        ax.annotate(name, (xs[-1], ys[-1]), xytext=(4, 0), textcoords="offset points", fontsize=8, color="0.4",
                    va="center")


def _log_axes(ax, ticks: np.ndarray, base: int = 10) -> None:
    """Log-log axes with the measured x values as ticks and readable 1-2-5 ticks on y."""
    ax.set_xscale("log", base=base)
    ax.set_yscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, [f"{int(t)}" for t in ticks])
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(True, which="major", alpha=0.25)


def plot_vs_resolution(frame: pd.DataFrame, exponents: pd.DataFrame, metric: str, path: str | Path,
                       title: str = "") -> list[Path]:
    """One line per model of ``metric`` against the input side (log-log), fitted exponent vs pixels in
    the legend; writes ``path``.png and ``path``.svg."""
    ok = frame[(frame["status"] == "ok") & frame[metric].notna()]
    models = list(dict.fromkeys(frame["model"]))
    styles = _styles(models)
    fig = Figure(figsize=(9, 6))
    ax = fig.subplots()
    for model in models:
        rows = ok[ok["model"] == model].sort_values("resolution")
        if rows.empty:
            continue
        built = bool(frame.loc[frame["model"] == model, "built_at_size"].fillna(False).any())
        ax.plot(rows["resolution"], rows[metric], lw=1.6, ms=6, **styles[model],
                label=_label(model, exponents, metric, "pixels", built))
    sides = np.array(sorted(ok["resolution"].unique()), dtype=float)
    if len(ok) and len(sides) > 1:
        _guides(ax, sides, float(ok[ok["resolution"] == ok["resolution"].min()][metric].min()) / 2.5)
    _log_axes(ax, sides)
    ax.set_xlabel("input side (px); exponents fitted against pixels = side²")
    ax.set_ylabel(LABELS.get(metric, metric))
    ax.set_title(f"{LABELS.get(metric, metric)} vs resolution" + (f" ({title})" if title else ""), fontsize=10)
    ax.legend(fontsize=8.5, loc="upper left", title="model: least-squares log-log exponent", title_fontsize=8.5)
    note = _unsupported_note(frame)
    if note:
        fig.text(0.01, -0.02, note, fontsize=7.5, color="0.3", wrap=True)
    return _save(fig, path)


def plot_vs_batch(frame: pd.DataFrame, exponents: pd.DataFrame, path: str | Path, title: str = "") -> list[Path]:
    """Latency per call, throughput and peak memory against the batch size (log-log), one panel each,
    fitted exponent vs batch in each legend; writes ``path``.png and ``path``.svg."""
    ok = frame[frame["status"] == "ok"]
    models = list(dict.fromkeys(frame["model"]))
    styles = _styles(models)
    metrics = FIT_METRICS["batch"]
    fig = Figure(figsize=(6 * len(metrics), 5.5))
    axes = fig.subplots(1, len(metrics))
    batches = np.array(sorted(ok["batch"].unique()), dtype=float)
    for ax, metric in zip(axes, metrics):
        for model in models:
            rows = ok[(ok["model"] == model) & ok[metric].notna()].sort_values("batch")
            if rows.empty:
                continue
            built = bool(frame.loc[frame["model"] == model, "built_at_size"].fillna(False).any())
            ax.plot(rows["batch"], rows[metric], lw=1.6, ms=6, **styles[model],
                    label=_label(model, exponents, metric, "batch", built))
        _log_axes(ax, batches, base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel(LABELS.get(metric, metric))
        ax.legend(fontsize=7.5, loc="upper left")
    fig.suptitle("cost vs batch size" + (f" ({title})" if title else "") + "; legend: least-squares log-log "
                 "exponent against the batch size", fontsize=10)
    note = _unsupported_note(frame)
    if note:
        fig.text(0.01, -0.03, note, fontsize=7.5, color="0.3", wrap=True)
    return _save(fig, path)


def _where(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    r = frame.iloc[0]
    threads = f", {int(r['threads'])} thread{'s' if r['threads'] > 1 else ''}" if r["device"] == "cpu" else ""
    return f"{r['hardware']}{threads}, {r['dtype']}"


def provenance(run: ScaleRun) -> list[str]:
    """Where, when and how the points were measured, and how the exponents were fitted."""
    s, p = run.settings, run.points
    dates = sorted(set(p["measured"].dropna())) if len(p) else []
    when = (dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}") if dates else "not yet"
    windows = (f"{s.warmup} warm-up + {s.repeats} timed calls per round" +
               (f" (at least {s.warmup_s:g} s / {s.measure_s:g} s)" if s.measure_s else "") +
               f", {s.rounds} round(s) per point, each on a fresh build")
    torch_versions = ", ".join(sorted(set(p["torch"].dropna()))) if len(p) else ""
    return [f"Measured on {_where(p) or s.device} (torch {torch_versions}), {when}: eager PyTorch, "
            f"{'BN-fused' if s.fused else 'as built'}, random init (seed 0); {windows}.",
            f"Latency is the median call time of a batch; throughput = batch / mean call time; MACs per image "
            f"from {run.counter} at batch 1 on the fused model; peak memory as lsbench profile records it "
            "(CPU: torch.profiler tensor peak of one call; CUDA: max_memory_allocated growth).",
            "Models whose constructor takes img_size are built at each resolution (built_at_size).",
            "Exponent: least-squares slope of log(cost) on log(pixels) (pixels = side²: convolution ≈ 1, "
            "global attention → 2), or on log(batch); stderr from the residuals (none with 2 points)."]


def points_table(run: ScaleRun) -> pd.DataFrame:
    cols = ["model", "resolution", "batch", "built_at_size", "status", "latency_ms", "latency_iqr_ms",
            "throughput_img_s", "gmacs", "peak_memory_mib", "params_m", "rounds", "repeats", "warmup", "threads",
            "dtype", "device", "hardware", "reason"]
    table = run.points[cols].round(_DECIMALS)
    table.attrs.update(made_by=MADE_BY, provenance=provenance(run))
    return table


def exponents_table(run: ScaleRun) -> pd.DataFrame:
    table = pd.concat([exponents_frame(run.resolution_frame, "resolution"),
                       exponents_frame(run.batch_frame, "batch")], ignore_index=True)
    for col in ("exponent", "stderr", "r2"):
        table[col] = pd.to_numeric(table[col]).round(3)
    table["x_min"], table["x_max"] = table["x_min"].astype("Int64"), table["x_max"].astype("Int64")
    table.attrs.update(made_by=MADE_BY, provenance=provenance(run))
    return table


def save_scaling(run: ScaleRun, out: str | os.PathLike[str], command: str | None = None) -> list[Path]:
    """Tables (md/csv/tex) of the points and exponents, one figure per metric against resolution and one
    against the batch size (PNG + SVG), into ``out``; returns the paths written."""
    out = writable_dir(out)
    written = write_table(points_table(run), out, "scaling_points", command=command)
    written += write_table(exponents_table(run), out, "scaling_exponents", command=command)
    title = _where(run.points)
    by_res = run.resolution_frame
    if by_res["resolution"].nunique() > 1:
        exps = exponents_frame(by_res, "resolution")
        batch = f"batch {run.batches[0]}"
        for metric in FIT_METRICS["resolution"]:
            written += plot_vs_resolution(by_res, exps, metric, out / f"scaling_{metric}_vs_resolution",
                                          title=f"{title}, {batch}")
    by_batch = run.batch_frame
    if by_batch["batch"].nunique() > 1:
        written += plot_vs_batch(by_batch, exponents_frame(by_batch, "batch"), out / "scaling_vs_batch",
                                 title=f"{title}, {run.batch_resolution} px")
    return written
