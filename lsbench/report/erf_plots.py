"""ERF heat maps (RepLKNet style): the normalised map in a fixed colormap, colourbar, no axes.

Plots are functions of the maps and tables of :mod:`lsbench.erf` only (matplotlib's object API, no
pyplot state, any backend). Each figure is written as
PNG and SVG (``path`` with its suffix replaced); every title states the weights (``random init``
when no checkpoint was loaded), the input size and the number of images.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lsbench.errors import LsbenchError

from .render import figure_paths

__all__ = ["CMAP", "plot_erf", "plot_erf_comparison", "provenance_line", "erf_report"]

#: Colormap used by RepLKNet's ERF figures (seaborn heatmap, ``RdYlGn``), on the fixed range [0, 1].
CMAP = "RdYlGn"


def _save(fig, path: str | Path) -> list[Path]:
    paths = figure_paths(path)
    try:
        for p in paths:
            fig.savefig(p, dpi=150 if p.suffix == ".png" else None, bbox_inches="tight")
    except OSError as e:
        raise LsbenchError(f"cannot write figure {p}: {e.strerror or e}") from None
    return paths


def provenance_line(weights: str, size, num_images: int) -> str:
    """``"weights: random init · input 1024×1024 · 50 images"``."""
    size_txt = f"{size}×{size}" if isinstance(size, (int, np.integer)) else str(size).replace("x", "×")
    return f"weights: {weights} · input {size_txt} · {int(num_images)} image{'s' if int(num_images) != 1 else ''}"


def _check_map(m, what: str) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise LsbenchError(f"{what}: an ERF map must be a non-empty 2-D array, got shape {m.shape}")
    return m


def _draw(ax, m: np.ndarray, fig, colorbar: bool = True):
    im = ax.imshow(m, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def plot_erf(erf_map, title: str, path: str | Path, *, weights: str, num_images: int, size=None) -> list[Path]:
    """Heat map of one normalised ERF map; writes ``<path>.png`` and ``<path>.svg`` and returns both paths.

    ``weights`` (e.g. ``"random init"`` or the checkpoint label of :func:`lsbench.erf.weights_label`) and
    ``num_images`` are required so that the title always states them; ``size`` defaults to the map's shape.
    """
    from matplotlib.figure import Figure

    m = _check_map(erf_map, title)
    if size is None:
        size = m.shape[0] if m.shape[0] == m.shape[1] else f"{m.shape[0]}x{m.shape[1]}"
    fig = Figure(figsize=(6, 5.4))
    ax = fig.subplots()
    _draw(ax, m, fig)
    ax.set_title(f"{title}\n{provenance_line(weights, size, num_images)}", fontsize=10)
    return _save(fig, path)


def _ratio_text(rows) -> str:
    """``"t=0.2: 0.051  t=0.3: 0.075\nt=0.5: 0.124  t=0.99: 0.242"`` (two per line)."""
    rows = rows.sort_values("threshold")
    items = [f"t={t:g}: {r:.3f}" if not math.isnan(r) else f"t={t:g}: n/a" for t, r in zip(rows.threshold, rows.ratio)]
    return "\n".join("  ".join(items[i:i + 2]) for i in range(0, len(items), 2))


def plot_erf_comparison(maps: Mapping, table, path: str | Path, *, layer: str = "final",
                        title: str | None = None) -> list[Path]:
    """Side-by-side ERF maps of several models, each subtitled with its area ratios at every threshold.

    ``maps``: ``{model: map}`` or ``{model: {layer: map}}`` (as returned by
    :func:`lsbench.erf.erf_analysis`; ``layer`` picks the map). ``table``: the tidy table of
    ``erf_analysis``; its rows for (model, layer) give the ratios, the weights, the input size and the
    number of images. Writes ``<path>.png`` and ``<path>.svg`` and returns both paths.
    """
    from matplotlib.figure import Figure

    if not maps:
        raise LsbenchError("no ERF maps to plot")
    needed = {"model", "layer", "threshold", "ratio", "weights", "size", "num_images"}
    if missing := needed - set(table.columns):
        raise LsbenchError(f"ERF table lacks columns: {', '.join(sorted(missing))}")
    panels = []
    for model, entry in maps.items():
        if isinstance(entry, Mapping):
            if layer not in entry:
                raise LsbenchError(f"no {layer!r} ERF map for {model} (have {', '.join(map(str, entry))})")
            entry = entry[layer]
        rows = table[(table.model == model) & (table.layer == layer)]
        if rows.empty:
            raise LsbenchError(f"the ERF table has no rows for model {model}, layer {layer}")
        panels.append((model, _check_map(entry, model), rows))

    n = len(panels)
    cols = min(n, 4)
    nrows = math.ceil(n / cols)
    fig = Figure(figsize=(4.6 * cols, 5.3 * nrows + 0.6))
    axes = fig.subplots(nrows, cols, squeeze=False)
    im = None
    for ax, (model, m, rows) in zip(axes.flat, panels):
        im = _draw(ax, m, fig, colorbar=False)
        first = rows.iloc[0]
        ax.set_title(f"{model} ({layer})\n{provenance_line(first.weights, first['size'], first.num_images)}\n"
                     f"area ratio\n{_ratio_text(rows)}", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_axis_off()
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02)
    # one suptitle only when all panels share provenance (each panel states its own anyway)
    sel = table[table.model.isin([p[0] for p in panels]) & (table.layer == layer)]
    sizes, counts = sel["size"].astype(str).unique(), sel.num_images.unique()
    head = title or f"Effective receptive field ({layer} features)"
    if len(sizes) == 1 and len(counts) == 1:
        weights = sel.weights.unique()
        w = weights[0] if len(weights) == 1 else "per panel"
        head += f"\n{provenance_line(w, sel['size'].iloc[0], counts[0])}"
    fig.suptitle(head, fontsize=11)
    return _save(fig, path)


def check_erf_memory(models, size: int, num_images: int, device: str = "cpu") -> None:
    """Refuse, before any image is loaded, an ERF whose image stack plus one image's forward and backward
    cannot fit the device."""
    import torch

    import zoo
    from lsbench.resources import check_fits

    for name in models:
        with torch.device("meta"):
            model = zoo.create_model(name).eval()
        try:
            check_fits(model, (1, 3, size, size), device, backward=True, held_bytes=num_images * 3 * size * size * 4)
        except LsbenchError as exc:
            raise LsbenchError(f"ERF of {name} over {num_images} images at {size} px: {exc}") from None


def erf_report(models, out, *, images=None, num_images: int = 50, size: int = 1024, checkpoint=None,
               stages: bool = True, device: str = "cpu", seed: int = 0):
    """What ``lsbench erf`` makes: the ERF of each model over the same images, one heat map per model, a
    comparison figure for several, and the area-ratio table as CSV and Markdown in ``out``.
    Returns (table, written paths)."""
    from lsbench.erf import erf_analysis, load_images
    from lsbench.options import writable_dir

    from .render import render_frame

    names = list(models)
    check_erf_memory(names, size, num_images, device)
    batch = load_images(images, num_images=num_images, size=size, seed=seed)
    maps, table = erf_analysis(names, batch, weights={n: checkpoint for n in names}, stages=stages, seed=seed,
                               device=device)
    out = writable_dir(out)
    written = []
    for name in names:
        final = table[(table["model"] == name) & (table["layer"] == "final")].iloc[0]
        written += plot_erf(maps[name]["final"], f"{name} ERF", out / f"erf_{name}", weights=final["weights"],
                            num_images=len(batch), size=size)
    if len(names) > 1:
        written += plot_erf_comparison(maps, table, out / ("erf_compare_" + "_".join(names)))
    stem = out / ("erf_ratios_" + "_".join(names))
    for suffix, fmt in ((".csv", "csv"), (".md", "md")):
        path = stem.with_suffix(suffix)
        try:
            path.write_text(render_frame(table, fmt) + ("\n" if fmt == "md" else ""))
        except OSError as exc:
            raise LsbenchError(f"cannot write {path}: {exc.strerror or exc}") from None
        written.append(path)
    return table, written
