"""Export a model to a mobile/edge format and check the artifact against eager PyTorch.

Formats and how each is produced (all from an eval-mode fp32 CPU model, static input shape):

``onnx``
    ``torch.onnx.export(dynamo=True)`` (the torch.export-based exporter, PyTorch's default since
    2.9; the TorchScript exporter is deprecated and prints a removal warning) at opset
    :data:`ONNX_OPSET` = 20, weights embedded in the single ``.onnx`` file. Opset 20 matters: it has
    a native ``Gelu`` op, whereas at opset 18 the dynamo exporter writes GELU as an Erf pattern that
    onnxruntime does not fuse (measured ~25% slower on fastvit_t8 in ORT, 1 thread); at opset 20 the
    two exporters run equally fast. ``onnx_exporter="torchscript"`` (opset 17) is kept for comparison.
``pte``
    ``torch.export`` -> ``executorch.exir.to_edge_transform_and_lower`` with the XNNPACK
    partitioner -> ``.pte``. Ops XNNPACK cannot take stay on ExecuTorch's portable kernels; the
    result's ``details`` say how many (:func:`edge_op_counts`; :func:`pte_op_counts` reads them back from
    a written file). Depthwise convolutions of more than :data:`XNNPACK_DWCONV_MAX_TAPS` taps (7x7) are
    split into column strips XNNPACK's depthwise kernels take (:func:`split_large_depthwise`): unsplit,
    XNNPACK runs them as grouped IGEMM, which made fastvit_t8 ~1.9x slower than onnxruntime.
``tflite``
    ``litert_torch.convert`` (optional extra ``lsbench[litert]``), checked with ``ai_edge_litert``.
``coreml``
    ``coremltools.convert`` of the ``torch.export`` program to an fp32 ML program (``.mlpackage``
    directory). Core ML can only *predict* on macOS: elsewhere the artifact is written but the parity
    check is recorded as not run (``checked=False``, ``passed=None``), never as passed.

LSNet's SKA is a torch custom op (``zoo::ska``) that no exporter can carry, so every export runs
under :func:`zoo.ska.reference_ska` (SKA as pad, slicing, multiply, add). A model with an
``export_form(input_size)`` method is traced in that form (:func:`exportable_form`; LSNet: SKA, GroupNorm
and the attention bias in ops XNNPACK delegates, so its ``.pte`` has no portable ops;
``export_form=False`` traces the model as given). The eager reference output is computed from the model
itself, outside that context, with the custom op, so the check covers the decomposition and the export
form too.

Parity: one seeded ``torch.randn(input_size)`` input (seed ``seed``) through eager and through the
artifact in its own runtime (onnxruntime with all graph optimizations, the ExecuTorch runtime,
the LiteRT interpreter). ``max_abs_err = max |y_artifact - y_eager|`` over every output element;
``max_rel_err = max_abs_err / max(max |y_eager|, 1e-12)``, i.e. the error relative to the output's
scale (its largest magnitude), not element-wise (which explodes near zero logits). The check passes
when ``max_rel_err <= tol`` (default :data:`DEFAULT_TOL` = 1e-4); a failure raises
:class:`~lsbench.errors.LsbenchError` naming the model, the format and the error.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from zoo.checkpoint import sha256_of

from lsbench.errors import LsbenchError, one_line
from lsbench.runtimes import FORMATS, SUFFIXES, can_run, check_input_size, open_runner, parity_input, require

__all__ = ["FORMATS", "SUFFIXES", "ONNX_OPSET", "DEFAULT_TOL", "ExportResult", "ExecutorchOps", "export_model",
           "artifact_digest", "compare_outputs", "edge_op_counts", "pte_op_counts", "exportable_form",
           "split_large_depthwise", "SplitDepthwiseConv", "XNNPACK_DWCONV_MAX_TAPS"]

ONNX_OPSET = 20
TORCHSCRIPT_OPSET = 17
ONNX_EXPORTERS = ("dynamo", "torchscript")
DEFAULT_TOL = 1e-4
_SCALE_FLOOR = 1e-12


@dataclass(frozen=True)
class ExportResult:
    """One exported artifact and its parity check against eager PyTorch (see the module docstring).

    ``checked`` is False when the check was not run (``check=False``, or Core ML off macOS); then
    ``max_abs_err``, ``max_rel_err`` and ``passed`` are None and ``check_note`` says why.
    ``size_bytes`` / ``sha256`` cover the file, or for a directory artifact (``.mlpackage``) every file
    in it (see :func:`artifact_digest`).
    """

    name: str
    format: str
    path: Path
    size_bytes: int
    sha256: str
    input_size: tuple[int, ...]
    exporter: str
    export_s: float
    checked: bool
    max_abs_err: float | None
    max_rel_err: float | None
    output_scale: float | None
    tol: float
    passed: bool | None
    check_runtime: str | None = None
    check_note: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        d["input_size"] = list(self.input_size)
        return d


# --------------------------------------------------------------------------- helpers

def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    if not stem:
        raise LsbenchError(f"cannot make a file name from model name {name!r}")
    return stem


def _flatten(out: Any) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().float().numpy()]
    if isinstance(out, np.ndarray):
        return [out.astype(np.float32, copy=False)]
    if isinstance(out, dict):
        return [a for v in out.values() for a in _flatten(v)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in _flatten(v)]
    raise LsbenchError(f"cannot compare a model output of type {type(out).__name__}")


def compare_outputs(reference: Any, actual: Any) -> tuple[float, float, float]:
    """(max_abs_err, max_rel_err, output_scale) between two outputs (tensors, arrays or nests of them).

    ``output_scale = max |reference|`` over all outputs; ``max_rel_err = max_abs_err / max(scale, 1e-12)``.
    """
    ref, act = _flatten(reference), _flatten(actual)
    if len(ref) != len(act):
        raise LsbenchError(f"the artifact returns {len(act)} outputs, eager PyTorch {len(ref)}")
    max_abs, scale = 0.0, 0.0
    for r, a in zip(ref, act):
        if r.size != a.size:
            raise LsbenchError(f"output shape {tuple(a.shape)} of the artifact differs from eager {tuple(r.shape)}")
        a = a.reshape(r.shape)
        if not np.all(np.isfinite(a)):
            return float("inf"), float("inf"), float(np.abs(r).max(initial=0.0))
        max_abs = max(max_abs, float(np.abs(a.astype(np.float64) - r.astype(np.float64)).max(initial=0.0)))
        scale = max(scale, float(np.abs(r).max(initial=0.0)))
    return max_abs, max_abs / max(scale, _SCALE_FLOOR), scale


def artifact_digest(path: str | Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, or of a directory artifact such as an ``.mlpackage``.

    For a directory: the sum of its files' sizes, and the sha256 over, for each file in sorted
    relative-path order, the POSIX relative path, a NUL byte and the file's bytes.
    """
    p = Path(path)
    if p.is_file():
        return p.stat().st_size, sha256_of(p)
    h = hashlib.sha256()
    if not p.is_dir():
        raise LsbenchError(f"no artifact at {p}")
    total = 0
    for f in sorted((q for q in p.rglob("*") if q.is_file()), key=lambda q: q.relative_to(p).as_posix()):
        h.update(f.relative_to(p).as_posix().encode() + b"\0")
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        total += f.stat().st_size
    return total, h.hexdigest()


