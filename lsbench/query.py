"""Queries over the tidy results frame (:meth:`lsbench.results.ResultsStore.frame`): the one owner of
"which records answer this question".

Every report (the profile summary, the paper tables, the Pareto figures) asks the same questions of the
results: the measured rows of one metric, the newest record per model, the rows of one selector (a preset,
GPU, CPU or runtime), and the one (hardware, runtime, settings) group that covers most models. They are
answered here once, so that "newest" or "same settings" cannot mean two things in two reports.

The frame carries public ``hardware`` (GPU name for CUDA rows, the CPU model otherwise: an on-host runtime
runs on the host CPU) and ``runtime`` (``eager`` or the on-host runtime's name) columns, filled by
:func:`hardware` and :func:`runtime`, which also read records written before settings named the runtime.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lsbench.errors import LsbenchError
from lsbench.settings import EAGER, RUNTIMES

__all__ = ["col", "is_missing", "plain", "hardware", "runtime", "settings_signature", "where", "measured",
           "metric_rows", "mode", "inference", "newest", "select", "one_group", "first_value", "value_of", "SETTINGS_LABELS"]

# runtime labels of old records that mean plain PyTorch
_EAGER_LABELS = frozenset({"torch", "pytorch", EAGER})
#: settings columns that label a run without changing what is measured
SETTINGS_LABELS = frozenset({"settings_key", "settings_preset"})


def col(frame: pd.DataFrame, name: str) -> pd.Series:
    """The column ``name``, or a column of None when the frame has none (old or sparse results)."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def is_missing(value: Any) -> bool:
    """None or NaN/NA (a list or other non-scalar is not missing)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def plain(value: Any) -> Any:
    """A frame cell as a plain Python value: numpy scalars unwrapped, NaN as None, lists element-wise."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if is_missing(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def hardware(frame: pd.DataFrame) -> pd.Series:
    """Per row, what ran it: the GPU name for CUDA rows, the CPU model otherwise."""
    device = col(frame, "settings_device")
    gpu, cpu = col(frame, "gpu_name"), col(frame, "cpu_model")
    out = []
    for d, g, c in zip(device, gpu, cpu):
        if isinstance(d, str) and d.startswith("cuda"):
            out.append(g if not is_missing(g) else d)
        else:
            out.append(c if not is_missing(c) else ("cpu" if not is_missing(d) else None))
    return pd.Series(out, index=frame.index, dtype=object)


def runtime(frame: pd.DataFrame) -> pd.Series:
    """Per row, the runtime that executed the model: ``eager`` (PyTorch) or an on-host runtime's name.

    ``settings_runtime`` says it; records from before that field named the runtime as their device
    (``settings_device == "onnxruntime"``) or in ``extra_runtime``, and are read the same way."""
    named, device, extra = col(frame, "settings_runtime"), col(frame, "settings_device"), col(frame, "extra_runtime")
    out = []
    for r, d, e in zip(named, device, extra):
        if isinstance(e, dict):  # lsbench.runtimes.runtime_info(): the name is under "runtime"
            e = e.get("runtime")
        if isinstance(r, str) and r:
            out.append(r)
        elif isinstance(d, str) and d in RUNTIMES:
            out.append(d)
        elif isinstance(e, str) and e and e.lower() not in _EAGER_LABELS:
            out.append(e)
        elif is_missing(d):
            out.append(None)
        else:
            out.append(EAGER)
    return pd.Series(out, index=frame.index, dtype=object)


def settings_signature(frame: pd.DataFrame) -> pd.Series:
    """Per row, the settings that change a measurement (every settings_* column but the key and preset
    label) as a JSON string: equal strings are the same recipe."""
    cols = sorted(c for c in frame.columns if c.startswith("settings_") and c not in SETTINGS_LABELS)
    if not cols:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)

    def signature(row: pd.Series) -> str:
        present = {c: plain(row[c]) for c in cols if isinstance(row[c], (list, tuple)) or not is_missing(row[c])}
        if present.get("settings_runtime") == EAGER:  # records from before the field are eager too
            del present["settings_runtime"]
        return json.dumps(present, sort_keys=True, default=str)

    return frame[cols].apply(signature, axis=1).astype(object)


