"""Accuracy-vs-speed Pareto figures: reported top-1 against measured (or published) latency / throughput.

One figure is one device under one protocol: :func:`measured_points` refuses results that mix devices or
settings, :func:`reported_pareto_frame` takes the published figures of one device and protocol. Top-1 is
always the published (cited) accuracy from the registry. Measured points are filled markers, reported ones
hollow with a legend entry, so the two are never confused; the frontier is drawn over the figure's own
source only. Plots use matplotlib's object API (no pyplot state) and are written as PNG and SVG.
"""
from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import zoo
from lsbench.errors import LsbenchError

from lsbench import query
from lsbench.settings import EAGER

from .render import figure_paths

__all__ = ["pareto_frontier", "measured_points", "reported_pareto_frame", "plot_pareto", "pareto_figure", "POINT_COLUMNS",
           "X_METRICS", "LSNET_FIGURE", "figure_models", "beside_published_points", "beside_published_figure",
           "plot_beside_published"]

X_METRICS = {"latency": ("ms", "lower"), "throughput": ("img/s", "higher"), "energy_per_image": ("J/img", "lower")}
_X_NAMES = {"latency": "Latency", "throughput": "Throughput", "energy_per_image": "Energy per image"}
POINT_COLUMNS = ["model", "family", "top1", "top1_source", "x", "metric", "unit", "device", "protocol", "source",
                 "cite"]
_FIGURE_TOP1 = re.compile(r"plots top-1 (\d+(?:\.\d+)?)")


# ----------------------------------------------------------------------------------------- frontier

def pareto_frontier(points: pd.DataFrame, x: str, y: str, x_better: str = "lower") -> pd.DataFrame:
    """The non-dominated rows of ``points`` (``y`` higher is better; ``x`` lower or higher is better),
    sorted by ``x`` ascending. A row is dominated when another is at least as good in both and strictly
    better in one; identical rows are all kept. Rows with a missing ``x`` or ``y`` are left out."""
    if x_better not in ("lower", "higher"):
        raise LsbenchError(f"x_better must be 'lower' or 'higher', got {x_better!r}")
    for column in (x, y):
        if column not in points.columns:
            raise LsbenchError(f"points have no column {column!r}")
    pts = points.dropna(subset=[x, y])
    xs = pts[x].astype(float).to_numpy()
    ys = pts[y].astype(float).to_numpy()
    sign = 1.0 if x_better == "lower" else -1.0  # compare sign * x, lower is better
    keep = []
    for i in range(len(pts)):
        dominated = False
        for j in range(len(pts)):
            if j == i:
                continue
            no_worse = sign * xs[j] <= sign * xs[i] and ys[j] >= ys[i]
            better = sign * xs[j] < sign * xs[i] or ys[j] > ys[i]
            if no_worse and better:
                dominated = True
                break
        keep.append(not dominated)
    return pts[keep].sort_values([x, y], kind="stable")


# ----------------------------------------------------------------------------------------- points

def _top1(card: zoo.ModelCard) -> tuple[float | None, str | None]:
    fig = card.figure("top1")
    return (None, None) if fig is None else (float(fig.value), fig.cite)


def _check_metric(metric: str) -> tuple[str, str]:
    if metric not in X_METRICS:
        raise LsbenchError(f"unknown x metric {metric!r}; expected one of {', '.join(X_METRICS)}")
    return X_METRICS[metric]


def _matches(value: Any, device: str) -> bool:
    return isinstance(value, str) and value.strip().lower() == device.strip().lower()


def _settings_text(signature: str, preset: Any) -> str:
    settings = json.loads(signature) if signature else {}
    keep = ("device", "batch", "resolution", "dtype", "threads", "warmup", "repeats", "rounds")
    flags = ("amp", "fused", "channels_last", "compile", "jit_trace")  # named only when on
    parts = [f"preset {preset}"] if isinstance(preset, str) else []
    parts += [f"{k}={settings[f'settings_{k}']}" for k in keep if f"settings_{k}" in settings]
    parts += [k for k in flags if settings.get(f"settings_{k}") is True]
    return ", ".join(parts) or "unknown settings"


