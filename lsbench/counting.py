"""Parameters and FLOPs, through three counters, each under its own stated convention.

Every counter returns a :class:`FlopCount` whose ``total`` is in multiply-accumulates (MACs), so the
three can sit side by side; ``raw`` keeps the number in the counter's own unit.

========  ==========================================================================================
fvcore    ``fvcore.nn.FlopCountAnalysis`` (torch.jit.trace). One multiply-add = one flop, the
          "FLOPs"/"MACs" of the papers. Counts conv/linear/matmul/einsum, BN (2*numel, 1 without
          affine), GroupNorm/LayerNorm (5*numel), adaptive_avg_pool (numel), upsampling; skips
          elementwise ops (listed in ``unsupported`` unless fvcore ignores them on purpose). SKA
          (``zoo::ska``) gets a handle: 9*B*C*H*W.
ptflops   ``ptflops`` pytorch backend (module forward hooks + patched functionals). MACs; also counts
          conv/linear bias, norms, activations and pooling. SKA gets a module hook (9*B*C*H*W); a
          functional ``zoo::ska`` call outside an ``SKA`` module is counted the same way. Costly calls
          it cannot see (``a @ b``, ``F.linear``/``F.conv*``, ``softmax`` as a method, SDPA, norms
          called functionally) and leaf modules it has no hook for are listed in ``unsupported``.
          Counts the whole input batch (ptflops itself divides module counts by the batch size).
torch     ``torch.utils.flop_counter.FlopCounterMode``: 2 flops per MAC, only matmul/conv/attention
          (norms, pooling, elementwise are 0 by its convention and not listed); SKA gets a formula,
          2*9*B*C*H*W, and so does the CPU SDPA kernel (torch has formulas only for the GPU ones).
          Listed: ops outside aten without a formula, and aten matmul/conv/attention ops without one.
========  ==========================================================================================

``by_module`` maps a module name (as in ``named_modules()``, ``""`` for the root) to the MACs spent
in that module's own forward, children excluded, so that the values sum to ``total`` and can be
re-aggregated to any depth (:func:`module_breakdown`).
"""
from __future__ import annotations

import copy
import io
import math
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

import zoo
from zoo.ska import SKA, ska_macs

from .errors import LsbenchError

__all__ = ["FlopCount", "COUNTERS", "CONVENTIONS", "count_params", "param_counts", "param_counts_meta",
           "HeadCost", "head_dist_cost", "reparameterized",
           "count_flops", "model_flops", "check_counters", "flops_frame", "module_breakdown"]

CONVENTIONS: dict[str, str] = {
    "fvcore": "1 multiply-add = 1 flop (the papers' FLOPs/MACs); BN 2*numel, GroupNorm/LayerNorm 5*numel, "
              "elementwise ops skipped; SKA handle 9*B*C*H*W",
    "ptflops": "MACs; pytorch backend also counts bias, norms and activations; SKA hook 9*B*C*H*W; "
               "whole batch",
    "torch": "2 flops per MAC (total reported as flops/2); only matmul/conv/attention, other ops are 0 and "
             "not listed; SKA formula 2*9*B*C*H*W, CPU SDPA formula added",
}
COUNTERS: tuple[str, ...] = tuple(CONVENTIONS)
_UNITS = {"fvcore": "flops (1 per multiply-add)", "ptflops": "MACs", "torch": "flops (2 per MAC)"}


@dataclass(frozen=True)
class FlopCount:
    """One counter's verdict on one model and input. All counts except ``raw`` are in MACs."""

    counter: str
    convention: str
    total: int
    raw: float
    unit: str
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    unsupported: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def gmacs(self) -> float:
        return self.total / 1e9


# --------------------------------------------------------------------------------------------- params

