"""The paper tables: measured numbers beside the cited published ones, with a flag per pair.

* :func:`paper_table` is the main comparison table, built from the registry (published figures) and a
  results frame (:meth:`lsbench.results.ResultsStore.frame`): params/MACs, GPU throughput, CPU latency and
  on-host mobile-runtime latency, each measured column next to the published figure it is compared with.
* :func:`deterministic_table` is the part that a CPU computes identically every time (params, fvcore MACs,
  published figures, flags) without a results store; CI regenerates it and fails when ``reports/`` is stale
  (:func:`lsbench.report.render.stale_files`).
* :func:`reported_figure_table` lists every cited figure of every model.

Which records answer each column is :mod:`lsbench.query`'s business, what matches a published figure is
:mod:`lsbench.report.flags`', and writing the tables is :mod:`lsbench.report.render`'s. Missing values stay
empty (NaN/None), never 0.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

import zoo
from lsbench import query
from lsbench.counting import count_flops, head_dist_cost, param_counts_meta
from lsbench.query import is_missing, value_of
from lsbench.settings import EAGER

from .flags import flag, within_rounding

__all__ = ["paper_table", "deterministic_table", "reported_figure_table", "table_outputs", "paper_view", "render_paper", "PAPER_COLUMNS",
           "DETERMINISTIC_COLUMNS"]

#: the published GPU figure compared with when nothing measured says otherwise: the LSNet paper's
DEFAULT_PUBLISHED_GPU = ("NVIDIA RTX 3090", "lsnet")


# ----------------------------------------------------------------------------------------- registry

def _models(models: Sequence[str] | None, include_reported: bool = False) -> list[str]:
    """Registry order; names outside the registry (ad-hoc timm models) follow in the order given.
    ``include_reported`` adds the reported-only cards (figures, no code) to the default list."""
    if models is None:
        return zoo.list_models(include_reported=include_reported)
    if isinstance(models, str):
        models = [models]
    for name in models:
        zoo.get_card(name)  # one-line error with suggestions for unknown names
    registry = zoo.list_models(include_reported=True)
    wanted = list(dict.fromkeys(models))
    return [m for m in registry if m in wanted] + [m for m in wanted if m not in registry]


def _published(card: zoo.ModelCard, metric: str) -> tuple[Any, str | None, str | None]:
    fig = card.figure(metric)
    return (None, None, None) if fig is None else (fig.written, fig.cite, fig.note)


def _one_head(card: zoo.ModelCard) -> bool:
    """The published params count the deployed model with one head (the card's figure note says so)."""
    fig = card.figure("params")
    return fig is not None and bool(fig.note) and "one head" in fig.note


def _params_columns(name: str, card: zoo.ModelCard, fused_count: Any) -> dict[str, Any]:
    """params_fused_M, the published figure, the value compared (one head where the paper counts one) and
    the flag. The adjustment is never silent: params_note says what was left out of the comparison."""
    pub, cite, _ = _published(card, "params")
    fused_m = None if is_missing(fused_count) else float(fused_count) / 1e6
    compared, note = fused_m, None
    if fused_m is not None and _one_head(card):
        head = head_dist_cost(name).params
        if head:
            compared = (float(fused_count) - head) / 1e6
            note = f"compared without head_dist ({head / 1e6:.3f} M): published counts one head"
    others = [f for f in card.figures if f.metric == "params"][1:]
    notes = [note] if note else []
    notes += [f"{f.cite} {f.written} M: {flag(compared, f.written)}" for f in others
              if compared is not None and not within_rounding(compared, f.written)]
    return {"params_fused_M": fused_m, "params_pub_M": pub, "params_cite": cite,
            "params_ok": flag(compared, pub), "params_note": "; ".join(notes) or None}


def _macs_columns(name: str, card: zoo.ModelCard, gmacs: Any) -> dict[str, Any]:
    """The flag compares with the first (most precise) published figure; every other published MACs figure
    that the measurement does not round to is reported in macs_note, never dropped. Where the paper counts
    one head (the _distill twins), the second head's MACs are left out of the comparison and the note says so."""
    pub, cite, note = _published(card, "macs")
    value = None if is_missing(gmacs) else float(gmacs)
    compared, notes = value, []
    if value is not None and note and "one head" in note:
        head = head_dist_cost(name).macs
        compared = value - head / 1e9
        notes.append(f"compared without head_dist ({head / 1e6:.3f} MMACs): published counts one head")
    others = [f for f in card.figures if f.metric == "macs"][1:]
    notes += [f"{f.cite} {f.written} G: {flag(compared, f.written)}" for f in others
              if compared is not None and not within_rounding(compared, f.written)]
    return {"gmacs_fvcore": value, "macs_pub_G": pub, "macs_cite": cite, "macs_ok": flag(compared, pub),
            "macs_note": "; ".join(notes) or None}


def _top1(card: zoo.ModelCard) -> dict[str, Any]:
    value, cite, _ = _published(card, "top1")
    return {"top1": value, "top1_cite": cite}


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
    "cpu_ms", "cpu_peak_MiB", "cpu_threads", "cpu_batch", "cpu_model", "gpu_peak_MiB",
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


def _peak_mib(rows: pd.DataFrame, job: Any, model: str) -> float | None:
    """The peak memory (MiB) recorded by the same profile job as a latency shown in the table."""
    if job is None:
        return None
    peak = query.metric_rows(rows, "peak_memory")
    peak = query.where(peak, (query.col(peak, "job_key") == job) & (peak["model"] == model))
    return None if peak.empty else float(query.newest(peak)["value"].iloc[0]) / 2**20


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
    rows = query.inference(query.measured(frame))

    params = query.newest(query.metric_rows(rows, "params_fused"))
    macs_rows = query.metric_rows(rows, "macs", counter="fvcore")
    if "extra_resolution" in macs_rows.columns:
        native = macs_rows["model"].map(lambda m: zoo.get_card(m).input_size if m in names else None)
        res = macs_rows["extra_resolution"]
        macs_rows = query.where(macs_rows, res.isna() | (res == native))
    macs = query.newest(macs_rows)

    throughput = query.metric_rows(rows, "throughput")
    throughput = query.where(throughput, query.col(throughput, "settings_device").map(
        lambda d: isinstance(d, str) and d.startswith("cuda")))
    gpu_rows, gpu_info = query.one_group(query.select(throughput, gpu), names, "GPU throughput")
    latency = query.metric_rows(rows, "latency")
    eager = query.col(latency, "runtime") == EAGER
    cpu_lat = query.where(latency, (query.col(latency, "settings_device") == "cpu") & eager)
    cpu_rows, cpu_info = query.one_group(query.select(cpu_lat, cpu), names, "CPU latency")
    mob_lat = query.where(latency, query.col(latency, "runtime").notna() & ~eager)
    mob_rows, mob_info = query.one_group(query.select(mob_lat, mobile), names, "mobile-runtime latency (on host)")

    pub_device, pub_protocol = _published_gpu(names, gpu_info, published_gpu)
    gpu_label = _protocol_label(gpu_info)

    out = []
    for name in names:
        card = zoo.get_card(name)
        row: dict[str, Any] = {"model": name, "family": card.family, **_top1(card)}
        row.update(_params_columns(name, card, value_of(params, name)))
        row.update(_macs_columns(name, card, value_of(macs, name)))
        value = value_of(gpu_rows, name)
        row.update(gpu_img_s=value, gpu_device=gpu_info.get("hardware") if value is not None else None,
                   gpu_protocol=gpu_label if value is not None else None)
        fig = _gpu_figure(card, pub_device, pub_protocol)
        row.update(gpu_pub_img_s=fig.value if fig else None, gpu_pub_device=fig.device if fig else None,
                   gpu_pub_protocol=fig.protocol if fig else None, gpu_pub_cite=fig.cite if fig else None)
        row["gpu_peak_MiB"] = _peak_mib(rows, value_of(gpu_rows, name, "job_key"), name)
        value = value_of(cpu_rows, name)
        row["cpu_peak_MiB"] = _peak_mib(rows, value_of(cpu_rows, name, "job_key"), name)
        row.update(cpu_ms=value, cpu_threads=value_of(cpu_rows, name, "settings_threads"),
                   cpu_batch=value_of(cpu_rows, name, "settings_batch"),
                   cpu_model=cpu_info.get("hardware") if value is not None else None)
        value = value_of(mob_rows, name)
        threads = value_of(mob_rows, name, "extra_threads")
        row.update(mobile_ms=value, mobile_runtime=mob_info.get("runtime") if value is not None else None,
                   mobile_threads=threads if threads is not None else value_of(mob_rows, name, "settings_threads"))
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


_FLOATS = ("cpu_peak_MiB", "gpu_peak_MiB", "top1", "params_M", "params_fused_M", "params_pub_M", "gmacs_fvcore", "gmacs_ptflops", "gmacs_torch",
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

    Params as built and reparameterized (``lsbench.counting.param_counts_meta``, exact, on the meta device);
    GMACs of the fused model (``zoo.create_model`` + ``count_flops(..., fused=True)``) at the card's input
    size, batch 1, per counter (``gmacs_<counter>``); the flag ``macs_ok`` uses fvcore, the papers'
    convention (None without fvcore). No results store, no timing, no timestamps.
    """
    import torch

    counters = list(dict.fromkeys([counters] if isinstance(counters, str) else counters))
    extra = [f"gmacs_{c}" for c in counters if c != "fvcore"]
    columns = [c for c in DETERMINISTIC_COLUMNS if c != "gmacs_fvcore" or "fvcore" in counters]
    columns[columns.index("macs_pub_G"):columns.index("macs_pub_G")] = extra
    out = []
    for name in _models(models):
        card = zoo.get_card(name)
        counts_meta = param_counts_meta(name)
        as_built, fused = counts_meta["total"], counts_meta["fused"]
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
    for name in _models(models, include_reported=True):
        card = zoo.get_card(name)
        for fig in card.figures:
            out.append({"model": name, "family": card.family, "metric": fig.metric, "value": fig.written,
                        "unit": fig.unit, "device": fig.device, "protocol": fig.protocol, "note": fig.note,
                        "from_figure": fig.from_figure, "cite": fig.cite,
                        "citation": zoo.registry.citation(fig.cite)})
    table = pd.DataFrame(out, columns=["model", "family", "metric", "value", "unit", "device", "protocol",
                                       "note", "from_figure", "cite", "citation"])
    protocols = sorted({p for p in table["protocol"].dropna()})
    table.attrs.update(kind="reported", deterministic=True,
                       made_by="lsbench.report.tables.reported_figure_table (zoo/published.toml)",
                       provenance=[f"protocol {p}: {zoo.registry.protocol_description(p)}" for p in protocols])
    return table


def table_outputs(models: Sequence[str] | None = None, frame: pd.DataFrame | None = None, *, gpu: Any = None,
                  cpu: Any = None, mobile: Any = None, results_label: str = "results"
                  ) -> dict[str, tuple[pd.DataFrame, str, Any]]:
    """The tables ``lsbench table`` writes, by file stem, each with the command that regenerates it (and, for
    the paper table, its renderer):
    without a results ``frame`` the deterministic pair (computed here, what CI keeps fresh), with one the
    paper table."""
    if frame is None:
        command = "lsbench table --deterministic"
        return {"deterministic": (deterministic_table(models), command, None),
                "published_figures": (reported_figure_table(models), command, None)}
    return {"paper": (paper_table(frame, models, gpu=gpu, cpu=cpu, mobile=mobile),
                      f"lsbench table --results {results_label}", render_paper)}


#: FLOPs tiers of the paper view, as the LSNet and EfficientViT papers group their comparisons (GMACs)
FLOPS_TIERS = ((0.4, "FLOPs < 0.4 G"), (1.0, "0.4 G ≤ FLOPs < 1.0 G"), (float("inf"), "FLOPs ≥ 1.0 G"))


def _shown(value: Any, digits: int) -> str:
    return "" if is_missing(value) else f"{float(value):,.{digits}f}"


def paper_view(table: pd.DataFrame) -> pd.DataFrame:
    """The paper table as a paper prints it: Model | Top-1 | Params | FLOPs | GPU throughput | CPU latency |
    mobile-runtime latency, grouped by FLOPs tier, one row a model; measured figures, falling back to the
    published one (marked *) where nothing was measured, and a † where a measurement does not round to the
    published figure, each explained in ``attrs["footnotes"]``. The wide frame stays in the CSV."""
    measured = table.attrs.get("measured", {})
    gpu = (measured.get("gpu") or {}).get("hardware") or table.attrs.get("published_gpu", ("GPU",))[0]
    cpu = (measured.get("cpu") or {}).get("hardware") or "CPU"
    runtime = (measured.get("mobile") or {}).get("runtime") or "mobile runtime"
    columns = ["Model", "Top-1 (%)", "Params (M)", "FLOPs (G)", f"Throughput, {gpu} (img/s)",
               f"Latency, {cpu} (ms)", f"Latency, {runtime} (ms)"]
    notes: list[str] = []

    def cell(value: Any, published: Any, digits: int, flag_text: Any = None, what: str = "") -> str:
        if is_missing(value):
            if is_missing(published):
                return ""
            mark = "*"
            if "* published figure (cited in the CSV), not measured here" not in notes:
                notes.append("* published figure (cited in the CSV), not measured here")
            return _shown(published, digits) + mark
        text = _shown(value, digits)
        if isinstance(flag_text, str) and flag_text.startswith("✗"):
            notes.append(f"† {what}: {flag_text.removeprefix('✗ ')}")
            text += "†"
        return text

    rows: list[dict[str, Any]] = []
    tiers: dict[str, list[dict[str, Any]]] = {label: [] for _, label in FLOPS_TIERS}
    for _, r in table.iterrows():
        gmacs = r["gmacs_fvcore"] if not is_missing(r["gmacs_fvcore"]) else r["macs_pub_G"]
        label = next((lab for bound, lab in FLOPS_TIERS if not is_missing(gmacs) and float(gmacs) < bound),
                     "FLOPs not known")
        tiers.setdefault(label, []).append({
            "Model": r["model"],
            "Top-1 (%)": _shown(r["top1"], 1),
            "Params (M)": cell(r["params_fused_M"], r["params_pub_M"], 1, r["params_ok"], f"{r['model']} params"),
            "FLOPs (G)": cell(r["gmacs_fvcore"], r["macs_pub_G"], 2, r["macs_ok"], f"{r['model']} FLOPs"),
            columns[4]: cell(r["gpu_img_s"], r["gpu_pub_img_s"], 0),
            columns[5]: cell(r["cpu_ms"], None, 2),
            columns[6]: cell(r["mobile_ms"], None, 2),
        })
    for label, members in tiers.items():
        if members:
            rows.append({"Model": label, **{c: "" for c in columns[1:]}, "_tier": True})
            rows.extend(members)
    view = pd.DataFrame(rows, columns=[*columns, "_tier"])
    view.attrs.update(table.attrs, footnotes=notes)
    return view


def _view_md(view: pd.DataFrame, header: Sequence[str]) -> str:
    shown = view.drop(columns="_tier").copy()
    shown.loc[view["_tier"].fillna(False).astype(bool), "Model"] = [
        f"**{m}**" for m in shown.loc[view["_tier"].fillna(False).astype(bool), "Model"]]
    body = shown.to_markdown(index=False, disable_numparse=True,
                             colalign=["left"] + ["right"] * (shown.shape[1] - 1))
    notes = view.attrs.get("footnotes", [])
    return "  \n".join(header) + "\n\n" + body + "\n" + ("\n" + "  \n".join(notes) + "\n" if notes else "")


def _view_tex(view: pd.DataFrame, header: Sequence[str]) -> str:
    from .render import latex_escape

    columns = [c for c in view.columns if c != "_tier"]
    lines = [f"% {line}" for line in header]
    lines += ["% needs \\usepackage{booktabs}", f"\\begin{{tabular}}{{l{'r' * (len(columns) - 1)}}}", "\\toprule",
              " & ".join(latex_escape(c) for c in columns) + " \\\\"]
    for _, row in view.iterrows():
        if row["_tier"] is True:
            lines += ["\\midrule", f"\\multicolumn{{{len(columns)}}}{{l}}{{\\textit{{{latex_escape(row['Model'])}}}}} \\\\"]
            continue
        lines.append(" & ".join(latex_escape(str(row[c])).replace("†", "$^\\dagger$").replace("*", "$^*$")
                                for c in columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% {note}" for note in view.attrs.get("footnotes", [])]
    return "\n".join(lines) + "\n"


def render_paper(table: pd.DataFrame, fmt: str, command: str | None = None) -> str:
    """``paper.md`` / ``paper.tex`` as a paper's table (:func:`paper_view`), ``paper.csv`` the wide frame."""
    from .render import header_lines, render_table

    if fmt == "csv":
        return render_table(table, "csv", command)
    view = paper_view(table)
    header = header_lines(table, command)
    return _view_md(view, header) if fmt == "md" else _view_tex(view, header)
