"""The paper tables: measured numbers beside the cited published ones, with a flag per pair.

* :func:`paper_table` is the main comparison table, built from the registry (published figures) and a
  results frame (:meth:`lsbench.results.ResultsStore.frame`): params/MACs, GPU throughput, CPU latency and
  on-host mobile-runtime latency, each measured column next to the published figure it is compared with.
* :func:`deterministic_table` is the part that a CPU computes identically every time (params, fvcore MACs,
  published figures, flags) without a results store; CI regenerates it and fails when ``reports/`` is stale
  (:func:`stale_files`).
* :func:`reported_figure_table` lists every cited figure of every model.

A measured value *matches* a published one when it rounds to the published figure at the published
precision (:func:`within_rounding`); a mismatch is written into the flag column (``"✗ 5.49 vs 5.1"``) and
:func:`check_table` returns one message per mismatch. Missing values stay empty (NaN/None), never 0.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pandas as pd

import zoo
from lsbench.errors import LsbenchError

__all__ = ["within_rounding", "rounding_interval", "paper_table", "deterministic_table", "reported_figure_table",
           "check_table", "render_table", "write_table", "stale_files", "OK", "MISMATCH", "FORMATS"]

OK = "✓"
MISMATCH = "✗"
FORMATS = ("md", "csv", "tex")
#: the published GPU figure compared with when nothing measured says otherwise: the LSNet paper's
DEFAULT_PUBLISHED_GPU = ("NVIDIA RTX 3090", "lsnet")


# ----------------------------------------------------------------------------------------- rounding

def _decimal(value: Any) -> Decimal:
    """The number as written: repr of a float (0.079 -> Decimal('0.079')), ints and strings as they are."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a published figure must be a number, not a bool")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Decimal(repr(value))
    try:
        return Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"not a number: {value!r}") from None


def rounding_interval(published: float | int | str | Decimal) -> tuple[Decimal, Decimal]:
    """[low, high): the values that round (half up) to ``published`` at its written precision.

    11.4 -> [11.35, 11.45); 0.3 -> [0.25, 0.35); 0.079 -> [0.0785, 0.0795); 14708 -> [14707.5, 14708.5).
    """
    p = _decimal(published)
    if not p.is_finite():
        raise ValueError(f"not a finite number: {published!r}")
    half = Decimal(5).scaleb(p.as_tuple().exponent - 1)
    return p - half, p + half


def within_rounding(measured: float | int | str | Decimal, published: float | int | str | Decimal) -> bool:
    """Whether ``measured`` rounds to ``published`` at the published number's precision (decimal digits of
    the value as written, e.g. the toml float's repr): 11.37 vs 11.4 -> True, 11.46 vs 11.4 -> False."""
    m = _decimal(measured)
    if not m.is_finite():
        raise ValueError(f"not a finite number: {measured!r}")
    low, high = rounding_interval(published)
    return low <= m < high


def _decimals(published: Any) -> int:
    return max(0, -_decimal(published).as_tuple().exponent)


def _flag(measured: Any, published: Any) -> str | None:
    """"✓", "✗ 5.49 vs 5.1" (measured shown one digit finer than published, or finer still where needed:
    "✗ 1.248 vs 1.3"), or None if either is missing."""
    if _missing(measured) or _missing(published):
        return None
    if within_rounding(float(measured), published):
        return OK
    # one digit finer than published, more where that rounding would land the shown value inside the interval
    digits = _decimals(published) + 1
    shown = f"{float(measured):.{digits}f}"
    while within_rounding(shown, published) and digits < 12:
        digits += 1
        shown = f"{float(measured):.{digits}f}"
    return f"{MISMATCH} {shown} vs {published}"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------- registry

def _models(models: Sequence[str] | None) -> list[str]:
    """Registry order; names outside the registry (ad-hoc timm models) follow in the order given."""
    if models is None:
        return zoo.list_models()
    if isinstance(models, str):
        models = [models]
    for name in models:
        zoo.get_card(name)  # one-line error with suggestions for unknown names
    registry = zoo.list_models()
    wanted = list(dict.fromkeys(models))
    return [m for m in registry if m in wanted] + [m for m in wanted if m not in registry]