def count_params(model: nn.Module) -> int:
    """Number of parameters (shared ones once; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def reparameterized(model: nn.Module) -> nn.Module:
    """A BN-fused / re-parameterized deep copy in eval mode (:func:`zoo.reparameterize`)."""
    return zoo.reparameterize(model)


def param_counts(model: nn.Module) -> dict[str, int]:
    """``{"total": params as given, "fused": params after reparameterize_model}``: the one place where a
    model's fused parameters are counted (the profile records, the listing and the tables all ask here)."""
    return {"total": count_params(model), "fused": count_params(reparameterized(model))}


def param_counts_meta(name: str) -> dict[str, int]:
    """:func:`param_counts` of registry model ``name`` built on the meta device: exact, no memory, no init."""
    with torch.device("meta"):
        return param_counts(zoo.create_model(name).eval())


@dataclass(frozen=True)
class HeadCost:
    """What a second classifier head (``head_dist`` of the _distill twins) adds after fusing."""

    params: int
    macs: int


def head_dist_cost(name: str) -> HeadCost:
    """Params and MACs of ``name``'s fused distillation head (``head_dist``; zero without one), counted on
    the meta device. Papers count one head: the tables compare without it and say so."""
    with torch.device("meta"):
        model = reparameterized(zoo.create_model(name).eval())
    head = getattr(model, "head_dist", None)
    if head is None:
        return HeadCost(0, 0)
    macs = head.in_features * head.out_features if isinstance(head, nn.Linear) else 0
    return HeadCost(count_params(head), macs)


# ---------------------------------------------------------------------------------------------- FLOPs

def count_flops(model: nn.Module, input_size: Sequence[int] | Sequence[Sequence[int]] = (1, 3, 224, 224),
                counters: Iterable[str] | str = COUNTERS, *, inputs: Tensor | Sequence[Tensor] | None = None,
                fused: bool = False, seed: int = 0) -> list[FlopCount]:
    """Count ``model``'s forward with each of ``counters``, in eval mode, under no_grad, CPU float32.

    ``input_size`` is one shape, or a sequence of shapes for a model taking several inputs; the inputs
    are random normal from ``seed`` (``inputs`` gives tensors explicitly instead). ``fused=True`` counts
    the :func:`reparameterized` model. The model passed in is not modified (each counter gets a copy).
    """
    names = check_counters(counters)
    xs = _make_inputs(input_size, inputs, seed)
    base = reparameterized(model) if fused else zoo.copy_model(model).eval()
    base = base.to(device="cpu", dtype=torch.float32)
    results = []
    for name in names:
        m = copy.deepcopy(base)
        with torch.no_grad():
            try:
                results.append(_RUNNERS[name](m, xs))
            except LsbenchError:
                raise
            except Exception as e:  # noqa: BLE001 - a model a counter cannot handle: one line for the CLI
                raise LsbenchError(f"{name} could not count {type(model).__name__}: "
                                   f"{type(e).__name__}: {e}") from e
    return results


def model_flops(name: str, counters: Iterable[str] | str = COUNTERS, resolution: int | None = None,
                fused: bool = True) -> tuple[list[FlopCount], int]:
    """(counts, resolution) of registry model ``name`` at batch 1 and ``resolution`` (default: the card's
    input size), fused unless ``fused=False``, from a seeded random init."""
    res = zoo.get_card(name).input_size if resolution is None else resolution
    torch.manual_seed(0)
    model = zoo.create_model(name).eval()
    return count_flops(model, (1, 3, res, res), counters, fused=fused), res


def check_counters(counters: Iterable[str] | str) -> list[str]:
    names = [counters] if isinstance(counters, str) else list(counters)
    bad = [n for n in names if n not in CONVENTIONS]
    if bad or not names:
        what = f"unknown counter {', '.join(map(repr, bad))}" if bad else "no counter given"
        raise LsbenchError(f"{what}; valid counters: {', '.join(COUNTERS)}")
    return list(dict.fromkeys(names))


