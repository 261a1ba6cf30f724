"""The profile summary: one row per model, pivoted from the tidy results frame."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

__all__ = ["profile_summary", "render"]


def _pick(frame: pd.DataFrame, metric: str, counter: str | None = None) -> pd.DataFrame:
    rows = frame[frame["metric"] == metric]
    if counter is not None:
        rows = rows[rows["counter"] == counter]
    return rows.sort_values("time").groupby("model").tail(1).set_index("model")


def profile_summary(frame: pd.DataFrame, models: Sequence[str] | None = None,
                    settings_key: str | None = None) -> pd.DataFrame:
    """Params (exact counts), GMACs per counter, latency (median, IQR, CV) and throughput per model.

    The newest record of each (model, metric, counter) wins; ``settings_key`` restricts to one job.
    """
    if settings_key is not None:
        frame = frame[frame["settings_key"] == settings_key]
    if models is not None:
        frame = frame[frame["model"].isin(models)]
    order = list(models) if models is not None else list(dict.fromkeys(frame["model"]))
    out = pd.DataFrame(index=pd.Index(order, name="model"))
    for metric in ("params", "params_fused"):
        out[metric] = _pick(frame, metric)["value"].astype("Int64")
    for counter in sorted(frame.loc[frame["metric"] == "macs", "counter"].dropna().unique()):
        out[f"gmacs_{counter}"] = _pick(frame, "macs", counter)["value"]
    latency = _pick(frame, "latency")
    if not latency.empty:
        out["latency_ms"] = latency["value"]
        out["latency_iqr_ms"] = latency.get("stats_iqr")
        out["latency_cv_pct"] = latency.get("stats_cv") * 100 if "stats_cv" in latency else None
        out["latency_n"] = latency.get("stats_n")
        out["throughput_img_s"] = _pick(frame, "throughput")["value"]
        out["device"] = latency.get("settings_device")
        out["batch"] = latency.get("settings_batch")
        out["threads"] = latency.get("settings_threads")
    return out.dropna(axis=1, how="all").reset_index()


def render(summary: pd.DataFrame, fmt: str) -> str:
    """The summary as csv, json (records) or Markdown text."""
    rounded = summary.round(4)
    if fmt == "csv":
        return rounded.to_csv(index=False)
    if fmt == "json":
        return rounded.to_json(orient="records", indent=2)
    if fmt == "md":
        return rounded.to_markdown(index=False)
    raise ValueError(f"unknown format {fmt!r}")
