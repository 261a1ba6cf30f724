"""Cost anatomy: where a backbone's latency goes, part by part, and whether each part is bound by
compute or by memory traffic.

**Parts.** :func:`classify_parts` labels every module of a model with a (stage, part) pair. LSNet's parts
use the paper's vocabulary, matched by the class names of ``zoo.lsnet`` / ``zoo.ska`` (``LKP``, ``SKA``,
``LSConv``, ``RepVGGDW``, ``Attention``, ``FFN``) and timm's SE classes: stem, LKP, SKA, "LSConv
BN+residual" (the BN and residual add LSConv does itself), RepVGGDW, SE, Attention, FFN (with its
residual add), downsample, head. Other models get the class name of each block component (``RepVggDw``,
``RepVitMlp``, ``LocalWindowAttention``, ``ConvMlp``; a bare conv as "dw conv 3x3", "conv 1x1"), per stage.
Stages come from the model's timm ``feature_info``; what runs before the first stage is the stem, what runs
after the last (pooling, classifier) the head; a block's own ops (RepViT's block adds its MLP residual
itself; LSNet's ``Block.forward`` only chains its parts) are "block own ops", other glue "other".
Labels are taken on the model as built and carried to the fused model by module name (fusion replaces a
module in place, so the names survive while the class names do not).

**Time: synchronised hooks, not torch.profiler.** Forward pre/post hooks sit only on part boundaries
(modules whose label differs from their parent's: ~100 per LSNet-T forward). Each boundary reads one clock
and gives the interval since the previous boundary to the innermost open part, so the parts partition the
hooked forward exactly and include everything that costs time at batch 1: kernels, dispatcher and Python
glue. On CUDA the clock is a CUDA event recorded on the stream (read after the forward's synchronisation),
so boundaries add no host synchronisation. torch.profiler was not used because it records every aten op
(hundreds of small ops per forward) at a cost of microseconds each, which at batch 1 on a CPU inflates the
forward far beyond the 5 % budget, and it attributes kernel time only, leaving the framework overhead that
dominates small parts unassigned. The hooks' own cost is what separates the parts' sum from the latency
measured the normal way (:func:`lsbench.timing.time_cpu` / ``time_cuda`` on the same prepared model,
unhooked, in alternating rounds); both figures are reported and their ratio is checked against 5 %.

**Which calls count.** On a shared machine interference only ever adds time, and it comes in bursts that
can cover half of a run. So the latency is the mean of the fastest quarter (:data:`KEEP`) of the unhooked
calls, and the per-part times are means over the fastest quarter of the hooked calls (ranked by their
total): a mean over one fixed set of calls keeps the parts additive (they sum exactly to those calls'
mean total), which per-part medians would not. The plain median latency is reported beside it.

**MACs** come from the existing counters (:func:`lsbench.counting.count_flops`, ``by_module``), summed
by label. **Bytes** are counted per aten op under a dispatch mode: every tensor an op reads plus every tensor
it writes (fresh outputs and in-place targets), views and allocation-only ops excluded, broadcast
(stride-0) dimensions counted once. That is the traffic of eager execution without cross-op cache reuse;
weights are read by the ops that use them and so are included. Intensity = MACs / bytes.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from .counting import count_flops
from .errors import LsbenchError
from .memory import CudaPeak, PEAK_METHODS, cpu_peak_memory, weight_bytes
from .timing import cpu_threads, time_cpu, time_cuda

__all__ = ["Label", "VOCABULARY", "KINDS", "part_kind", "classify_parts", "boundary_labels", "PartClock",
           "PartTimes", "time_parts", "op_bytes", "bytes_by_label", "macs_by_label", "dissect", "Dissection",
           "by_part", "by_stage", "fast_mean", "fast_cut", "SUM_TOLERANCE", "KEEP", "HOOKS_METHOD", "BYTES_METHOD"]

Label = tuple[str, str]  # (stage, part)
OTHER = "other"
BLOCK_OWN = "block own ops"
SUM_TOLERANCE = 0.05
REWARM = 2  # warm-up calls before every round after the first
KEEP = 0.25  # the fastest quarter of the calls: see fast_mean
HOOKS_METHOD = ("forward pre/post hooks on part boundaries, one clock read per boundary (perf_counter_ns on "
                "CPU, CUDA events on GPU), interval given to the innermost open part")
BYTES_METHOD = ("per aten op: bytes of tensors read + tensors written (views, allocation-only ops excluded, "
                "stride-0 dims once); no cross-op cache reuse; weights included as read")

# Class names (zoo.lsnet, zoo.ska, timm's SE) -> the paper's part names. The innermost match wins, so SKA
# and LKP inside LSConv are parts of their own and LSConv keeps only its BN and residual add.
VOCABULARY: dict[str, str] = {
    "LKP": "LKP", "SKA": "SKA", "LSConv": "LSConv BN+residual", "RepVGGDW": "RepVGGDW",
    "SqueezeExcite": "SE", "SEModule": "SE", "Attention": "Attention", "FFN": "FFN",
}
# Part -> the part type that gets one colour on the roofline, shared across models.
KINDS: dict[str, str] = {
    "stem": "stem", "downsample": "downsample", "head": "head", "SE": "SE", "LKP": "LKP", "SKA": "SKA",
    "LSConv BN+residual": "LSConv BN+residual", "RepVGGDW": "depthwise mixer", "RepVggDw": "depthwise mixer",
    "Attention": "attention", "LocalWindowAttention": "attention", "CascadedGroupAttention": "attention",
    "FFN": "FFN / MLP", "RepVitMlp": "FFN / MLP", "ConvMlp": "FFN / MLP", "Mlp": "FFN / MLP",
    "RepVitDownsample": "downsample", "PatchMerging": "downsample", OTHER: OTHER, BLOCK_OWN: OTHER,
}
_CONV_LIKE = ("Conv2d", "ConvNorm", "ConvBN", "ConvNormAct", "ConvBnAct", "Conv2dNormActivation", "BatchNorm2d")
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def part_kind(part: str) -> str:
    """The part type of ``part`` (the roofline colour): see :data:`KINDS`; bare depthwise convs are mixers."""
    if part in KINDS:
        return KINDS[part]
    if part.startswith("dw conv"):
        return "depthwise mixer"
    return OTHER


# ------------------------------------------------------------------------------------------ labelling

def _stage_modules(model: nn.Module) -> list[str]:
    info = getattr(model, "feature_info", None)
    names = dict(model.named_modules())
    found = []
    for entry in info if isinstance(info, (list, tuple)) else ():
        module = entry.get("module") if isinstance(entry, Mapping) else None
        if module in names and module not in found:
            found.append(module)
    return found


def _conv_name(module: nn.Module) -> str:
    conv = next((m for m in module.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        return type(module).__name__
    k = "x".join(map(str, conv.kernel_size))
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return f"dw conv {k}"
    return f"conv {k}"


def _is_container(module: nn.Module) -> bool:
    cls = type(module).__name__
    return type(module) in _CONTAINERS or cls.endswith(("Block", "Stage")) or _is_wrapper(module)


def _is_wrapper(module: nn.Module) -> bool:
    """A residual wrapper (``Residual(m)``, timm's ``ResidualDrop``): its add belongs to its one child's part."""
    return type(module).__name__.startswith("Residual") and len(list(module.children())) == 1


def classify_parts(model: nn.Module) -> dict[str, Label]:
    """(stage, part) of every module of ``model`` (as built, not fused), keyed by module name.

    The root's own work (pooling in ``forward_head``) is labelled (head, head) when the model declares
    stages, else ("model", "other").
    """
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    stages = _stage_modules(model)
    labels: dict[str, Label] = {}

    def stage_of(name: str) -> tuple[str, str | None]:
        for i, s in enumerate(stages):
            if name == s or name.startswith(s + "."):
                return f"stage{i + 1}", s
        if stages:
            return ("stem" if order[name] < order[stages[0]] else "head"), None
        top = name.split(".")[0]
        return top, top

    labels[""] = ("head", "head") if stages else ("model", OTHER)
    for name, module in modules.items():
        if not name:
            continue
        stage, root = stage_of(name)
        if stage in ("stem", "head"):
            labels[name] = (stage, stage)
            continue
        parent = name.rpartition(".")[0]
        inherited = labels.get(parent, (stage, OTHER))[1] if root not in (name, parent) else OTHER
        inherited = OTHER if inherited == BLOCK_OWN else inherited
        cls = type(module).__name__
        attr = name.rpartition(".")[2]
        if cls in VOCABULARY:
            part = VOCABULARY[cls]
        elif inherited != OTHER:
            part = inherited
        elif attr == "downsample" and not isinstance(module, nn.Identity):
            part = "downsample"
        elif parent == root and not _is_container(module) and not isinstance(module, nn.Identity):
            part = "downsample"  # LSNet: the Conv-BN pair a stage starts with, beside its blocks
        elif cls.endswith("Block"):
            part = BLOCK_OWN  # RepViT's block adds its MLP residual itself
        elif _is_container(module) or name == root or isinstance(module, nn.Identity):
            part = OTHER
        elif cls in _CONV_LIKE:
            part = _conv_name(module)
        else:
            part = cls
        labels[name] = (stage, part)
    for name in sorted(modules, key=lambda n: -n.count(".")):  # deepest first: nested wrappers resolve
        if name and _is_wrapper(modules[name]):
            child = next(iter(modules[name].named_children()))[0]
            labels[name] = labels[f"{name}.{child}"]
    return labels


def boundary_labels(model: nn.Module, labels: Mapping[str, Label]) -> dict[str, Label]:
    """Labels for the modules of ``model`` (e.g. the fused form) where a part starts: the root, and every
    module whose label differs from its parent's. A module missing from ``labels`` takes its nearest
    labelled ancestor's."""
    resolved: dict[str, Label] = {}
    out: dict[str, Label] = {}
    for name, _ in model.named_modules():
        key = name
        while key not in labels and key:
            key = key.rpartition(".")[0]
        resolved[name] = labels.get(key, labels.get("", ("model", OTHER)))
        parent = name.rpartition(".")[0]
        if not name or resolved[name] != resolved[parent]:
            out[name] = resolved[name]
    return out


def _label_of(name: str, boundaries: Mapping[str, Label]) -> Label:
    key = name
    while key not in boundaries and key:
        key = key.rpartition(".")[0]
    return boundaries[key] if key in boundaries else boundaries[""]


# ------------------------------------------------------------------------------------------- timing

class PartClock:
    """Hooks on the part boundaries of ``model``; every complete forward appends one {label: seconds}.

    ``current`` is the innermost open part (the op-level counters read it). On CUDA the boundaries record
    events; :meth:`calls` resolves them, so read it after the stream has been synchronised.
    """

    def __init__(self, model: nn.Module, boundaries: Mapping[str, Label], device: str = "cpu") -> None:
        self.model, self.boundaries, self.cuda = model, dict(boundaries), device == "cuda"
        self.stack: list[Label] = []
        self._handles: list[Any] = []
        self._done: list[Any] = []
        self._acc: dict[Label, int] = {}
        self._marks: list[tuple[Any, Label | None]] = []
        self._last = 0

    @property
    def current(self) -> Label | None:
        return self.stack[-1] if self.stack else None

    def __enter__(self) -> "PartClock":
        modules = dict(self.model.named_modules())
        for name, label in self.boundaries.items():
            mod = modules[name]
            self._handles.append(mod.register_forward_pre_hook(lambda m, a, label=label: self._enter(label)))
            self._handles.append(mod.register_forward_hook(lambda m, a, o: self._exit(), always_call=True))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.stack.clear()

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append((event, self.current))
            return
        now = time.perf_counter_ns()
        if self.stack:
            label = self.stack[-1]
            self._acc[label] = self._acc.get(label, 0) + now - self._last
        self._last = now

    def _enter(self, label: Label) -> None:
        if not self.stack:
            self._acc, self._marks = {}, []
        self._mark()
        self.stack.append(label)

    def _exit(self) -> None:
        self._mark()
        self.stack.pop()
        if not self.stack:
            self._done.append(self._marks if self.cuda else {k: v * 1e-9 for k, v in self._acc.items()})

    def count(self) -> int:
        """Complete forwards recorded so far."""
        return len(self._done)

    def calls(self) -> list[dict[Label, float]]:
        """Seconds per label for every complete forward so far."""
        out = []
        for item in self._done:
            if not self.cuda:
                out.append(item)
                continue
            acc: dict[Label, float] = {}
            for (start, _), (end, label) in zip(item, item[1:]):
                acc[label] = acc.get(label, 0.0) + start.elapsed_time(end) * 1e-3
            out.append(acc)
        return out


@dataclass
class PartTimes:
    """Per-forward part seconds from hooked calls and the unhooked latency samples, from one run."""

    calls: list[dict[Label, float]]
    hooked: list[float]
    normal: list[float]
    threads: dict | None = None

    def kept(self) -> list[dict[Label, float]]:
        """The hooked calls whose total is among the fastest :data:`KEEP` of them (undisturbed calls)."""
        totals = [sum(c.values()) for c in self.calls]
        cut = fast_cut(totals)
        return [c for c, t in zip(self.calls, totals) if t <= cut]

    def part_seconds(self) -> dict[Label, float]:
        """Mean seconds per label over :meth:`kept`: additive, they sum to the kept calls' mean total."""
        kept = self.kept()
        labels = list(dict.fromkeys(k for c in kept for k in c))
        return {lab: sum(c.get(lab, 0.0) for c in kept) / len(kept) for lab in labels}


def time_parts(model: nn.Module, example: Tensor, boundaries: Mapping[str, Label], device: str = "cpu", *,
               warmup: int = 10, repeats: int = 60, rounds: int = 5, threads: int = 1,
               interop_threads: int | None = None) -> PartTimes:
    """Time ``model(example)`` unhooked (the normal way) and hooked, in ``rounds`` alternating rounds of
    ``repeats`` timed calls each (after ``warmup`` calls in the first round, :data:`REWARM` later), under
    inference mode (and ``threads`` CPU threads). Short, many rounds spread a burst of interference on a
    shared machine over both forms."""
    if rounds < 1:
        raise LsbenchError(f"rounds must be at least 1, got {rounds}")
    if device == "cuda" and not torch.cuda.is_available():
        raise LsbenchError("device cuda requested but CUDA is not available on this machine")

    def step() -> None:
        model(example)

    def timer(n_warm: int) -> list[float]:
        if device == "cuda":
            return time_cuda(step, warmup=n_warm, repeats=repeats)
        return time_cpu(step, warmup=n_warm, repeats=repeats)

    clock = PartClock(model, boundaries, device)
    hooked: list[float] = []
    normal: list[float] = []
    timed_calls: list[int] = []  # indices of the hooked calls that were timed (not warm-up)
    threads_ctx = cpu_threads(threads, interop_threads) if device == "cpu" else contextlib.nullcontext({})
    with threads_ctx as effective, torch.inference_mode():
        for r in range(rounds):
            # full warm-up once per form; later rounds only re-touch caches after the switch
            n_warm = warmup if r < 1 else min(warmup, REWARM)
            for hooked_now in ((False, True) if r % 2 == 0 else (True, False)):
                if not hooked_now:
                    normal += timer(n_warm)
                    continue
                with clock:
                    samples = timer(n_warm)
                hooked += samples
                done = clock.count()
                timed_calls += range(done - len(samples), done)
    calls_all = clock.calls()
    calls = [calls_all[i] for i in timed_calls]
    return PartTimes(calls, hooked, normal, dict(effective) if effective else None)


def fast_cut(samples: Sequence[float], keep: float | None = None) -> float:
    """The ``keep`` quantile of ``samples`` (lower interpolation, so at least one sample is at or below it)."""
    keep = KEEP if keep is None else keep
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(keep * len(ordered)) - 1)]