def _make_inputs(input_size, inputs, seed: int) -> tuple[Tensor, ...]:
    if inputs is not None:
        xs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
        if not xs or not all(isinstance(x, Tensor) for x in xs):
            raise LsbenchError("inputs must be a tensor or a non-empty sequence of tensors")
        return tuple(x.detach().to(device="cpu", dtype=torch.float32) for x in xs)
    try:
        shapes = [tuple(input_size)] if all(isinstance(d, int) for d in input_size) \
            else [tuple(s) for s in input_size]
    except TypeError:
        shapes = []
    if not shapes or not all(s and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in s)
                             for s in shapes):
        raise LsbenchError(f"input_size must be a shape of positive ints (or a list of shapes), got {input_size!r}")
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, generator=gen) for s in shapes)


def _module_tree(model: nn.Module) -> tuple[list[str], dict[str, list[str]]]:
    """Module names in definition order and each one's direct children (by name)."""
    names, children = [], {}
    for name, mod in model.named_modules():
        names.append(name)
        children[name] = [f"{name}.{c}" if name else c for c, _ in mod.named_children()]
    return names, children


def _exclusive(model: nn.Module, inclusive: Mapping[str, float], total: float) -> dict[str, float]:
    """Per-module counts with children subtracted, in definition order; any remainder goes to the root."""
    names, children = _module_tree(model)
    out = {n: inclusive.get(n, 0) - sum(inclusive.get(c, 0) for c in children[n]) for n in names}
    rest = total - sum(out.values())
    if rest:
        out[""] = out.get("", 0) + rest
    return {n: v for n, v in out.items() if v}


# --- fvcore

def _fvcore_ska(inputs: list[Any], outputs: list[Any]) -> int:
    from fvcore.nn.jit_handles import get_shape

    return ska_macs(tuple(get_shape(inputs[0])))


def _run_fvcore(model: nn.Module, xs: tuple[Tensor, ...]) -> FlopCount:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jit deprecation and tracer warnings
        from fvcore.nn import FlopCountAnalysis

        fa = FlopCountAnalysis(model, xs).set_op_handle("zoo::ska", _fvcore_ska)
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = int(fa.total())
        by_op = {("zoo::ska" if k == "ska" else k): int(v) for k, v in fa.by_operator().items() if v}
        inclusive = {k: int(v) for k, v in fa.by_module().items()}
        unsupported = dict(fa.unsupported_ops())
    return FlopCount("fvcore", CONVENTIONS["fvcore"], total, total, _UNITS["fvcore"], by_op,
                     {k: int(v) for k, v in _exclusive(model, inclusive, total).items()}, unsupported)


# --- torch.utils.flop_counter