def measured_points(frame: pd.DataFrame, metric: str, device: str | None = None,
                    models: Sequence[str] | None = None) -> pd.DataFrame:
    """Points (POINT_COLUMNS) of measured ``metric`` ("latency" ms or "throughput" img/s) on ``device``.

    ``device`` is matched (case-insensitively) against the GPU name, CPU model, settings_device or runtime.
    Raises :class:`LsbenchError` when the matching records span several devices or several settings:
    one figure is one device under one protocol. The newest record per model wins; top-1 is the
    published one (models without a published top-1 are left out and listed in ``attrs["no_top1"]``).
    """
    unit, _ = _check_metric(metric)
    rows = query.metric_rows(query.inference(query.measured(frame)), metric)
    if models is not None:
        rows = query.where(rows, rows["model"].isin(list(models)))
    if rows.empty:
        raise LsbenchError(f"no measured {metric} in the results")
    rows = rows.assign(_sig=query.settings_signature(rows))
    rows["_where"] = [hw if rt in (None, EAGER) else f"{hw} through {rt}"
                      for hw, rt in zip(rows["hardware"], rows["runtime"])]
    if device is not None:
        hit = pd.Series(False, index=rows.index)
        for column in ("gpu_name", "cpu_model", "settings_device", "hardware", "runtime", "_where"):
            hit |= query.col(rows, column).map(lambda v: _matches(v, device))
        if not hit.any():
            have = sorted(set(rows["_where"].dropna()))
            raise LsbenchError(f"no measured {metric} on {device!r}; the results have: {', '.join(have)}")
        rows = rows[hit]
    places = sorted(set(rows["_where"].fillna("unknown")))
    if len(places) > 1:
        raise LsbenchError(f"the {metric} records mix devices ({'; '.join(places)}): one figure is one device; "
                           f"pass a device that names one of them")
    signatures = list(dict.fromkeys(rows["_sig"]))
    if len(signatures) > 1:
        texts = [_settings_text(s, None) for s in signatures]
        raise LsbenchError(f"the {metric} records on {places[0]} mix {len(signatures)} settings "
                           f"({' | '.join(texts)}): filter the results to one protocol")
    newest = query.newest(rows)
    protocol = _settings_text(signatures[0], query.first_value(newest, "settings_preset"))
    out, no_top1 = [], []
    for name, row in newest.iterrows():
        card = zoo.get_card(name)
        top1, cite = _top1(card)
        if top1 is None:
            no_top1.append(name)
            continue
        out.append({"model": name, "family": card.family, "top1": top1, "top1_source": "registry",
                    "x": float(row["value"]), "metric": metric, "unit": unit, "device": places[0],
                    "protocol": protocol, "source": "measured", "cite": cite})
    points = _order(pd.DataFrame(out, columns=POINT_COLUMNS))
    times = newest["time"].dropna()
    points.attrs.update(no_top1=no_top1, device=places[0], measured=(times.min().date().isoformat(), times.max().date().isoformat())
                        if not times.empty else None)
    return points


def _order(points: pd.DataFrame) -> pd.DataFrame:
    """Registry order, then others as they came."""
    registry = {n: i for i, n in enumerate(zoo.list_models())}
    key = points["model"].map(lambda m: registry.get(m, len(registry)))
    return points.assign(_k=key).sort_values("_k", kind="stable").drop(columns="_k").reset_index(drop=True)