def fast_mean(samples: Sequence[float], keep: float | None = None) -> float:
    """Mean of the fastest ``keep`` fraction of ``samples``: interference on a shared machine only adds
    time, so the fast calls are the undisturbed ones."""
    cut = fast_cut(samples, keep)
    kept = [s for s in samples if s <= cut]
    return sum(kept) / len(kept)


# -------------------------------------------------------------------------------------- bytes, MACs

_ALLOC_ONLY = frozenset({"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"})


def _footprint(t: Tensor) -> int:
    """Bytes a tensor's elements occupy, a broadcast (stride-0) dimension counted once."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= size
    return n * t.element_size() if t.numel() else 0


def op_bytes(func, args: Sequence[Any], kwargs: Mapping[str, Any], out: Any) -> int:
    """Bytes one aten op moves: its tensor inputs read, its fresh or in-place outputs written."""
    schema = func._schema
    if func._overloadpacket.__name__ in _ALLOC_ONLY:
        return 0
    aliases = [r.alias_info for r in schema.returns]
    if aliases and all(a is not None and not a.is_write for a in aliases):
        return 0  # a view: no data moves
    seen: set[tuple[int, int]] = set()
    total = 0
    for t in tree_flatten((args, kwargs))[0]:
        if isinstance(t, Tensor):
            key = (t.data_ptr(), _footprint(t))
            if key not in seen:
                seen.add(key)
                total += key[1]
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for alias, t in zip(aliases, outs):
        if isinstance(t, Tensor) and (alias is None or alias.is_write):
            total += _footprint(t)
    return total


class _ByteCounter(TorchDispatchMode):
    def __init__(self, clock: PartClock) -> None:
        super().__init__()
        self.clock = clock
        self.bytes: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        label = self.clock.current
        if label is not None:
            self.bytes[label] += op_bytes(func, args, kwargs, out)
        return out


def bytes_by_label(model: nn.Module, example: Tensor, boundaries: Mapping[str, Label]) -> dict[Label, int]:
    """Bytes moved per label in one forward of ``model(example)`` (see :func:`op_bytes`)."""
    clock = PartClock(model, boundaries, "cpu")
    counter = _ByteCounter(clock)
    with torch.inference_mode(), clock, counter:
        model(example)
    return dict(counter.bytes)


def macs_by_label(model: nn.Module, example: Tensor, boundaries: Mapping[str, Label],
                  counter: str = "fvcore") -> tuple[dict[Label, int], int]:
    """MACs per label from ``counter`` (``by_module``, children excluded, summed by label), and the total."""
    count = count_flops(model, inputs=example, counters=[counter])[0]
    out: dict[Label, int] = defaultdict(int)
    for name, macs in count.by_module.items():
        out[_label_of(name, boundaries)] += macs
    return dict(out), count.total


# ------------------------------------------------------------------------------------------- frames

@dataclass
class Dissection:
    """One model's anatomy: ``frame`` has one row per (stage, part); ``totals`` the sum check and memory."""

    model: str
    frame: pd.DataFrame
    totals: dict[str, Any]
    times: PartTimes = field(repr=False)