def _remove(path: Path) -> None:
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    data = path.with_name(path.name + ".data")  # an ONNX external-data file from an earlier export
    if data.exists():
        data.unlink()


@contextlib.contextmanager
def _export_context():
    """SKA as stock ops, no autograd, exporter chatter kept off stdout."""
    from zoo.ska import reference_ska

    with reference_ska(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _check_model(model: nn.Module) -> None:
    if not isinstance(model, nn.Module):
        raise LsbenchError(f"export_model needs a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise LsbenchError("the model is in training mode: call .eval() (and reparameterize it) before exporting")
    for p in list(model.parameters())[:1] + list(model.buffers())[:1]:
        if p.device.type != "cpu":
            raise LsbenchError(f"export needs the model on the CPU, it is on {p.device}")
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        raise LsbenchError("export needs an fp32 model (cast it with .float())")


# --------------------------------------------------------------------------- exporters

def _export_onnx(model, x, path: Path, exporter: str, opset: int | None) -> tuple[str, dict]:
    torch_onnx = torch.onnx
    require("onnx")
    dynamo = exporter == "dynamo"
    opset = opset or (ONNX_OPSET if dynamo else TORCHSCRIPT_OPSET)
    kwargs: dict[str, Any] = dict(input_names=["input"], output_names=["output"], opset_version=opset)
    if dynamo:
        kwargs.update(dynamo=True, external_data=False, verbose=False, optimize=True)
    else:
        kwargs.update(dynamo=False, do_constant_folding=True)
    with _export_context():
        torch_onnx.export(model, (x,), str(path), **kwargs)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path), load_external_data=False).graph
    ops = Counter(n.op_type for n in graph.node)
    return f"torch.onnx {exporter} opset {opset} (torch {torch.__version__})", {
        "opset": opset, "onnx_exporter": exporter, "nodes": sum(ops.values()), "top_ops": dict(ops.most_common(8))}