def _torch_ska_formula(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * ska_macs(tuple(x_shape))


def _torch_cpu_sdpa_formula(q_shape, k_shape, v_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(q_shape, k_shape, v_shape)


def _torch_custom_mapping() -> dict:
    # FlopCounterMode looks formulas up by OpOverloadPacket (torch.ops.zoo.ska), not by overload. It has
    # formulas for the CUDA attention kernels but not for the CPU one SDPA runs here: add it (same formula).
    mapping = {torch.ops.zoo.ska: _torch_ska_formula}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        mapping[cpu_sdpa] = _torch_cpu_sdpa_formula
    return mapping


# aten ops that carry matmul/conv/attention work: listed when FlopCounterMode runs one it has no formula for.
_TORCH_COSTLY = re.compile(r"attention|convolution|^conv|matmul|einsum|^linear$|mm$")


class _OpRecorder(TorchDispatchMode):
    """Records the ops FlopCounterMode runs as they are, undecomposed (entered below it)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.seen[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


def _op_name(packet) -> str:
    name = getattr(packet, "_qualified_op_name", str(packet))
    return name[len("aten::"):] if name.startswith("aten::") else name


def _run_torch(model: nn.Module, xs: tuple[Tensor, ...]) -> FlopCount:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=_torch_custom_mapping())
    recorder = _OpRecorder()
    with recorder, counter:
        model(*xs)
    counts = counter.get_flop_counts()
    flops = int(counter.get_total_flops())
    by_op = {_op_name(k): _half(v) for k, v in counts.get("Global", {}).items() if v}
    root = type(model).__name__
    inclusive = {}
    for key, ops in counts.items():
        if key == "Global":
            continue
        head, _, rest = key.partition(".")
        if head == root:
            inclusive[rest] = inclusive.get(rest, 0) + sum(ops.values())
    unsupported = {}
    for packet, n in recorder.seen.items():
        name = getattr(packet, "_qualified_op_name", str(packet))
        namespace, _, op = name.partition("::")
        standard = namespace in ("aten", "prim", "prims")
        if packet not in counter.flop_registry and (not standard or _TORCH_COSTLY.search(op)):
            unsupported[name] = n
    by_module = {k: _half(v) for k, v in _exclusive(model, inclusive, flops).items()}
    return FlopCount("torch", CONVENTIONS["torch"], _half(flops), flops, _UNITS["torch"], by_op, by_module,
                     unsupported)


def _half(flops: int) -> int:
    return flops // 2 if flops % 2 == 0 else flops / 2  # matmul/conv formulas are always even


# --- ptflops

# Calls with a cost that ptflops' pytorch backend sees only inside a hooked module or through one of its
# patched functionals (torch.matmul, Tensor.matmul, F.softmax, ...). Elsewhere they go uncounted.
_PTFLOPS_BLIND = frozenset({
    "matmul", "__matmul__", "__rmatmul__", "mm", "bmm", "addmm", "baddbmm", "einsum", "linear", "bilinear",
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "scaled_dot_product_attention", "multi_head_attention_forward", "batch_norm", "layer_norm",
    "group_norm", "instance_norm", "rms_norm", "softmax", "log_softmax",
})
# Leaf modules that cost nothing: not reported as unsupported when ptflops has no hook for them.
_ZERO_COST = (nn.Identity, nn.Sequential, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
              nn.Flatten, nn.Unflatten)


def _ptflops_ska_hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
    # ptflops forward-hook signature; it sums module.__flops__ over calls.
    module.__flops__ += ska_macs(tuple(inputs[0].shape))


class _PtflopsWatch(TorchFunctionMode):
    """Tracks the module stack during a ptflops run, attributes its functional counts to modules and
    notes the costly calls and unhooked leaf modules it does not count."""

    def __init__(self, model: nn.Module, supported: Callable[[nn.Module], bool]) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool, int]] = []  # name, hooked by ptflops, events so far
        self.inside_supported = 0
        self.events = 0  # functional counts and uncounted costly calls: a leaf with neither is listed
        self.pending: str | None = None
        self.functional: list[tuple[str, str, int, bool]] = []  # module, op, MACs, inside a hooked module
        self.unsupported: Counter = Counter()
        self.misbroadcast = 0  # MACs ptflops' add/mul counts beyond the broadcast output size
        self.unwrap: dict[Any, Any] = {}  # ptflops' patched functions -> the ops they wrap
        self.handles = []
        for name, mod in model.named_modules():
            sup = supported(mod)
            leaf = next(mod.children(), None) is None
            self.handles.append(mod.register_forward_pre_hook(partial(self._enter, name, sup)))
            self.handles.append(mod.register_forward_hook(partial(self._exit, sup, leaf), always_call=True))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _enter(self, name: str, sup: bool, mod, args) -> None:
        self.stack.append((name, sup, self.events))
        self.inside_supported += sup

    def _exit(self, sup: bool, leaf: bool, mod, args, output) -> None:
        name, _, events_before = self.stack.pop()
        self.inside_supported -= sup
        if leaf and not sup and self.events == events_before and not isinstance(mod, _ZERO_COST):
            self.unsupported[type(mod).__name__] += 1

    def record(self, op: str, macs: int) -> None:
        module = self.stack[-1][0] if self.stack else ""
        self.functional.append((module, op, int(macs), self.inside_supported > 0))
        self.events += 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            # __torch_function__ dispatch looks the public function up again (F.relu through the module's
            # globals, `a @ b` through Tensor.matmul), i.e. finds ptflops' wrapper: run the wrapped op, so
            # this mode neither counts a call twice nor counts one ptflops would not see without it.
            func = self.unwrap.get(func, func)
        except TypeError:
            pass
        name = getattr(func, "__name__", "")
        # A patched ptflops functional counts, then calls the op: the very next call seen is that op.
        pending, self.pending = self.pending, None
        if func is torch.ops.zoo.ska or func is torch.ops.zoo.ska.default:
            if not self.inside_supported:  # an SKA call outside an SKA module: count as the hook would
                self.record("zoo::ska", ska_macs(tuple(args[0].shape)))
        elif name == pending:
            pass
        elif name in _PTFLOPS_BLIND and not self.inside_supported:
            self.unsupported[f"{name}()"] += 1
            self.events += 1
        return func(*args, **kwargs)


class _Sink:
    """Stands in for the list a patched ptflops functional appends its count to."""

    def __init__(self, watch: _PtflopsWatch, op: str) -> None:
        self.watch, self.op = watch, op

    def append(self, flops) -> None:
        self.watch.record(self.op, flops)
        self.watch.pending = self.op


def _checked_elementwise(watch: _PtflopsWatch, input, other, *args, **kwargs):
    """ptflops' add/mul count, noting where it disagrees with the broadcast output size (it aligns
    shapes from the left: (1, C, H, W) * (C, 1, 1) counts C*C*H*W)."""
    from ptflops.pytorch_ops import _elementwise_tensor_flops_hook

    flops = _elementwise_tensor_flops_hook(input, other, *args, **kwargs)
    if torch.is_tensor(input) and torch.is_tensor(other):
        try:
            right = math.prod(torch.broadcast_shapes(input.shape, other.shape))
        except RuntimeError:
            right = flops
        watch.misbroadcast += int(flops) - right
    return flops


def _attach_sinks(watch: _PtflopsWatch) -> None:
    """Give each functional ptflops has patched its own sink, named after the op it wraps."""
    from ptflops.pytorch_engine import torch_function_wrapper
    from ptflops.pytorch_ops import _elementwise_tensor_flops_hook

    def attach(wrapper, patched=None) -> None:
        watch.unwrap[wrapper if patched is None else patched] = wrapper.op
        wrapper.collector = _Sink(watch, getattr(wrapper.op, "__name__", "functional"))
        if wrapper.handler is _elementwise_tensor_flops_hook:
            wrapper.handler = partial(_checked_elementwise, watch)

    for namespace in (torch.nn.functional, torch):
        for obj in list(vars(namespace).values()):
            if isinstance(obj, torch_function_wrapper):
                attach(obj)
    for obj in list(vars(torch.Tensor).values()):
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if isinstance(content, torch_function_wrapper):
                attach(content, obj)


def _run_ptflops(model: nn.Module, xs: tuple[Tensor, ...]) -> FlopCount:
    # The same steps as ptflops.get_model_complexity_info(backend="pytorch") for one forward, done through
    # its engine so the per-module counts can be read before it deletes them, for the whole batch.
    from ptflops import pytorch_engine as pe

    saved_custom = pe.CUSTOM_MODULES_MAPPING
    pe.CUSTOM_MODULES_MAPPING = {SKA: _ptflops_ska_hook}
    watch = _PtflopsWatch(model, pe.is_supported_instance)
    fallback = _Sink(watch, "functional")  # anything patched that _attach_sinks did not reach
    patched = False
    try:
        pe.add_flops_counting_methods(model)
        model.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
        pe.patch_functional(fallback)
        pe.patch_tensor_ops(fallback)
        patched = True
        _attach_sinks(watch)
        with watch:
            model(*xs)
        by_module: dict[str, int] = {}
        by_op: Counter = Counter()
        seen: set[int] = set()

        def walk(mod: nn.Module, name: str, under_hooked: bool) -> None:
            hooked = pe.is_supported_instance(mod)
            if hooked and not under_hooked and id(mod) not in seen:  # ptflops stops at a hooked module
                seen.add(id(mod))
                macs = int(mod.__flops__)
                if macs:
                    by_module[name] = by_module.get(name, 0) + macs
                    by_op["zoo::ska" if isinstance(mod, SKA) else type(mod).__name__] += macs
            for child_name, child in mod.named_children():
                walk(child, f"{name}.{child_name}" if name else child_name, under_hooked or hooked)

        walk(model, "", False)
    finally:
        if patched:
            pe.unpatch_functional()
            pe.unpatch_tensor_ops()
        if hasattr(model, "stop_flops_count"):
            model.stop_flops_count()
        pe.CUSTOM_MODULES_MAPPING = saved_custom
        watch.remove()
    twice: Counter = Counter()
    for module, op, macs, inside in watch.functional:
        if macs:
            by_module[module] = by_module.get(module, 0) + macs
            by_op[op] += macs
            if inside:
                twice[op] += macs
    names, _ = _module_tree(model)
    order = {n: i for i, n in enumerate(names)}
    by_module = dict(sorted(by_module.items(), key=lambda kv: order.get(kv[0], len(order))))
    total = sum(by_module.values())
    notes = []
    if twice:
        ops = ", ".join(f"{op} {n:,}" for op, n in twice.most_common())
        notes.append(f"ptflops counts {sum(twice.values()):,} MACs twice (kept, as ptflops reports them): "
                     f"functionals it patches called inside modules it also hooks ({ops})")
    if watch.misbroadcast:
        notes.append(f"ptflops counts {watch.misbroadcast:,} MACs beyond the output size in add/mul (kept): "
                     f"it broadcasts shapes aligned from the left, e.g. (1,C,H,W)*(C,1,1) as C*C*H*W")
    return FlopCount("ptflops", CONVENTIONS["ptflops"], total, total, _UNITS["ptflops"], dict(by_op), by_module,
                     dict(watch.unsupported), tuple(notes))


_RUNNERS: dict[str, Callable[[nn.Module, tuple[Tensor, ...]], FlopCount]] = {
    "fvcore": _run_fvcore, "ptflops": _run_ptflops, "torch": _run_torch,
}


# --------------------------------------------------------------------------------------------- frames

def flops_frame(counts: Iterable[FlopCount]) -> pd.DataFrame:
    """One row per counter: counter, convention, gmacs, then macs, raw, unit, unsupported (op×n, ...)."""
    rows = [{
        "counter": c.counter, "convention": c.convention, "gmacs": c.gmacs, "macs": c.total, "raw": c.raw,
        "unit": c.unit,
        "unsupported": ", ".join(f"{op}×{n}" for op, n in sorted(c.unsupported.items(), key=lambda kv: -kv[1])),
    } for c in counts]
    return pd.DataFrame(rows, columns=["counter", "convention", "gmacs", "macs", "raw", "unit", "unsupported"])


ROOT_LABEL = "(root)"


def module_breakdown(count: FlopCount, depth: int | None = None) -> pd.DataFrame:
    """MACs per module (module, macs, share of the total), in definition order.

    With ``depth``, modules are summed into their ancestor ``depth`` levels down (``depth=1``: top-level
    children such as ``stem``, ``stages``); MACs spent directly in a shallower module keep its name. The
    root's own work is labelled ``(root)``. Without ``depth``, each module's own MACs (children excluded).
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise LsbenchError(f"depth must be a non-negative integer, got {depth!r}")
    agg: dict[str, float] = {}
    for name, macs in count.by_module.items():
        key = name if depth is None or not name else ".".join(name.split(".")[:depth])
        agg[key] = agg.get(key, 0) + macs
    agg = {k: v for k, v in agg.items() if v}
    total = count.total
    return pd.DataFrame({
        "module": [k or ROOT_LABEL for k in agg],
        "macs": list(agg.values()),
        "share": [v / total if total else 0.0 for v in agg.values()],
    }, columns=["module", "macs", "share"])