def dissect(model: nn.Module, example: Tensor, name: str = "model", *, labels: Mapping[str, Label] | None = None,
            built: nn.Module | None = None, device: str = "cpu", counter: str = "fvcore", warmup: int = 10,
            repeats: int = 60, rounds: int = 5, threads: int = 1, interop_threads: int | None = None,
            batch: int | None = None) -> Dissection:
    """Time, count and measure ``model(example)`` part by part.

    ``labels`` (module name -> (stage, part)) default to :func:`classify_parts` of ``built`` (the model as
    built, before fusion) or of ``model`` itself. The model runs on ``device`` as given; MACs are counted
    on a CPU fp32 copy. Latency figures are per call (one batch of ``example``).
    """
    labels = classify_parts(built if built is not None else model) if labels is None else labels
    boundaries = boundary_labels(model, labels)
    macs, macs_total = macs_by_label(model, example, boundaries, counter)
    moved = bytes_by_label(model, example, boundaries)
    times = time_parts(model, example, boundaries, device, warmup=warmup, repeats=repeats, rounds=rounds,
                       threads=threads, interop_threads=interop_threads)
    seconds = times.part_seconds()
    keys = list(dict.fromkeys([*seconds, *(k for k in macs if macs[k]), *(k for k in moved if moved[k])]))
    parts_sum = sum(seconds.values())
    rows = []
    for stage, part in keys:
        t = seconds.get((stage, part), 0.0)
        m, b = macs.get((stage, part), 0), moved.get((stage, part), 0)
        rows.append({"model": name, "stage": stage, "part": part, "kind": part_kind(part), "time_ms": t * 1e3,
                     "share": t / parts_sum if parts_sum else math.nan, "macs": int(m), "bytes": int(b)})
    frame = _derived(pd.DataFrame(rows, columns=["model", "stage", "part", "kind", "time_ms", "share", "macs",
                                                 "bytes"]))
    latency = fast_mean(times.normal)
    totals = {"model": name, "parts_sum_ms": parts_sum * 1e3, "hooked_ms": fast_mean(times.hooked) * 1e3,
              "latency_ms": latency * 1e3, "sum_over_latency": parts_sum / latency,
              "latency_median_ms": statistics.median(times.normal) * 1e3, "keep": KEEP,
              "within_tolerance": abs(parts_sum / latency - 1) <= SUM_TOLERANCE,
              "latency_iqr_ms": _iqr(times.normal) * 1e3, "n_normal": len(times.normal),
              "n_hooked": len(times.hooked), "macs_total": int(macs_total),
              "macs_parts": int(sum(macs.values())), "bytes_total": int(sum(moved.values())),
              "weight_bytes": weight_bytes(model), "device": device, "threads": threads, "batch": batch,
              "counter": counter, "warmup": warmup, "repeats": repeats, "rounds": rounds,
              "hook_boundaries": len(boundaries)}
    totals.update(_peak(model, example, device))
    return Dissection(name, frame, totals, times)