def reported_pareto_frame(device: str = "NVIDIA RTX 3090", metric: str = "throughput", protocol: str | None = None,
                          models: Sequence[str] | None = None) -> pd.DataFrame:
    """Points from published figures only: every model with a ``metric`` figure on ``device``.

    With the defaults this is the official LSNet speed-accuracy figure (RTX 3090 img/s: LSNet T/S/B,
    EfficientViT M3/M4/M5, FastViT T8/T12/S12). Where a figure's note gives the top-1 that figure plots
    ("LSNet figure plots top-1 75.6"), that value is used (``top1_source="figure"``), else the registry's
    (``"registry"``). Several protocols on the device (e.g. fp32 and fp16 on the H200) need ``protocol``.
    """
    unit, _ = _check_metric(metric)
    names = zoo.list_models(include_reported=True) if models is None else list(models)
    found = []
    for name in names:
        card = zoo.get_card(name)
        for fig in card.figures:
            if fig.metric == metric and fig.device == device and protocol in (None, fig.protocol):
                found.append((name, card, fig))
    if not found:
        raise LsbenchError(f"no published {metric} on {device!r}"
                           + (f" under protocol {protocol!r}" if protocol else ""))
    protocols = sorted({fig.protocol or "" for _, _, fig in found})
    if len(protocols) > 1:
        raise LsbenchError(f"published {metric} on {device!r} uses several protocols ({', '.join(protocols)}): "
                           f"choose one with protocol=")
    out, seen = [], set()
    for name, card, fig in found:
        if name in seen:
            continue
        seen.add(name)
        plotted = _FIGURE_TOP1.search(fig.note or "")
        top1, cite = _top1(card)
        source = "registry"
        if plotted:
            top1, source = float(plotted.group(1)), "figure"
        if top1 is None:
            continue
        out.append({"model": name, "family": card.family, "top1": top1, "top1_source": source,
                    "x": float(fig.value), "metric": metric, "unit": fig.unit or unit, "device": device,
                    "protocol": fig.protocol, "source": "reported", "cite": fig.cite})
    return pd.DataFrame(out, columns=POINT_COLUMNS)


# ----------------------------------------------------------------------------------------- plotting

_STYLE = {"LSNet": ("#d62728", "*"), "EfficientViT": ("#1f77b4", "o"), "RepViT": ("#2ca02c", "s"),
          "FastViT": ("#9467bd", "D"), "MobileNetV3": ("#ff7f0e", "^")}
_SPARE = [("#8c564b", "v"), ("#e377c2", "P"), ("#7f7f7f", "X"), ("#bcbd22", "h"), ("#17becf", "<")]


def _styles(families: Sequence[str]) -> dict[str, tuple[str, str]]:
    out, spare = {}, iter(_SPARE * 4)
    for family in families:
        out[family] = _STYLE.get(family) or next(spare)
    return out


def _is_points(frame: pd.DataFrame) -> bool:
    return {"top1", "x"} <= set(frame.columns)


def _figure_paths(path: str | Path, metric: str, device: str) -> list[Path]:
    """A directory gets ``pareto_<metric>_<device>.png/.svg`` in it; anything else is a file stem."""
    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", "\\")):
        slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
        p = p / f"pareto_{metric}_{slug}"
    return figure_paths(p)


def _check_points(points: pd.DataFrame, device: str | None, what: str) -> None:
    """One device (``device``, when given) and one protocol, else LsbenchError."""
    devices = sorted(set(points["device"].dropna()))
    if len(devices) > 1:
        raise LsbenchError(f"{what} points mix devices ({', '.join(devices)}): one figure is one device")
    if device is not None and devices and not _matches(devices[0], device) \
            and device.lower() not in devices[0].lower():
        raise LsbenchError(f"{what} points are on {devices[0]!r}, not {device!r}")
    protocols = sorted(set(points["protocol"].dropna()))
    if len(protocols) > 1:
        raise LsbenchError(f"{what} points mix protocols ({' | '.join(protocols)}): one figure is one protocol")


