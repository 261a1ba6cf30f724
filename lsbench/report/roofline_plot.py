"""The roofline figure of an anatomy run: every part of every model against the measured ceilings.

x: arithmetic intensity in FLOP/byte (2 FLOP per MAC, so twice the tables' MAC/byte); y: achieved GFLOP/s.
One colour per part type (``kind``), one marker per model, marker area proportional to the part's share
of its model's latency. Parts with no counted MACs (glue, pure data movement) have no place on a roofline
and are listed in the caption instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ..roofline import COMPUTE, MEMORY, Ceiling  # noqa: E402

__all__ = ["plot_roofline", "KIND_ORDER"]

KIND_ORDER = ["stem", "downsample", "depthwise mixer", "SE", "LKP", "SKA", "LSConv BN+residual", "attention",
              "FFN / MLP", "head", "other"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def _colours(kinds: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    known = [k for k in KIND_ORDER if k in kinds] + sorted(set(kinds) - set(KIND_ORDER))
    # SKA gets the one colour that stands out; the rest cycle through tab10 around it
    out, palette = {}, [c for i, c in enumerate(cmap.colors) if i != 3]
    for i, kind in enumerate(k for k in known if k != "SKA"):
        out[kind] = palette[i % len(palette)]
    out["SKA"] = cmap.colors[3]
    return out


def _label_ceilings(ax, compute: Ceiling, memories: Sequence[Ceiling], lo: float) -> None:
    """Name each roof beside it. Done after layout: a slope's on-screen angle depends on the final axes size."""
    peak = compute.value / 1e9
    dram_ridge = peak / (memories[-1].value / 1e9)
    ax.text(dram_ridge * 1.15, peak / 1.1, f"{compute.name}: {peak:.1f} GFLOP/s", ha="left", va="top", fontsize=9,
            color="0.2")
    for c in memories:
        bw = c.value / 1e9
        ridge = peak / bw
        x1 = ridge / 1.6
        x0 = max(lo * 1.1, x1 / 12)
        p0, p1 = ax.transData.transform([(x0, bw * x0), (x1, bw * x1)])
        angle = float(np.degrees(np.arctan2(p1[1] - p0[1], p1[0] - p0[0])))
        normal = np.radians(angle + 90)
        ax.annotate(f"{c.name}: {bw:.1f} GB/s, ridge {ridge:.2f} FLOP/B", (x0, bw * x0),
                    xytext=(5 * np.cos(normal), 5 * np.sin(normal)), textcoords="offset points", fontsize=8.5,
                    color="0.2", rotation=angle, rotation_mode="anchor", ha="left", va="bottom")


def plot_roofline(by_part: pd.DataFrame, ceilings: Sequence[Ceiling], path: str | Path,
                  title: str = "") -> list[Path]:
    """Draw ``by_part`` (rows per model and part: macs, bytes, time_ms, share, kind) under ``ceilings``;
    writes ``path``.png and ``path``.svg and returns both paths."""
    path = Path(path)
    frame = by_part[(by_part["macs"] > 0) & (by_part["bytes"] > 0) & (by_part["time_ms"] > 0)].copy()
    frame["flop_per_byte"] = 2 * frame["macs"] / frame["bytes"]
    frame["gflops"] = 2 * frame["macs"] / (frame["time_ms"] / 1e3) / 1e9
    left_out = by_part[~by_part.index.isin(frame.index)]

    compute = max((c for c in ceilings if c.kind == COMPUTE), key=lambda c: c.value)
    memories = sorted((c for c in ceilings if c.kind == MEMORY), key=lambda c: -c.value)
    lo = min(frame["flop_per_byte"].min() / 2, 0.02) if len(frame) else 0.02
    hi = max(frame["flop_per_byte"].max() * 3, 3 * compute.value / memories[-1].value) if len(frame) else 100
    xs = np.logspace(np.log10(lo), np.log10(hi), 200)

    fig, ax = plt.subplots(figsize=(11, 7), dpi=130)
    peak = compute.value / 1e9
    ax.axhline(peak, color="0.25", lw=1.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ymin = min(frame["gflops"].min() / 2, peak / 200) if len(frame) else peak / 200
    ax.set_ylim(ymin, max(peak * 2.2, frame["gflops"].max() * 1.5 if len(frame) else 0))
    for c, style in zip(memories, ["--", "-", ":", "-."]):
        bw = c.value / 1e9
        ax.plot(xs, np.minimum(bw * xs, peak), style, color="0.35", lw=1.4)
        ax.plot([peak / bw], [peak], "|", color="0.35", ms=10)

    colours = _colours(list(frame["kind"].unique()) + list(left_out.get("kind", pd.Series(dtype=str)).unique()))
    models = list(dict.fromkeys(by_part["model"]))
    markers = {m: _MARKERS[i % len(_MARKERS)] for i, m in enumerate(models)}
    for _, row in frame.iterrows():
        ax.scatter(row["flop_per_byte"], row["gflops"], s=30 + 900 * row["share"], marker=markers[row["model"]],
                   color=colours[row["kind"]], edgecolor="black", linewidth=0.6, alpha=0.85, zorder=3)
    for _, row in frame[frame["kind"] == "SKA"].iterrows():
        ax.annotate(f"SKA ({row['model']}, {100 * row['share']:.1f}% of time)",
                    (row["flop_per_byte"], row["gflops"]), xytext=(12, -14), textcoords="offset points",
                    fontsize=8.5, color=colours["SKA"], arrowprops=dict(arrowstyle="-", color=colours["SKA"], lw=0.7))

    ax.set_xlabel("arithmetic intensity (FLOP per byte moved; 1 MAC = 2 FLOP)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.08)
    ax.set_title(f"Roofline of every part, measured ceilings ({title})" if title else "Roofline of every part",
                 fontsize=11)

    kinds_present = [k for k in KIND_ORDER if k in set(frame["kind"])] + sorted(set(frame["kind"]) - set(KIND_ORDER))
    kind_handles = [Line2D([], [], marker="o", ls="", color=colours[k], markeredgecolor="black", ms=8, label=k)
                    for k in kinds_present]
    model_handles = [Line2D([], [], marker=markers[m], ls="", color="0.75", markeredgecolor="black", ms=8, label=m)
                     for m in models]
    first = ax.legend(handles=kind_handles, title="part type", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                      fontsize=8.5, title_fontsize=9, frameon=False)
    ax.add_artist(first)
    ax.legend(handles=model_handles, title="model (area = share of latency)", loc="upper left",
              bbox_to_anchor=(1.01, 0.42), fontsize=8.5, title_fontsize=9, frameon=False)
    if len(left_out):
        names = ", ".join(sorted({f"{r['part']}" for _, r in left_out.iterrows()}))
        fig.text(0.01, 0.01, f"Not on the roofline (no counted MACs): {names}. Bytes: per-op reads + writes, "
                 f"no cross-op cache reuse.", fontsize=7.5, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _label_ceilings(ax, compute, memories, lo)
    written = []
    for suffix in (".png", ".svg"):
        target = path.with_suffix(suffix)
        fig.savefig(target, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written