def _published(card: zoo.ModelCard, metric: str) -> tuple[Any, str | None, str | None]:
    fig = card.figure(metric)
    return (None, None, None) if fig is None else (fig.value, fig.cite, fig.note)


def _one_head(card: zoo.ModelCard) -> bool:
    """The published params count the deployed model with one head (the card's figure note says so)."""
    fig = card.figure("params")
    return fig is not None and bool(fig.note) and "one head" in fig.note


def _head_dist_params(name: str) -> int:
    """Parameters of the distillation head (``head_dist``) after fusing, counted on the meta device."""
    import torch

    with torch.device("meta"):
        model = zoo.reparameterize(zoo.create_model(name).eval(), inplace=True)
        head = getattr(model, "head_dist", None)
        return 0 if head is None else sum(p.numel() for p in head.parameters())


def _params_columns(name: str, card: zoo.ModelCard, fused_count: Any) -> dict[str, Any]:
    """params_fused_M, the published figure, the value compared (one head where the paper counts one) and
    the flag. The adjustment is never silent: params_note says what was left out of the comparison."""
    pub, cite, _ = _published(card, "params")
    fused_m = None if _missing(fused_count) else float(fused_count) / 1e6
    compared, note = fused_m, None
    if fused_m is not None and _one_head(card):
        head = _head_dist_params(name)
        if head:
            compared = (float(fused_count) - head) / 1e6
            note = f"compared without head_dist ({head / 1e6:.3f} M): published counts one head"
    return {"params_fused_M": fused_m, "params_pub_M": pub, "params_cite": cite,
            "params_ok": _flag(compared, pub), "params_note": note}


def _head_dist_macs(name: str) -> int:
    """MACs of the fused distillation head (one Linear: in x out), counted on the meta device."""
    import torch

    with torch.device("meta"):
        model = zoo.reparameterize(zoo.create_model(name).eval(), inplace=True)
        head = getattr(model, "head_dist", None)
        return head.in_features * head.out_features if isinstance(head, torch.nn.Linear) else 0


def _macs_columns(name: str, card: zoo.ModelCard, gmacs: Any) -> dict[str, Any]:
    """The flag compares with the first (most precise) published figure; every other published MACs figure
    that the measurement does not round to is reported in macs_note, never dropped. Where the paper counts
    one head (the _distill twins), the second head's MACs are left out of the comparison and the note says so."""
    pub, cite, note = _published(card, "macs")
    value = None if _missing(gmacs) else float(gmacs)
    compared, notes = value, []
    if value is not None and note and "one head" in note:
        head = _head_dist_macs(name)
        compared = value - head / 1e9
        notes.append(f"compared without head_dist ({head / 1e6:.3f} MMACs): published counts one head")
    others = [f for f in card.figures if f.metric == "macs"][1:]
    notes += [f"{f.cite} {f.value} G: {_flag(compared, f.value)}" for f in others
              if compared is not None and not within_rounding(compared, f.value)]
    return {"gmacs_fvcore": value, "macs_pub_G": pub, "macs_cite": cite, "macs_ok": _flag(compared, pub),
            "macs_note": "; ".join(notes) or None}


def _top1(card: zoo.ModelCard) -> dict[str, Any]:
    value, cite, _ = _published(card, "top1")
    return {"top1": value, "top1_cite": cite}


# ----------------------------------------------------------------------------------------- results frame