def _iqr(samples: Sequence[float]) -> float:
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return q[2] - q[0]


def _peak(model: nn.Module, example: Tensor, device: str) -> dict[str, Any]:
    """Peak memory of one forward above what the model and input already hold."""
    def step() -> None:
        with torch.inference_mode():
            model(example)

    if device == "cuda":
        with CudaPeak() as peak:
            step()
        return {"peak_bytes": peak.growth, "peak_abs_bytes": peak.peak, "peak_method": PEAK_METHODS["cuda"]}
    return {"peak_bytes": cpu_peak_memory(step), "peak_method": PEAK_METHODS["cpu"]}


def _derived(frame: pd.DataFrame) -> pd.DataFrame:
    """Add intensity (MAC/byte) and achieved GFLOP/s (2 FLOP per MAC) and GB/s from time, macs, bytes."""
    frame = frame.copy()
    seconds = frame["time_ms"] / 1e3
    frame["intensity_mac_per_byte"] = (frame["macs"] / frame["bytes"].where(frame["bytes"] > 0)).astype(float)
    frame["gflop_s"] = (2 * frame["macs"] / seconds.where(seconds > 0) / 1e9).astype(float)
    frame["gb_s"] = (frame["bytes"] / seconds.where(seconds > 0) / 1e9).astype(float)
    return frame


def _aggregate(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = frame.groupby(keys, sort=False, as_index=False)[["time_ms", "share", "macs", "bytes"]].sum()
    return _derived(grouped)


def by_part(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows summed over stages: one per (model, part), with its kind; intensity and rates recomputed."""
    return _aggregate(frame, ["model", "part", "kind"])


def by_stage(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows summed over parts: one per (model, stage)."""
    return _aggregate(frame, ["model", "stage"])