def _place_labels(ax, entries, renderer, avoid) -> None:
    """Annotate each point, trying a few offsets so that labels overlap neither each other nor markers."""
    offsets = [(7, 5, "left", "bottom"), (7, -5, "left", "top"), (-7, 5, "right", "bottom"),
               (-7, -5, "right", "top"), (0, 10, "center", "bottom"), (0, -10, "center", "top")]
    taken = list(avoid)
    marks = []
    for x, y, *_ in entries:  # keep labels off every marker
        px, py = ax.transData.transform((x, y))
        marks.append((px - 5, py - 5, px + 5, py + 5))

    def overlaps(box) -> bool:
        x0, y0, x1, y1 = box
        for a0, b0, a1, b1 in taken + marks:
            if x0 < a1 and a0 < x1 and y0 < b1 and b0 < y1:
                return True
        axes = ax.get_window_extent(renderer)
        return x0 < axes.x0 or x1 > axes.x1 or y0 < axes.y0 or y1 > axes.y1

    for x, y, label, bold, color, italic in entries:
        style = dict(textcoords="offset points", fontsize=8.5, fontweight="bold" if bold else "normal",
                     fontstyle="italic" if italic else "normal", color=color, zorder=5)
        chosen = None
        for dx, dy, ha, va in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy), ha=ha, va=va, **style)
            bb = text.get_window_extent(renderer)
            box = (bb.x0, bb.y0, bb.x1, bb.y1)
            if not overlaps(box):
                chosen = box
                break
            text.remove()
        if chosen is None:  # nothing free: the first offset
            dx, dy, ha, va = offsets[0]
            text = ax.annotate(label, (x, y), xytext=(dx, dy), ha=ha, va=va, **style)
            bb = text.get_window_extent(renderer)
            chosen = (bb.x0, bb.y0, bb.x1, bb.y1)
        taken.append(chosen)


_RC = {"svg.fonttype": "none", "svg.hashsalt": "lsbench", "font.size": 10}


def _family_styles(points: pd.DataFrame, highlight_family: str | None) -> tuple[list[str], dict]:
    """Families in registry order (the highlighted one first) and their (colour, marker)."""
    families = list(dict.fromkeys(_order(points)["family"]))
    if highlight_family in families:
        families.remove(highlight_family)
        families.insert(0, highlight_family)
    return families, _styles(families)


def _draw_panel(ax, points: pd.DataFrame, extra: pd.DataFrame | None, styles: dict, highlight_family: str | None,
                better: str) -> list[tuple]:
    """Frontier of ``points``, every point (hollow when reported), ``extra`` joined to the same model's main
    point; returns the label entries for :func:`_place_labels`."""
    frontier = pareto_frontier(points, "x", "top1", x_better=better)
    ax.step(frontier["x"], frontier["top1"], where="post" if better == "lower" else "pre",
            color="0.35", linestyle="--", linewidth=1.2, zorder=1)
    label_entries = []
    main = {row["model"]: (row["x"], row["top1"]) for _, row in points.iterrows()}
    for part, is_overlay in ((points, False), (extra, True)):
        if part is None:
            continue
        for _, p in part.iterrows():
            color, marker = styles[p["family"]]
            big = p["family"] == highlight_family
            hollow = p["source"] == "reported"
            size = 170 if big else 60
            if marker == "*":
                size *= 1.6
            ax.scatter([p["x"]], [p["top1"]], s=size, marker=marker,
                       facecolors="none" if hollow else color, edgecolors=color,
                       linewidths=1.6 if hollow else 0.6, zorder=4 if big else 3)
            label, text_color, italic = p["model"], color if big else "0.15", False
            if is_overlay:  # the other source: grey italic, joined to the same model's main point
                text_color, italic = "0.45", True
                if p["model"] in main:
                    mx, my = main[p["model"]]
                    ax.plot([mx, p["x"]], [my, p["top1"]], linestyle=":", color="0.6", linewidth=1, zorder=2)
                    label = f"{p['model']} ({p['source']})"
            label_entries.append((p["x"], p["top1"], label, big and not is_overlay, text_color, italic))
    ax.margins(x=0.12, y=0.1)
    ax.grid(True, color="0.9", linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)
    return label_entries


def _axis_text(ax, x_metric: str, device: str, unit: str, better: str, src: str) -> None:
    what = _X_NAMES[x_metric]
    direction = "lower is better" if better == "lower" else "higher is better"
    stat = "median, " if x_metric == "latency" else ""
    ax.set_xlabel(f"{what} on {device} ({unit}, {stat}{src}; {direction})")
    ax.set_ylabel("ImageNet-1K top-1 (%, published)")