_SETTINGS_LABELS = {"settings_key", "settings_preset"}  # label a run without changing what is measured


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index,
                                                               dtype=object)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if _missing(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def settings_signature(frame: pd.DataFrame) -> pd.Series:
    """Per row, the settings that change a measurement (every settings_* column but key and preset label),
    as a JSON string: equal strings are the same recipe."""
    cols = sorted(c for c in frame.columns if c.startswith("settings_") and c not in _SETTINGS_LABELS)
    if not cols:
        return pd.Series([""] * len(frame), index=frame.index, dtype=object)
    return frame[cols].apply(
        lambda row: json.dumps({c: _plain(row[c]) for c in cols if not _is_none(row[c])}, sort_keys=True,
                               default=str), axis=1).astype(object)


def _is_none(value: Any) -> bool:
    return not isinstance(value, (list, tuple)) and _missing(value)


def _hardware(frame: pd.DataFrame) -> pd.Series:
    """GPU name for CUDA rows, CPU model otherwise (an on-host runtime runs on the host CPU)."""
    device = _col(frame, "settings_device")
    gpu, cpu = _col(frame, "gpu_name"), _col(frame, "cpu_model")
    out = []
    for d, g, c in zip(device, gpu, cpu):
        if isinstance(d, str) and d.startswith("cuda"):
            out.append(g if not _missing(g) else d)
        else:
            out.append(c if not _missing(c) else (d if not _missing(d) else None))
    return pd.Series(out, index=frame.index, dtype=object)


_EAGER = {"torch", "pytorch", "eager"}  # a runtime label that means plain PyTorch, not a mobile runtime


def _runtime(frame: pd.DataFrame) -> pd.Series:
    """The on-host mobile runtime of a row (extra_runtime, or a settings_device other than cpu/cuda)."""
    runtime, device = _col(frame, "extra_runtime"), _col(frame, "settings_device")
    out = []
    for r, d in zip(runtime, device):
        if isinstance(r, dict):  # lsbench.mobile.runtime_info(): the name is under "runtime"
            r = r.get("runtime")
        if not _missing(r) and str(r).lower() not in _EAGER:
            out.append(str(r))
        elif isinstance(d, str) and d not in ("cpu", "cuda") and not d.startswith("cuda"):
            out.append(d)
        else:
            out.append(None)
    return pd.Series(out, index=frame.index, dtype=object)


def _where(rows: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """Rows where ``mask`` is true (a boolean mask of any dtype; an empty frame stays as it is)."""
    if rows.empty:
        return rows
    return rows.loc[mask.fillna(False).astype(bool)]


def _measured(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["model", "metric", "value", "source", "time"])
    rows = _where(frame, _col(frame, "source").fillna("measured") == "measured").copy()
    rows["time"] = pd.to_datetime(_col(rows, "time"), utc=True, errors="coerce")
    return rows


def _newest(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest row per model (file order breaks ties: the later record wins), indexed by model."""
    if rows.empty:
        return rows.set_index("model") if "model" in rows.columns else rows
    ordered = rows.assign(_order=range(len(rows))).sort_values(["time", "_order"], na_position="first",
                                                              kind="stable")
    return ordered.groupby("model").tail(1).set_index("model")


def _select(rows: pd.DataFrame, selector: Any) -> pd.DataFrame:
    """Filter by a selector: None (all), a string (a preset, settings_key, GPU name, CPU model or runtime)
    or a mapping column -> value (a list/tuple/set value matches any of its members)."""
    if selector is None or rows.empty:
        return rows
    if isinstance(selector, Mapping):
        mask = pd.Series(True, index=rows.index)
        for column, want in selector.items():
            values = _col(rows, column)
            if isinstance(want, (list, tuple, set, frozenset)):
                mask &= values.isin(list(want))
            else:
                mask &= values == want
        return rows[mask]
    if isinstance(selector, str):
        wanted = selector.lower()
        mask = pd.Series(False, index=rows.index)
        for column in ("settings_preset", "settings_key", "gpu_name", "cpu_model", "extra_runtime"):
            mask |= _col(rows, column).map(lambda v: isinstance(v, str) and v.lower() == wanted)
        mask |= _runtime(rows).map(lambda v: isinstance(v, str) and v.lower() == wanted)
        return rows[mask]
    raise LsbenchError(f"a measurement selector must be a string or a mapping, got {type(selector).__name__}")


def _one_group(rows: pd.DataFrame, models: Sequence[str], what: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Restrict to one (hardware, runtime, settings) group: the one covering most of ``models``, the newest
    on a tie; then the newest record per model. Returns (rows indexed by model, a description)."""
    rows = _where(rows, rows["model"].isin(models)) if not rows.empty else rows
    if rows.empty:
        return rows.set_index("model"), {}
    rows = rows.assign(_hw=_hardware(rows), _rt=_runtime(rows), _sig=settings_signature(rows))
    groups = []
    for key, part in rows.groupby(["_hw", "_rt", "_sig"], dropna=False, sort=False):
        groups.append((part["model"].nunique(), part["time"].max(), key, part))
    groups.sort(key=lambda g: (g[0], g[1] if not pd.isna(g[1]) else pd.Timestamp.min.tz_localize("UTC")))
    count, _, (hw, rt, sig), part = groups[-1]
    newest = _newest(part)
    times = part["time"].dropna()
    info = {
        "what": what, "hardware": None if _missing(hw) else hw, "runtime": None if _missing(rt) else rt,
        "settings": json.loads(sig) if sig else {},
        "preset": _first(newest, "settings_preset"),
        "first": times.min().date().isoformat() if not times.empty else None,
        "last": times.max().date().isoformat() if not times.empty else None,
        "other_groups": len(groups) - 1,
    }
    return newest, info


def _first(rows: pd.DataFrame, column: str) -> Any:
    if column not in rows.columns:
        return None
    values = rows[column].dropna()
    return None if values.empty else _plain(values.iloc[0])


def _value(rows: pd.DataFrame, model: str, column: str = "value") -> Any:
    if model not in rows.index or column not in rows.columns:
        return None
    value = rows.at[model, column]
    return None if _missing(value) else _plain(value)


# ----------------------------------------------------------------------------------------- published GPU

def _gpu_figures(card: zoo.ModelCard) -> list[zoo.Figure]:
    return [f for f in card.figures if f.metric == "throughput"]


def _same_device(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    a, b = a.lower().strip(), b.lower().strip()
    return a == b or a in b or b in a


def _published_gpu(models: Sequence[str], info: Mapping[str, Any], choice: Any) -> tuple[str, str | None]:
    """The (device, protocol) of the published GPU column: given, else the most common one among the
    models' figures on the measured GPU (fp16 protocols when the measurement was fp16), else the LSNet
    paper's (RTX 3090, lsnet protocol)."""
    if choice is not None:
        if isinstance(choice, str):
            return choice, None
        device, protocol = choice
        return device, protocol
    gpu = info.get("hardware")
    settings = info.get("settings", {})
    half = settings.get("settings_dtype") in ("fp16", "bf16")
    counts: dict[tuple[str, str | None], int] = {}
    for name in models:
        for fig in _gpu_figures(zoo.get_card(name)):
            if _same_device(fig.device, gpu) and ("fp16" in (fig.protocol or "")) == half:
                counts[(fig.device, fig.protocol)] = counts.get((fig.device, fig.protocol), 0) + 1
    if counts:
        return max(counts, key=lambda k: counts[k])
    return DEFAULT_PUBLISHED_GPU


def _gpu_figure(card: zoo.ModelCard, device: str, protocol: str | None) -> zoo.Figure | None:
    for fig in _gpu_figures(card):
        if fig.device == device and protocol in (None, fig.protocol):
            return fig
    return None


def _mobile_figure(card: zoo.ModelCard) -> zoo.Figure | None:
    """The published on-phone latency (an iPhone figure)."""
    for fig in card.figures:
        if fig.metric == "latency" and fig.device and "iphone" in fig.device.lower():
            return fig
    return None


# ----------------------------------------------------------------------------------------- paper table

PAPER_COLUMNS = [
    "model", "family", "top1", "top1_cite",
    "params_fused_M", "params_pub_M", "params_cite", "params_ok", "gmacs_fvcore", "macs_pub_G", "macs_cite",
    "macs_ok", "macs_note", "gpu_img_s", "gpu_device", "gpu_protocol", "gpu_pub_img_s", "gpu_pub_device", "gpu_pub_protocol",
    "gpu_pub_cite",
    "cpu_ms", "cpu_threads", "cpu_batch", "cpu_model",
    "mobile_ms", "mobile_runtime", "mobile_threads", "mobile_pub_ms", "mobile_pub_device",
    "params_note",
]


def _protocol_label(info: Mapping[str, Any]) -> str | None:
    if not info:
        return None
    s = info.get("settings", {})
    parts = [f"preset {info['preset']}" if info.get("preset") else None,
             f"batch {s['settings_batch']}" if "settings_batch" in s else None,
             s.get("settings_dtype"), "amp" if s.get("settings_amp") else None,
             "fused" if s.get("settings_fused") else ("unfused" if s.get("settings_fused") is False else None)]
    return ", ".join(p for p in parts if p) or None


def paper_table(frame: pd.DataFrame | None, models: Sequence[str] | None = None, gpu: Any = None,
                cpu: Any = None, mobile: Any = None, *,
                published_gpu: str | tuple[str, str | None] | None = None) -> pd.DataFrame:
    """The paper's main comparison table: one row per model (registry order; ``models`` selects).

    Published figures come from the registry (top-1 with its citation key, params, MACs, GPU throughput,
    iPhone latency); measured ones from ``frame`` (``ResultsStore.frame()``): params of the fused model,
    fvcore GMACs at the card's input size, GPU throughput (img/s), CPU latency (ms, median) and on-host
    mobile-runtime latency (metric ``latency`` with an ``extra_runtime`` or a device other than cpu/cuda).

    ``gpu`` / ``cpu`` / ``mobile`` select the measurements of each column: a preset name, settings_key,
    GPU name, CPU model or runtime, or a mapping ``{column: value}``. Each column holds ONE hardware +
    settings group (the one covering most models, the newest on a tie; see ``table.attrs["measured"]``),
    and within it the newest record per model. ``published_gpu`` picks the published throughput figure
    (device, or (device, protocol)); by default the one on the measured GPU, else the LSNet paper's RTX 3090.
    Missing values are empty (NaN/None), never 0. ``params_ok``/``macs_ok``: "✓", "✗ <measured> vs
    <published>", or None when there is nothing to compare.
    """
    names = _models(models)
    rows = _measured(frame)

    def metric(name: str) -> pd.DataFrame:
        return _where(rows, _col(rows, "metric") == name)

    params = _newest(metric("params_fused"))
    macs_rows = metric("macs")
    macs_rows = _where(macs_rows, _col(macs_rows, "counter") == "fvcore")
    if "extra_resolution" in macs_rows.columns:
        native = macs_rows["model"].map(lambda m: zoo.get_card(m).input_size if m in names else None)
        res = macs_rows["extra_resolution"]
        macs_rows = _where(macs_rows, res.isna() | (res == native))
    macs = _newest(macs_rows)

    throughput = metric("throughput")
    throughput = _where(throughput, _col(throughput, "settings_device").map(
        lambda d: isinstance(d, str) and d.startswith("cuda")))
    gpu_rows, gpu_info = _one_group(_select(throughput, gpu), names, "GPU throughput")
    latency = metric("latency")
    runtime = _runtime(latency)
    cpu_lat = _where(latency, (_col(latency, "settings_device") == "cpu") & runtime.isna())
    cpu_rows, cpu_info = _one_group(_select(cpu_lat, cpu), names, "CPU latency")
    mob_lat = _where(latency, runtime.notna())
    mob_rows, mob_info = _one_group(_select(mob_lat, mobile), names, "mobile-runtime latency (on host)")

    pub_device, pub_protocol = _published_gpu(names, gpu_info, published_gpu)
    gpu_label = _protocol_label(gpu_info)

    out = []
    for name in names:
        card = zoo.get_card(name)
        row: dict[str, Any] = {"model": name, "family": card.family, **_top1(card)}
        row.update(_params_columns(name, card, _value(params, name)))
        row.update(_macs_columns(name, card, _value(macs, name)))
        value = _value(gpu_rows, name)
        row.update(gpu_img_s=value, gpu_device=gpu_info.get("hardware") if value is not None else None,
                   gpu_protocol=gpu_label if value is not None else None)
        fig = _gpu_figure(card, pub_device, pub_protocol)
        row.update(gpu_pub_img_s=fig.value if fig else None, gpu_pub_device=fig.device if fig else None,
                   gpu_pub_protocol=fig.protocol if fig else None, gpu_pub_cite=fig.cite if fig else None)
        value = _value(cpu_rows, name)
        row.update(cpu_ms=value, cpu_threads=_value(cpu_rows, name, "settings_threads"),
                   cpu_batch=_value(cpu_rows, name, "settings_batch"),
                   cpu_model=cpu_info.get("hardware") if value is not None else None)
        value = _value(mob_rows, name)
        threads = _value(mob_rows, name, "extra_threads")
        row.update(mobile_ms=value, mobile_runtime=mob_info.get("runtime") if value is not None else None,
                   mobile_threads=threads if threads is not None else _value(mob_rows, name, "settings_threads"))
        fig = _mobile_figure(card)
        row.update(mobile_pub_ms=fig.value if fig else None, mobile_pub_device=fig.device if fig else None)
        out.append(row)
    table = _frame(out, PAPER_COLUMNS, ints=("cpu_threads", "cpu_batch", "mobile_threads"))
    measured = {k: v for k, v in (("gpu", gpu_info), ("cpu", cpu_info), ("mobile", mob_info)) if v}
    provenance = [f"published GPU column: {pub_device}" + (f", protocol {pub_protocol}" if pub_protocol else "")]
    for key, info in measured.items():
        where = info["hardware"] or "unknown hardware"
        if info.get("runtime"):
            where += f" through {info['runtime']}"
        when = info["first"] if info["first"] == info["last"] else f"{info['first']} to {info['last']}"
        settings = ", ".join(f"{k.removeprefix('settings_')}={v}" for k, v in info["settings"].items())
        line = f"{info['what']}: measured on {where}, {when}; settings: {settings or 'unknown'}"
        if info.get("preset"):
            line += f" (preset {info['preset']})"
        if info["other_groups"]:
            line += f"; {info['other_groups']} other settings/hardware group(s) in the results not shown"
        provenance.append(line)
    table.attrs.update(kind="paper", deterministic=False, measured=measured,
                       published_gpu=(pub_device, pub_protocol),
                       made_by="lsbench.report.tables.paper_table (registry figures + results store)",
                       provenance=provenance)
    return table


_FLOATS = ("top1", "params_M", "params_fused_M", "params_pub_M", "gmacs_fvcore", "gmacs_ptflops", "gmacs_torch",
           "macs_pub_G", "gpu_img_s", "gpu_pub_img_s", "cpu_ms", "mobile_ms", "mobile_pub_ms")


def _frame(rows: list[dict[str, Any]], columns: Sequence[str], ints: Iterable[str] = ()) -> pd.DataFrame:
    """Rows -> a frame with exactly ``columns``; numbers as float (NaN when missing), counts as Int64."""
    table = pd.DataFrame(rows, columns=list(columns))
    for column in table.columns:
        if column in ints:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype("Int64")
        elif column in _FLOATS:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
        else:
            table[column] = table[column].astype(object).where(table[column].notna(), None)
    return table


# ----------------------------------------------------------------------------------------- deterministic

DETERMINISTIC_COLUMNS = ["model", "family", "input", "top1", "top1_cite", "params_M", "params_fused_M",
                         "params_pub_M", "params_cite", "params_ok", "gmacs_fvcore", "macs_pub_G", "macs_cite",
                         "macs_ok", "macs_note", "params_note"]


def deterministic_table(models: Sequence[str] | None = None, counters: Sequence[str] = ("fvcore",)) -> pd.DataFrame:
    """Params and MACs computed here (deterministic on any CPU) beside the published figures, with flags.

    Params as built and reparameterized (``lsbench.listing.param_counts_meta``, exact, on the meta device);
    GMACs of the fused model (``zoo.create_model`` + ``count_flops(..., fused=True)``) at the card's input
    size, batch 1, per counter (``gmacs_<counter>``); the flag ``macs_ok`` uses fvcore, the papers'
    convention (None without fvcore). No results store, no timing, no timestamps.
    """
    import torch

    from lsbench.counting import count_flops
    from lsbench.listing import param_counts_meta

    counters = list(dict.fromkeys([counters] if isinstance(counters, str) else counters))
    extra = [f"gmacs_{c}" for c in counters if c != "fvcore"]
    columns = [c for c in DETERMINISTIC_COLUMNS if c != "gmacs_fvcore" or "fvcore" in counters]
    columns[columns.index("macs_pub_G"):columns.index("macs_pub_G")] = extra
    out = []
    for name in _models(models):
        card = zoo.get_card(name)
        as_built, fused = param_counts_meta(name)
        torch.manual_seed(0)
        model = zoo.create_model(name).eval()
        counts = {c.counter: c.gmacs for c in count_flops(model, (1, 3, card.input_size, card.input_size),
                                                         counters, fused=True)}
        del model
        row: dict[str, Any] = {"model": name, "family": card.family, "input": card.input_size, **_top1(card),
                               "params_M": as_built / 1e6}
        row.update(_params_columns(name, card, fused))
        row.update(_macs_columns(name, card, counts.get("fvcore")))
        if "fvcore" not in counts:
            row["macs_ok"] = None
        row.update({f"gmacs_{c}": counts[c] for c in counters if c != "fvcore"})
        out.append(row)
    table = _frame(out, columns, ints=("input",))
    table.attrs.update(
        kind="deterministic", deterministic=True,
        made_by=f"lsbench.report.tables.deterministic_table(counters={tuple(counters)!r})",
        provenance=["params: exact counts as built and reparameterized (timm.utils.reparameterize_model), "
                    "meta device; GMACs: fused model, batch 1, the card's input size, "
                    + ", ".join(counters) + " (fvcore = the papers' FLOPs/MACs)"])
    return table


# ----------------------------------------------------------------------------------------- reported

def reported_figure_table(models: Sequence[str] | None = None) -> pd.DataFrame:
    """Every published figure of every model: the cited data in one table."""
    out = []
    for name in _models(models):
        card = zoo.get_card(name)
        for fig in card.figures:
            out.append({"model": name, "family": card.family, "metric": fig.metric, "value": fig.value,
                        "unit": fig.unit, "device": fig.device, "protocol": fig.protocol, "note": fig.note,
                        "cite": fig.cite, "citation": zoo.registry.citation(fig.cite)})
    table = pd.DataFrame(out, columns=["model", "family", "metric", "value", "unit", "device", "protocol",
                                       "note", "cite", "citation"])
    protocols = sorted({p for p in table["protocol"].dropna()})
    table.attrs.update(kind="reported", deterministic=True,
                       made_by="lsbench.report.tables.reported_figure_table (zoo/published.toml)",
                       provenance=[f"protocol {p}: {zoo.registry.protocol_description(p)}" for p in protocols])
    return table


# ----------------------------------------------------------------------------------------- check

_CHECKS = (("params_ok", "params (fused)", "params_pub_M", "M", "params_cite"),
           ("macs_ok", "MACs (fvcore)", "macs_pub_G", "G", "macs_cite"))


def check_table(table: pd.DataFrame) -> list[str]:
    """One message per measured-vs-published mismatch (a flag starting with ✗), for ``--check``."""
    messages = []
    for _, row in table.iterrows():
        for flag_col, what, pub_col, unit, cite_col in _CHECKS:
            flag = row.get(flag_col)
            if not isinstance(flag, str) or not flag.startswith(MISMATCH):
                continue
            measured = flag.split()[1]  # the value compared, as the flag shows it
            published = row.get(pub_col)
            low, high = rounding_interval(published)
            cite = row.get(cite_col)
            msg = (f"{row['model']}: {what} measured {measured} {unit} does not round to the published "
                   f"{published} {unit}{f' ({cite})' if isinstance(cite, str) else ''}; it would have to lie "
                   f"in [{low}, {high})")
            note = row.get("params_note") if flag_col == "params_ok" else None
            if isinstance(note, str) and note:
                msg += f"; {note}"
            messages.append(msg)
    return messages


# ----------------------------------------------------------------------------------------- rendering

# decimals shown in md/tex per column (csv keeps 6)
_DISPLAY = {"top1": None, "params_M": 3, "params_fused_M": 3, "gmacs_fvcore": 4, "gmacs_ptflops": 4,
            "gmacs_torch": 4, "gpu_img_s": 0, "cpu_ms": 2, "mobile_ms": 2}
_CSV_DECIMALS = 6


def _fmt(value: Any, decimals: int | None) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"):
        return str(int(value))
    if isinstance(value, float):
        if decimals is None:
            return repr(value) if value != int(value) or abs(value) >= 1e16 else _plain_number(value)
        return f"{value:,.{decimals}f}" if decimals == 0 else f"{value:.{decimals}f}"
    return str(value)


def _plain_number(value: float) -> str:
    """A published figure as written: 14708.0 -> 14708, 14.0 stays 14.0 only if written so (repr)."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") and abs(value) >= 100 else text


def _display(table: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=table.index)
    for column in table.columns:
        decimals = _DISPLAY.get(column)
        out[column] = [_fmt(v, decimals) for v in table[column]]
    return out


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _header_lines(table: pd.DataFrame, command: str | None) -> list[str]:
    attrs = table.attrs
    lines = []
    made_by = attrs.get("made_by", "lsbench.report.tables")
    lines.append(f"Generated by {made_by}" + (f"; regenerate with `{command}`" if command else "") + ".")
    if attrs.get("deterministic"):
        lines.append("Deterministic: byte-identical on every regeneration (no timestamps).")
    lines.extend(attrs.get("provenance", []))
    lines.append("Flags: ✓ measured rounds to the published figure at its precision; ✗ measured vs published; "
                 "empty: nothing to compare. Missing values are empty.")
    return lines


def _latex_escape(text: str) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            OK: r"\checkmark{}", MISMATCH: r"$\times$", "×": r"$\times$", "–": "--", "—": "---"}
    return "".join(repl.get(ch, ch) for ch in text)


def render_table(table: pd.DataFrame, fmt: str, command: str | None = None) -> str:
    """The table as Markdown (with a header saying how it was made), CSV, or a LaTeX tabular."""
    if fmt == "csv":
        rounded = table.copy()
        for column in rounded.columns:
            if pd.api.types.is_float_dtype(rounded[column]):
                rounded[column] = rounded[column].round(_CSV_DECIMALS)
        return rounded.to_csv(index=False, lineterminator="\n")
    shown = _display(table)
    header = _header_lines(table, command)
    if fmt == "md":
        align = ["right" if _numeric(table[c]) else "left" for c in table.columns]
        shown = shown.map(lambda v: v.replace("|", "\\|"))
        body = shown.to_markdown(index=False, disable_numparse=True, colalign=align)
        return "  \n".join(header) + "\n\n" + body + "\n"
    if fmt == "tex":
        spec = "".join("r" if _numeric(table[c]) else "l" for c in table.columns)
        lines = [f"% {line.replace(OK, 'checkmark').replace(MISMATCH, 'cross')}" for line in header]
        lines.append("% needs \\usepackage{booktabs} and \\usepackage{amssymb} (\\checkmark)")
        lines.append(f"\\begin{{tabular}}{{{spec}}}")
        lines.append("\\toprule")
        lines.append(" & ".join(_latex_escape(str(c)) for c in table.columns) + " \\\\")
        lines.append("\\midrule")
        for _, row in shown.iterrows():
            lines.append(" & ".join(_latex_escape(v) for v in row) + " \\\\")
        lines.append("\\bottomrule")
        lines.append("\\end{tabular}")
        return "\n".join(lines) + "\n"
    raise LsbenchError(f"unknown table format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def _paths(out_dir: str | Path, stem: str) -> dict[str, Path]:
    if not stem or "/" in stem or stem in (".", ".."):
        raise LsbenchError(f"a table stem must be a plain file name, got {stem!r}")
    out = Path(out_dir)
    return {fmt: out / f"{stem}.{fmt}" for fmt in FORMATS}


def write_table(table: pd.DataFrame, out_dir: str | Path, stem: str, command: str | None = None) -> list[Path]:
    """Write ``{stem}.md``, ``{stem}.csv`` and ``{stem}.tex`` into ``out_dir``; returns the paths.

    ``command`` (e.g. the CLI line that made the table) goes into the md/tex header; the header carries the
    table's provenance (``table.attrs``) and never a generation timestamp, so regenerating from the same
    inputs gives the same bytes.
    """
    paths = _paths(out_dir, stem)
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        for fmt, path in paths.items():
            path.write_bytes(render_table(table, fmt, command).encode("utf-8"))
    except OSError as exc:
        raise LsbenchError(f"cannot write table to {out_dir}: {exc.strerror or exc}") from None
    return list(paths.values())


def stale_files(table: pd.DataFrame, out_dir: str | Path, stem: str, command: str | None = None) -> list[Path]:
    """The files of ``{stem}.md/.csv/.tex`` in ``out_dir`` that are missing or differ from a fresh rendering."""
    stale = []
    for fmt, path in _paths(out_dir, stem).items():
        try:
            current = path.read_bytes()
        except OSError:
            stale.append(path)
            continue
        if current != render_table(table, fmt, command).encode("utf-8"):
            stale.append(path)
    return stale