def where(rows: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """Rows where ``mask`` is true (a boolean mask of any dtype; an empty frame stays as it is)."""
    if rows.empty:
        return rows
    return rows.loc[mask.fillna(False).astype(bool)]


def mode(frame: pd.DataFrame) -> pd.Series:
    """Per row, what one timed step did: ``infer`` or ``train`` (records from before train mode: infer)."""
    named = col(frame, "settings_mode")
    return pd.Series([m if isinstance(m, str) and m else "infer" for m in named], index=frame.index, dtype=object)


def inference(rows: pd.DataFrame) -> pd.DataFrame:
    """The inference rows: the paper tables and Pareto figures compare forward passes, never a train step."""
    return where(rows, mode(rows) == "infer")


def measured(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The measured (not reported) rows, with ``time`` as UTC timestamps."""
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["model", "metric", "value", "source", "time", "hardware", "runtime", "mode"])
    rows = where(frame, col(frame, "source").fillna("measured") == "measured").copy()
    rows["time"] = pd.to_datetime(col(rows, "time"), utc=True, errors="coerce")
    for name, derive in (("hardware", hardware), ("runtime", runtime), ("mode", mode)):
        if name not in rows.columns:
            rows[name] = derive(rows)
    return rows


def metric_rows(rows: pd.DataFrame, metric: str, counter: str | None = None) -> pd.DataFrame:
    """The rows of one metric (and one counter, for FLOP counts)."""
    out = where(rows, col(rows, "metric") == metric)
    return out if counter is None else where(out, col(out, "counter") == counter)


def newest(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest row per model (file order breaks ties: the later record wins), indexed by model."""
    if rows.empty:
        return rows.set_index("model") if "model" in rows.columns else rows
    times = pd.to_datetime(col(rows, "time"), utc=True, errors="coerce")
    ordered = rows.assign(_time=times, _order=range(len(rows))).sort_values(
        ["_time", "_order"], na_position="first", kind="stable")
    return ordered.groupby("model").tail(1).drop(columns=["_time", "_order"]).set_index("model")


def select(rows: pd.DataFrame, selector: Any) -> pd.DataFrame:
    """Filter by a selector: None (all), a string (a preset, settings_key, GPU name, CPU model or runtime)
    or a mapping column -> value (a list/tuple/set value matches any of its members)."""
    if selector is None or rows.empty:
        return rows
    if isinstance(selector, Mapping):
        mask = pd.Series(True, index=rows.index)
        for column, want in selector.items():
            values = col(rows, column)
            if isinstance(want, (list, tuple, set, frozenset)):
                mask &= values.isin(list(want))
            else:
                mask &= values == want
        return rows[mask]
    if isinstance(selector, str):
        wanted = selector.lower()
        mask = pd.Series(False, index=rows.index)
        for column in ("settings_preset", "settings_key", "gpu_name", "cpu_model", "hardware", "runtime"):
            mask |= col(rows, column).map(lambda v: isinstance(v, str) and v.lower() == wanted)
        return rows[mask]
    raise LsbenchError(f"a measurement selector must be a string or a mapping, got {type(selector).__name__}")


def one_group(rows: pd.DataFrame, models: Sequence[str], what: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Restrict to one (hardware, runtime, settings) group: the one covering most of ``models``, the newest
    on a tie; then the newest record per model. Returns (rows indexed by model, a description)."""
    rows = where(rows, rows["model"].isin(models)) if not rows.empty else rows
    if rows.empty:
        return rows.set_index("model"), {}
    rows = rows.assign(_sig=settings_signature(rows))
    groups = []
    for key, part in rows.groupby(["hardware", "runtime", "_sig"], dropna=False, sort=False):
        groups.append((part["model"].nunique(), part["time"].max(), key, part))
    groups.sort(key=lambda g: (g[0], g[1] if not pd.isna(g[1]) else pd.Timestamp.min.tz_localize("UTC")))
    _, _, (hw, rt, sig), part = groups[-1]
    latest = newest(part.drop(columns="_sig"))
    times = part["time"].dropna()
    info = {
        "what": what, "hardware": None if is_missing(hw) else hw,
        "runtime": None if is_missing(rt) or rt == EAGER else rt,
        "settings": json.loads(sig) if sig else {},
        "preset": first_value(latest, "settings_preset"),
        "first": times.min().date().isoformat() if not times.empty else None,
        "last": times.max().date().isoformat() if not times.empty else None,
        "other_groups": len(groups) - 1,
    }
    return latest, info


def first_value(rows: pd.DataFrame, column: str) -> Any:
    """The first non-missing value of ``column`` (None when there is none)."""
    if column not in rows.columns:
        return None
    values = rows[column].dropna()
    return None if values.empty else plain(values.iloc[0])


def value_of(rows: pd.DataFrame, model: str, column: str = "value") -> Any:
    """``rows.at[model, column]`` of rows indexed by model, as a plain value (None when absent)."""
    if model not in rows.index or column not in rows.columns:
        return None
    value = rows.at[model, column]
    return None if is_missing(value) else plain(value)