def _legend_handles(points: pd.DataFrame, families: Sequence[str], styles: dict, highlight_family: str | None,
                    src: str) -> list:
    from matplotlib.lines import Line2D

    handles = []
    for family in families:
        color, marker = styles[family]
        big = family == highlight_family
        hollow = set(points.loc[points["family"] == family, "source"]) == {"reported"}
        handles.append(Line2D([], [], linestyle="none", marker=marker, color=color,
                              markerfacecolor="none" if hollow else color, markeredgewidth=1.5,
                              markersize=(13 if marker == "*" else 9) if big else 7, label=family))
    handles.append(Line2D([], [], color="0.35", linestyle="--", label=f"Pareto frontier ({src})"))
    sources = set(points["source"])
    if "reported" in sources:
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="none",
                              markeredgecolor="0.3", markersize=7, label="hollow: reported (cited)"))
    if "measured" in sources and len(sources) > 1:
        handles.append(Line2D([], [], linestyle="none", marker="o", color="0.3", markersize=7,
                              label="filled: measured here"))
    return handles


def _write(fig, paths: Sequence[Path]) -> None:
    try:
        for p in paths:
            fig.savefig(p, dpi=150 if p.suffix == ".png" else None,
                        metadata={"Date": None} if p.suffix == ".svg" else None)
    except OSError as exc:
        raise LsbenchError(f"cannot write figure {p}: {exc.strerror or exc}") from None


def plot_pareto(frame: pd.DataFrame | None, x_metric: str, device: str, protocol_label: str | None,
                path: str | Path, source: str = "measured", highlight_family: str | None = "LSNet", *,
                overlay: pd.DataFrame | None = None, models: Sequence[str] | None = None,
                title: str | None = None) -> list[Path]:
    """Published top-1 against ``x_metric`` ("latency" or "throughput") on ONE device under ONE protocol.

    ``source="measured"``: ``frame`` is a results frame (``ResultsStore.frame()``) or points from
    :func:`measured_points`; mixing devices or settings raises :class:`LsbenchError`. ``source="reported"``:
    ``frame`` is points from :func:`reported_pareto_frame` (built for ``device`` when None). ``overlay``
    adds points of the other source on the same device, drawn hollow ("reported") or filled ("measured")
    and left out of the frontier. Families differ by colour and marker, ``highlight_family`` gets bigger
    markers and bold labels, every point is labelled, the Pareto frontier is a step line. Writes
    ``path`` as .png and .svg (``path`` may be a directory: ``pareto_<metric>_<device>.png/.svg`` in it).
    """
    unit, better = _check_metric(x_metric)
    given = True
    if source not in ("measured", "reported"):
        raise LsbenchError(f"source must be 'measured' or 'reported', got {source!r}")
    if source == "reported":
        points = reported_pareto_frame(device, x_metric, models=models) if frame is None else frame
        if not _is_points(points):
            raise LsbenchError("reported points must come from reported_pareto_frame()")
    elif frame is None:
        raise LsbenchError("a measured Pareto figure needs a results frame")
    else:
        given = _is_points(frame)
        points = frame if given else measured_points(frame, x_metric, device, models)
    if models is not None:
        points = points[points["model"].isin(list(models))]
    points = points.dropna(subset=["top1", "x"])
    if points.empty:
        raise LsbenchError(f"no points to plot for {x_metric} on {device!r}")
    if set(points["source"].dropna()) - {source}:
        raise LsbenchError(f"the main points must all be {source}; add the others as overlay=")
    if set(points["metric"].dropna()) - {x_metric}:
        raise LsbenchError(f"the points are not all {x_metric}")
    # results already matched to ``device`` by measured_points (which may be "cuda" or a CPU model)
    _check_points(points, device if source == "reported" or given else None, source)
    device = str(points["device"].iloc[0]) if points["device"].notna().any() else device
    paths = _figure_paths(path, x_metric, device)
    extra = None
    if overlay is not None and not overlay.empty:
        extra = overlay.dropna(subset=["top1", "x"])
        if set(extra["metric"].dropna()) - {x_metric}:
            raise LsbenchError(f"the overlay points are not all {x_metric}")
        _check_points(extra, device, "overlay")
    if protocol_label is None:
        protocol_label = str(points["protocol"].dropna().iloc[0]) if points["protocol"].notna().any() else ""

    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    everything = points if extra is None else pd.concat([points, extra], ignore_index=True)
    families, styles = _family_styles(everything, highlight_family)

    with rc_context(_RC):
        fig = Figure(figsize=(9.6, 5.8), layout="constrained")
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        label_entries = _draw_panel(ax, points, extra, styles, highlight_family, better)
        src = "measured" if source == "measured" else "published"
        _axis_text(ax, x_metric, device, unit, better, src)
        subtitle = textwrap.fill(str(protocol_label), width=100)
        ax.set_title(title or f"Top-1 vs {x_metric} on {device}\n{subtitle}", fontsize=11)
        handles = _legend_handles(everything, families, styles, highlight_family, src)
        # outside the axes: with a dozen families a legend inside always covers some point or label
        legend = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0,
                           fontsize=8.5, framealpha=0.9)
        caption = textwrap.fill(_caption(everything, source, points.attrs.get("measured")), width=140)
        fig.supxlabel(caption, fontsize=7.5, color="0.3", x=0.01, ha="left", multialignment="left")
        canvas.draw()  # lay out axes, legend and caption; then freeze the layout and place the labels
        fig.set_layout_engine("none")
        renderer = canvas.get_renderer()
        lb = legend.get_window_extent(renderer)
        _place_labels(ax, label_entries, renderer, [(lb.x0, lb.y0, lb.x1, lb.y1)])
        _write(fig, paths)
    return paths