@dataclass(frozen=True)
class ExecutorchOps:
    """What an ExecuTorch program runs: ``delegate_calls`` calls into backends (``delegates``: backend id ->
    calls) and ``portable``, every op left to ExecuTorch's own (non-delegated, portable) kernels: op name ->
    count. ``source`` says what was read (the lowered edge program, or a ``.pte`` file's instructions)."""

    delegate_calls: int
    delegates: dict[str, int]
    portable: dict[str, int]
    source: str

    @property
    def portable_ops(self) -> int:
        return sum(self.portable.values())


def _op_name(target: Any) -> str:
    text = str(target)
    match = re.match(r"<EdgeOpOverload: ([^>]+)>", text)
    return match.group(1) if match else getattr(target, "__name__", text)


# graph plumbing that is no kernel call in the program: tuple indexing of multi-output ops
_NOT_OPS = ("getitem",)


def edge_op_counts(edge: Any) -> ExecutorchOps:
    """Op counts of a lowered edge program (``to_edge_transform_and_lower``'s manager, or its
    ``exported_program()``): each ``executorch_call_delegate`` is a delegate call (backend from its lowered
    module), every other call_function node an op on portable kernels."""
    ep = edge.exported_program() if hasattr(edge, "exported_program") else edge
    gm = ep.graph_module
    delegates: Counter = Counter()
    portable: Counter = Counter()
    for node in gm.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if name == "executorch_call_delegate":
            lowered = getattr(gm, node.args[0].target)
            delegates[getattr(lowered, "backend_id", "unknown")] += 1
        elif name not in _NOT_OPS:
            portable[name] += 1
    return ExecutorchOps(sum(delegates.values()), dict(delegates), dict(portable.most_common()),
                         "lowered edge program (to_edge_transform_and_lower)")


