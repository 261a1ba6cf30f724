"""The profile summary: one row per model, pivoted from the tidy results frame."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lsbench import query

__all__ = ["profile_summary", "compact_summary"]


def _pick(frame: pd.DataFrame, metric: str, counter: str | None = None) -> pd.DataFrame:
    return query.newest(query.metric_rows(frame, metric, counter))


def profile_summary(frame: pd.DataFrame, models: Sequence[str] | None = None,
                    job_key: str | None = None) -> pd.DataFrame:
    """Params (exact counts), GMACs per counter, latency (median, IQR, CV) and throughput per model.

    The newest record of each (model, metric, counter) wins (:func:`lsbench.query.newest`); ``job_key``
    restricts to the records of one profile job.
    """
    if job_key is not None:
        frame = frame[query.col(frame, "job_key") == job_key]
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
        out["peak_memory_MiB"] = _pick(frame, "peak_memory")["value"] / 2**20
        out["weights_MiB"] = _pick(frame, "weight_bytes")["value"] / 2**20
        out["energy_J_per_img"] = _pick(frame, "energy_per_image")["value"]
        out["device"] = latency.get("settings_device")
        out["batch"] = latency.get("settings_batch")
        out["threads"] = latency.get("settings_threads")
    return out.dropna(axis=1, how="all").reset_index()


def compact_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """What a person reads first: model, fused params, GMACs (fvcore when counted, else the first counter),
    latency as median ± IQR, throughput and peak memory. The full frame stays for csv/json and ``--wide``."""
    out = pd.DataFrame({"model": summary["model"]})
    if "params_fused" in summary:
        out["params (fused)"] = summary["params_fused"]
    gmacs = [c for c in summary.columns if c.startswith("gmacs_")]
    if gmacs:
        column = "gmacs_fvcore" if "gmacs_fvcore" in gmacs else gmacs[0]
        out[f"GMACs ({column.removeprefix('gmacs_')})"] = summary[column].round(4)
    if "latency_ms" in summary:
        iqr = summary["latency_iqr_ms"] if "latency_iqr_ms" in summary else None
        out["latency ms (median ± IQR)"] = [
            f"{m:.2f} ± {q:.2f}" if iqr is not None and pd.notna(q) else f"{m:.2f}"
            for m, q in zip(summary["latency_ms"], iqr if iqr is not None else [None] * len(summary))]
        out["img/s"] = summary["throughput_img_s"].round(1)
    if "peak_memory_MiB" in summary:
        out["peak MiB"] = summary["peak_memory_MiB"].round(1)
    return out