def _caption(points: pd.DataFrame, source: str, measured: tuple[str, str] | None) -> str:
    parts = []
    figure_top1 = points[points["top1_source"] == "figure"]
    if not figure_top1.empty:
        shown = []
        for _, p in figure_top1.iterrows():
            registry = zoo.get_card(p["model"]).published("top1")
            shown.append(f"{p['model']} {p['top1']:g}" + (f" (registry {registry:g})" if registry is not None else ""))
        parts.append("top-1: published (registry citations), except as plotted in the LSNet figure: "
                     + ", ".join(shown))
    else:
        parts.append("top-1: published (registry citations)")
    cites = sorted(set(points.loc[points["source"] == "reported", "cite"].dropna()))
    if cites:
        parts.append("reported speed: " + ", ".join(cites))
    if "measured" in set(points["source"]):
        when = "" if not measured else (f", {measured[0]}" if measured[0] == measured[1]
                                        else f", {measured[0]} to {measured[1]}")
        parts.append(f"measured speed: lsbench{when}")
    return "; ".join(parts)


def pareto_figure(frame: pd.DataFrame | None, device: str, out: str | Path, metric: str | None = None, *,
                  overlay: bool = False, protocol: str | None = None,
                  models: Sequence[str] | None = None, beside_published: bool = False) -> list[Path]:
    """The figure ``lsbench pareto`` draws into the folder ``out``: published figures only when ``frame`` is
    None (default metric throughput), else the measured ``metric`` (default latency) on ``device``, with
    ``overlay`` adding the published figures on the same device. ``beside_published``: the measured throughput
    of the LSNet figure's models drawn beside that figure (:func:`plot_beside_published`). The folder is
    created only once there is something to draw. Returns the PNG and SVG paths."""
    from lsbench.options import writable_dir

    if beside_published:
        if frame is None or overlay or models is not None or (metric or "throughput") != "throughput":
            raise LsbenchError("--beside-published draws measured throughput of the LSNet figure's models: "
                               "it takes --results, and not --reported, --overlay, --models or another --metric")
        points = beside_published_points(frame, device, protocol=protocol)
        return plot_beside_published(points, writable_dir(out))

    extra = None
    if frame is None:
        metric = metric or "throughput"
        points = reported_pareto_frame(device, metric, protocol=protocol, models=models)
    else:
        metric = metric or "latency"
        points = measured_points(frame, metric, device, models)
        if overlay:
            try:
                extra = reported_pareto_frame(points.attrs["device"], metric, protocol=protocol, models=models)
            except LsbenchError:
                raise LsbenchError(f"--overlay: no published {metric} on {points.attrs['device']} "
                                   f"to overlay") from None
    source = "reported" if frame is None else "measured"
    where = device if frame is None else points.attrs["device"]  # "cpu" resolved to the CPU that ran it
    return plot_pareto(points, metric, where, None, writable_dir(out), source=source, overlay=extra, models=models)