def pte_op_counts(path: str | os.PathLike) -> ExecutorchOps:
    """Op counts of a ``.pte`` file as the runtime executes it: the ``forward`` plan's instructions, each a
    ``DelegateCall`` (backend id) or a ``KernelCall`` of a portable operator (name.overload -> count)."""
    require("executorch")
    from executorch.exir._serialize._program import deserialize_pte_binary

    p = Path(path)
    try:
        program = deserialize_pte_binary(p.read_bytes()).program
    except OSError as exc:
        raise LsbenchError(f"cannot read {p}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise LsbenchError(f"{p} is not an ExecuTorch program: {one_line(exc)}") from None
    plans = [plan for plan in program.execution_plan if plan.name == "forward"] or program.execution_plan[:1]
    if not plans:
        raise LsbenchError(f"{p} has no execution plan")
    plan = plans[0]
    delegates: Counter = Counter()
    portable: Counter = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "DelegateCall":
                delegates[plan.delegates[args.delegate_index].id] += 1
            elif kind == "KernelCall":
                op = plan.operators[args.op_index]
                portable[op.name + (f".{op.overload}" if op.overload else "")] += 1
    return ExecutorchOps(sum(delegates.values()), dict(delegates), dict(portable.most_common()),
                         f".pte instructions ({p.name}, plan '{plan.name}')")


def _export_pte(model, x, path: Path) -> tuple[str, dict]:
    require("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    import executorch.version as et_version

    with _export_context():
        ep = torch.export.export(model, (x,))
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        counts = edge_op_counts(edge)
        program = edge.to_executorch()
    with path.open("wb") as f:
        program.write_to_file(f)
    return f"executorch {et_version.__version__} xnnpack (torch {torch.__version__})", {
        "xnnpack_delegates": counts.delegate_calls, "portable_ops": counts.portable_ops,
        "top_portable_ops": dict(Counter(counts.portable).most_common(8))}


def _export_tflite(model, x, path: Path) -> tuple[str, dict]:
    litert_torch = require("litert_torch")
    with _export_context():
        edge_model = litert_torch.convert(model, (x,))
        edge_model.export(str(path))
    version = getattr(litert_torch, "__version__", "unknown")
    return f"litert_torch {version} (torch {torch.__version__})", {}


def _export_coreml(model, x, path: Path) -> tuple[str, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ct = require("coremltools")
    with _export_context():
        # Core ATen, except that coremltools has no addcmul (SKA's no-grad accumulation): decompose it.
        from torch._decomp import get_decompositions

        decomp = get_decompositions([torch.ops.aten.addcmul.default, torch.ops.aten.addcmul_.default])
        ep = torch.export.export(model, (x,)).run_decompositions(decomp)
        mlmodel = ct.convert(ep, convert_to="mlprogram", compute_precision=ct.precision.FLOAT32)
    mlmodel.save(str(path))
    return f"coremltools {ct.__version__} mlprogram fp32 (torch {torch.__version__})", {}


_EXPORTERS = {"onnx": _export_onnx, "pte": _export_pte, "tflite": _export_tflite, "coreml": _export_coreml}


# --------------------------------------------------------------------------- public entry point

#: XNNPACK's f32 depthwise-convolution microkernels cover at most this many taps (its largest primary tile, 5x5);
#: a larger depthwise kernel (a 7x7: 49 taps) falls back to grouped IGEMM, one 1-channel GEMM per channel,
#: measured 10-20x slower than onnxruntime on a 7x7 depthwise conv (48 channels, 56x56, 1 thread).
XNNPACK_DWCONV_MAX_TAPS = 25


class SplitDepthwiseConv(nn.Module):
    """A depthwise (one input channel per group) convolution with more than ``max_taps`` taps as a sum of
    column strips of the same kernel, each a depthwise convolution XNNPACK runs with its depthwise kernels:
    y = sum_s conv(pad(x)[..., strip s's columns], K[..., strip s]). Same function; the summation order of the
    strips differs from one convolution (fp32 rounding, ~1e-7 relative)."""

    def __init__(self, conv: nn.Conv2d, max_taps: int = XNNPACK_DWCONV_MAX_TAPS):
        super().__init__()
        kh, kw = conv.kernel_size
        width = max(1, max_taps // kh)
        self.pad = (conv.padding[1], conv.padding[1], conv.padding[0], conv.padding[0])
        self.strips = [(a, min(a + width, kw)) for a in range(0, kw, width)]
        self.kw = kw
        self.convs = nn.ModuleList()
        for a, b in self.strips:
            strip = nn.Conv2d(conv.in_channels, conv.out_channels, (kh, b - a), conv.stride, 0, 1, conv.groups,
                              bias=conv.bias is not None and a == 0, device=conv.weight.device, dtype=conv.weight.dtype)
            with torch.no_grad():
                strip.weight.copy_(conv.weight[..., a:b])
                if strip.bias is not None:
                    strip.bias.copy_(conv.bias)
            self.convs.append(strip)

    @staticmethod
    def applies(conv: nn.Module, max_taps: int = XNNPACK_DWCONV_MAX_TAPS) -> bool:
        """A zero-padded, undilated depthwise Conv2d with more than ``max_taps`` taps and numeric padding."""
        return (type(conv) is nn.Conv2d and conv.groups > 1 and conv.in_channels == conv.groups
                and conv.kernel_size[0] * conv.kernel_size[1] > max_taps and conv.dilation == (1, 1)
                and conv.padding_mode == "zeros" and not isinstance(conv.padding, str))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xp = torch.nn.functional.pad(x, self.pad)
        width = xp.shape[-1]
        out = None
        for (a, b), conv in zip(self.strips, self.convs):
            y = conv(xp[..., a:width - (self.kw - b)])
            out = y if out is None else out + y
        return out


def split_large_depthwise(model: nn.Module, max_taps: int = XNNPACK_DWCONV_MAX_TAPS) -> int:
    """Replace, in place, every depthwise Conv2d of more than ``max_taps`` taps by a :class:`SplitDepthwiseConv`;
    returns how many were replaced."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if SplitDepthwiseConv.applies(child, max_taps):
                setattr(parent, name, SplitDepthwiseConv(child, max_taps))
                replaced += 1
    return replaced


def exportable_form(model: nn.Module, input_size: Sequence[int], fmt: str = "pte") -> tuple[nn.Module, dict]:
    """(the module exporters trace for ``fmt``, what was changed: ``export_form`` and ``split_depthwise``).

    A model with an ``export_form(input_size)`` method (LSNet: :func:`zoo.lsnet.export_form`) is traced in that
    form: the same function in ops every backend here delegates (SKA and GroupNorm without select/expand, the
    attention bias gathered for the export grid). For ``pte`` (XNNPACK), depthwise convolutions larger than
    XNNPACK's depthwise kernels are split (:func:`split_large_depthwise`), on a copy. The model is not changed."""
    from zoo import copy_model

    form = getattr(model, "export_form", None)
    traced, is_form = model, False
    if callable(form):
        try:
            traced, is_form = form(tuple(input_size)), True
        except Exception as exc:
            raise LsbenchError(f"cannot build the export form of {type(model).__name__}: {one_line(exc)}") from exc
    split = 0
    if fmt == "pte" and any(SplitDepthwiseConv.applies(m) for m in traced.modules()):
        traced = traced if is_form else copy_model(traced)
        split = split_large_depthwise(traced)
    return traced, {"export_form": is_form, "split_depthwise": split}


def export_model(
    model: nn.Module,
    name: str,
    fmt: str,
    out_dir: str | os.PathLike,
    input_size: Sequence[int] = (1, 3, 224, 224),
    check: bool = True,
    *,
    tol: float = DEFAULT_TOL,
    seed: int = 0,
    onnx_exporter: str = "dynamo",
    opset: int | None = None,
    export_form: bool = True,
) -> ExportResult:
    """Export ``model`` (eval mode, fp32, CPU, already reparameterized) as ``out_dir/<name><suffix>``.

    ``fmt`` is one of :data:`FORMATS`; the input shape is static (``input_size``). With ``check``,
    the artifact is run in its own runtime on a seeded random input and compared with eager
    PyTorch: ``max_rel_err = max|y_artifact - y_eager| / max|y_eager|`` (the error relative to the
    output scale) must be ``<= tol`` (1e-4), else an :class:`LsbenchError` naming the model, the
    format and the error is raised (the artifact is kept for inspection). Core ML off macOS is
    written but recorded as unchecked (``checked=False``, ``passed=None``). An existing artifact
    of the same name is replaced. With ``export_form`` (default) a model that has an export form is traced in
    it (see :func:`exportable_form`; ``details["export_form"]`` records it); the reference output is always
    the model's own eager forward. ``export_form=False`` traces the model exactly as given.
    """
    if fmt not in FORMATS:
        raise LsbenchError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    size = check_input_size(input_size)
    if not (tol > 0):
        raise LsbenchError(f"tol must be positive, got {tol}")
    _check_model(model)
    options: dict[str, Any] = {}
    if fmt == "onnx":
        if onnx_exporter not in ONNX_EXPORTERS:
            raise LsbenchError(f"unknown ONNX exporter '{onnx_exporter}'; choose one of {', '.join(ONNX_EXPORTERS)}")
        options = {"exporter": onnx_exporter, "opset": opset}
    elif opset is not None:
        raise LsbenchError(f"opset applies to ONNX export only, not {fmt}")
    stem = _safe_name(name)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LsbenchError(f"cannot create the export folder {out}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise LsbenchError(f"the export folder {out} is not writable")
    path = out / f"{stem}{SUFFIXES[fmt]}"
    _remove(path)

    x = parity_input(size, seed)
    reference = None
    if check:
        with torch.no_grad():
            reference = model(x)  # the real model: custom SKA op, not the decomposition

    start = time.perf_counter()
    traced, rewrites = exportable_form(model, size, fmt) if export_form else (model, {"export_form": False})
    try:
        exporter, details = _EXPORTERS[fmt](traced, x, path, **options)
    except LsbenchError:
        raise
    except Exception as exc:  # exporters raise anything; the user gets one line
        raise LsbenchError(f"{name}: {fmt} export failed: {type(exc).__name__}: {one_line(exc)}") from exc
    export_s = time.perf_counter() - start
    details = {**details, **rewrites}
    nbytes, digest = artifact_digest(path)

    common = dict(name=name, format=fmt, path=path, size_bytes=nbytes, sha256=digest, input_size=size,
                  exporter=exporter, export_s=export_s, tol=tol, details=details)
    if not check:
        return ExportResult(checked=False, max_abs_err=None, max_rel_err=None, output_scale=None, passed=None,
                            check_note="parity check not requested", **common)
    reason = can_run(fmt)
    if reason:
        return ExportResult(checked=False, max_abs_err=None, max_rel_err=None, output_scale=None, passed=None,
                            check_note=reason, **common)
    try:
        # threads=None: the parity run leaves ExecuTorch's process-wide threadpool as the timer set it
        with open_runner(fmt, path, threads=None if fmt == "pte" else 1, input_size=size) as (call, runtime):
            actual = [o.clone() if isinstance(o, torch.Tensor) else o for o in call(x)]
    except LsbenchError:
        raise
    except Exception as exc:
        raise LsbenchError(f"{name}: the exported {fmt} artifact failed to run: {type(exc).__name__}: "
                           f"{one_line(exc)}") from exc
    max_abs, max_rel, scale = compare_outputs(reference, actual)
    result = ExportResult(checked=True, max_abs_err=max_abs, max_rel_err=max_rel, output_scale=scale,
                          passed=bool(max_rel <= tol), check_runtime=runtime, **common)
    if not result.passed:
        err = LsbenchError(f"{name}: {fmt} parity check failed: max_rel_err {max_rel:.3g} > tol {tol:.0e} "
                           f"(max_abs_err {max_abs:.3g}, output scale {scale:.3g}; artifact kept at {path})")
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def check_formats(formats: Sequence[str]) -> list[str]:
    """Every requested format known (checked before anything is written), at least one, no repeats."""
    formats = list(dict.fromkeys(f.strip() for f in formats if f.strip()))
    if not formats:
        raise LsbenchError(f"no export format given; choose from {', '.join(FORMATS)}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise LsbenchError(f"unknown export format '{unknown[0]}'; choose one of {', '.join(FORMATS)}")
    return formats


def export_registry_model(name: str, formats: Sequence[str], out_dir: str | os.PathLike,
                          resolution: int | None = None, batch: int = 1, checkpoint: str | os.PathLike | None = None,
                          tol: float = DEFAULT_TOL) -> tuple[list[ExportResult], int]:
    """Build registry model ``name`` (``checkpoint`` loaded, else seeded random init), reparameterize it, and
    export it in every format of ``formats``; returns (results, resolution)."""
    import zoo

    formats = check_formats(formats)
    res = zoo.get_card(name).input_size if resolution is None else resolution
    torch.manual_seed(0)
    net = zoo.reparameterize(zoo.create_model(name, checkpoint=checkpoint).eval(), inplace=True)
    return [export_model(net, name, fmt, out_dir, input_size=(batch, 3, res, res), tol=tol) for fmt in formats], res
