"""The profile summary: one row per model, pivoted from the tidy results frame."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lsbench import query

__all__ = ["profile_summary"]


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