# ----------------------------------------------------------------------------------------- measured beside published

#: The published figure the measured one is drawn beside: the LSNet paper's throughput figure.
LSNET_FIGURE = {"device": "NVIDIA RTX 3090", "metric": "throughput", "protocol": None}
BESIDE_PANELS = ("published", "measured", "reported_only")


def figure_models(device: str = LSNET_FIGURE["device"], metric: str = LSNET_FIGURE["metric"],
                  protocol: str | None = LSNET_FIGURE["protocol"]) -> tuple[list[str], list[str]]:
    """The models of a published figure, split into (those the registry can build, the reported-only ones)."""
    names = list(reported_pareto_frame(device, metric, protocol=protocol)["model"])
    buildable = set(zoo.list_models())
    return [n for n in names if n in buildable], [n for n in names if n not in buildable]


def beside_published_points(frame: pd.DataFrame, device: str, published_device: str = LSNET_FIGURE["device"],
                            metric: str = LSNET_FIGURE["metric"], protocol: str | None = LSNET_FIGURE["protocol"]
                            ) -> pd.DataFrame:
    """Points of a published figure and of the same models measured here, one frame with a ``panel`` column.

    ``panel="published"``: the published figure as :func:`reported_pareto_frame` reproduces it.
    ``panel="measured"``: the measured ``metric`` on ``device`` (:func:`measured_points`, one device, one
    protocol, top-1 from the registry cards) of the figure's models that the registry can build.
    ``panel="reported_only"``: the figure's models without code (EdgeViT, AFFNet), with their published
    numbers (source "reported"): no number on ``device`` exists for them. ``attrs``: ``device`` (the CPU or GPU
    that ran), ``measured`` (dates), ``not_measured`` (buildable models without a record)."""
    published = reported_pareto_frame(published_device, metric, protocol=protocol)
    buildable, reported_only = figure_models(published_device, metric, protocol)
    measured = measured_points(frame, metric, device, buildable)
    others = published[published["model"].isin(reported_only)]
    points = pd.concat([published.assign(panel="published"), measured.assign(panel="measured"),
                        others.assign(panel="reported_only")], ignore_index=True)
    points.attrs.update(device=measured.attrs["device"], measured=measured.attrs.get("measured"),
                        published_device=published_device,
                        not_measured=[n for n in buildable if n not in set(measured["model"])])
    return points


def beside_published_figure(points: pd.DataFrame, highlight_family: str | None = "LSNet"):
    """The matplotlib Figure of :func:`beside_published_points`: the published figure reproduced (left,
    hollow), the same models measured here (right, filled), and a narrow strip beside it with the
    reported-only models at their published top-1, hollow and labelled as published, not measured. Same
    families, colours, markers and frontier style as :func:`plot_pareto`. Returns (figure, canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if "panel" not in points.columns or set(points["panel"]) - set(BESIDE_PANELS):
        raise LsbenchError("points must come from beside_published_points()")
    published = points[points["panel"] == "published"]
    measured = points[points["panel"] == "measured"]
    only = points[points["panel"] == "reported_only"]
    if published.empty or measured.empty:
        raise LsbenchError("a measured-beside-published figure needs both published and measured points")
    metric = str(measured["metric"].iloc[0])
    unit, better = _check_metric(metric)
    families, styles = _family_styles(points, highlight_family)
    device = points.attrs.get("device") or str(measured["device"].iloc[0])
    pub_device = points.attrs.get("published_device") or str(published["device"].iloc[0])

    fig = Figure(figsize=(17.5, 7.0), layout="constrained")
    canvas = FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, 3, width_ratios=[1, 1, 0.22])
    left = fig.add_subplot(grid[0, 0])
    right = fig.add_subplot(grid[0, 1], sharey=left)
    strip = fig.add_subplot(grid[0, 2], sharey=left)
    entries = {left: _draw_panel(left, published, None, styles, highlight_family, better),
               right: _draw_panel(right, measured, None, styles, highlight_family, better)}
    _axis_text(left, metric, pub_device, unit, better, "published")
    _axis_text(right, metric, device, unit, better, "measured")
    right.set_ylabel("")
    left.set_title(f"Published: the LSNet paper's figure, reproduced\n{pub_device}, "
                   f"protocol {published['protocol'].dropna().iloc[0] if published['protocol'].notna().any() else '?'}",
                   fontsize=11)
    right.set_title(textwrap.fill(f"Measured here, same models: {device}", width=70) + "\n"
                    + textwrap.fill(str(measured["protocol"].iloc[0]), width=80), fontsize=11)
    strip_entries = []
    for i, (_, p) in enumerate(only.iterrows()):
        color, marker = styles[p["family"]]
        strip.scatter([0], [p["top1"]], s=60, marker=marker, facecolors="none", edgecolors=color, linewidths=1.6,
                      zorder=3)
        strip_entries.append((0, p["top1"], p["model"], False, "0.15", True))
    strip.set_xlim(-0.6, 4.0)
    strip.set_xticks([])
    strip.tick_params(labelleft=False)
    strip.grid(True, axis="y", color="0.9", linewidth=0.8, zorder=0)
    strip.set_title("no code here:\npublished top-1,\nnot measured", fontsize=9)
    handles = _legend_handles(points.assign(source=points["source"].where(points["panel"] != "published", "reported")),
                              families, styles, highlight_family, "of each panel")
    legend = strip.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.05, 1.0), borderaxespad=0,
                          fontsize=8.5, framealpha=0.9)
    caption = _caption(points[points["panel"] != "reported_only"], "measured", points.attrs.get("measured"))
    missing = points.attrs.get("not_measured") or []
    caption += ("; reported-only (no code in timm or the zoo): " + ", ".join(only["model"])
                + f", drawn hollow at their published top-1 (their speed is published on {pub_device} only)")
    if missing:
        caption += "; in the published figure but not measured: " + ", ".join(missing)
    fig.supxlabel(textwrap.fill(caption, width=190), fontsize=7.5, color="0.3", x=0.01, ha="left",
                  multialignment="left")
    canvas.draw()
    fig.set_layout_engine("none")
    renderer = canvas.get_renderer()
    lb = legend.get_window_extent(renderer)
    for ax, found in (*entries.items(), (strip, strip_entries)):
        _place_labels(ax, found, renderer, [(lb.x0, lb.y0, lb.x1, lb.y1)])
    return fig, canvas


def plot_beside_published(points: pd.DataFrame, path: str | Path, highlight_family: str | None = "LSNet") -> list[Path]:
    """Write :func:`beside_published_figure` as PNG and SVG; a directory gets
    ``pareto_<metric>_<device>_beside_published.png/.svg``."""
    from matplotlib import rc_context

    with rc_context(_RC):
        fig, _ = beside_published_figure(points, highlight_family)
        device = points.attrs.get("device") or str(points.loc[points["panel"] == "measured", "device"].iloc[0])
        metric = str(points.loc[points["panel"] == "measured", "metric"].iloc[0])
        p = Path(path)
        if p.is_dir() or str(path).endswith(("/", "\\")):
            slug = re.sub(r"[^a-z0-9]+", "_", device.lower()).strip("_")
            p = p / f"pareto_{metric}_{slug}_beside_published"
        paths = figure_paths(p)
        _write(fig, paths)
    return paths
