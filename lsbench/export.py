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
    result's ``details`` say how many (for LSNet the SKA decomposition's slicing and GroupNorm do).
``tflite``
    ``litert_torch.convert`` (optional extra ``lsbench[litert]``), checked with ``ai_edge_litert``.
``coreml``
    ``coremltools.convert`` of the ``torch.export`` program to an fp32 ML program (``.mlpackage``
    directory). Core ML can only *predict* on macOS: elsewhere the artifact is written but the parity
    check is recorded as not run (``checked=False``, ``passed=None``), never as passed.

LSNet's SKA is a torch custom op (``zoo::ska``) that no exporter can carry, so every export runs
under :func:`zoo.ska.reference_ska` (SKA as pad, slicing, multiply, add). The eager reference output
is computed *outside* that context, with the custom op, so the check covers the decomposition too.

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
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from lsbench.errors import LsbenchError

__all__ = ["FORMATS", "SUFFIXES", "ONNX_OPSET", "DEFAULT_TOL", "ExportResult", "export_model", "artifact_digest",
           "parity_input", "compare_outputs", "require"]

FORMATS = ("onnx", "pte", "tflite", "coreml")
SUFFIXES = {"onnx": ".onnx", "pte": ".pte", "tflite": ".tflite", "coreml": ".mlpackage"}
ONNX_OPSET = 20
TORCHSCRIPT_OPSET = 17
ONNX_EXPORTERS = ("dynamo", "torchscript")
DEFAULT_TOL = 1e-4
_SCALE_FLOOR = 1e-12

# Import name -> (what it is needed for, how to get it). onnx/onnxruntime are core dependencies.
_EXTRAS = {
    "onnx": ("ONNX export", "reinstall lsbench (onnx is a core dependency)"),
    "onnxruntime": ("the ONNX runtime", "reinstall lsbench (onnxruntime is a core dependency)"),
    "executorch": ("ExecuTorch (.pte) export and runtime", "install lsbench[mobile]"),
    "litert_torch": ("TFLite export", "install lsbench[litert]"),
    "ai_edge_litert": ("the LiteRT (TFLite) runtime", "install lsbench[litert]"),
    "coremltools": ("Core ML export", "install lsbench[coreml]"),
}


def require(module: str):
    """Import an optional dependency or raise a one-line LsbenchError saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        purpose, hint = _EXTRAS.get(top, (module, f"install {top}"))
        raise LsbenchError(f"{purpose} needs the '{top}' package, which cannot be imported "
                           f"({_one_line(exc)}): {hint}") from None


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

def _one_line(exc: BaseException, limit: int = 300) -> str:
    """First non-empty line of an exception message, ANSI colours stripped, truncated."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    try:
        size = tuple(int(s) for s in input_size)
    except (TypeError, ValueError):
        raise LsbenchError(f"input_size must be a sequence of ints, got {input_size!r}") from None
    if len(size) != 4 or any(s < 1 for s in size):
        raise LsbenchError(f"input_size must be 4 positive ints (batch, channels, height, width), got {size}")
    return size


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    if not stem:
        raise LsbenchError(f"cannot make a file name from model name {name!r}")
    return stem


def parity_input(input_size: Sequence[int], seed: int = 0) -> torch.Tensor:
    """The seeded standard-normal fp32 input used by the parity check (and the mobile timers)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(_check_input_size(input_size), generator=gen, dtype=torch.float32)


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
    h = hashlib.sha256()
    if p.is_file():
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return p.stat().st_size, h.hexdigest()
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


def _op_name(target: Any) -> str:
    text = str(target)
    match = re.match(r"<EdgeOpOverload: ([^>]+)>", text)
    return match.group(1) if match else getattr(target, "__name__", text)


def _export_pte(model, x, path: Path) -> tuple[str, dict]:
    require("executorch")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    import executorch.version as et_version

    with _export_context():
        ep = torch.export.export(model, (x,))
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
        graph = edge.exported_program().graph_module.graph
        ops = [_op_name(n.target) for n in graph.nodes if n.op == "call_function"]
        delegates = ops.count("executorch_call_delegate")
        portable = Counter(op for op in ops if op not in ("executorch_call_delegate", "getitem"))
        program = edge.to_executorch()
    with path.open("wb") as f:
        program.write_to_file(f)
    return f"executorch {et_version.__version__} xnnpack (torch {torch.__version__})", {
        "xnnpack_delegates": delegates, "portable_ops": sum(portable.values()),
        "top_portable_ops": dict(portable.most_common(8))}


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


# --------------------------------------------------------------------------- artifact runners

def _run_onnx(path: Path, x: torch.Tensor) -> tuple[list[np.ndarray], str]:
    from lsbench.mobile import onnxruntime_session

    sess, version = onnxruntime_session(path, threads=1)
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return out, f"onnxruntime {version}"


def _run_pte(path: Path, x: torch.Tensor) -> tuple[list, str]:
    from lsbench.mobile import executorch_method

    with executorch_method(path, threads=None) as (method, version):
        out = [o.clone() if isinstance(o, torch.Tensor) else o for o in method.execute([x])]
    return out, f"executorch {version}"


def _run_tflite(path: Path, x: torch.Tensor) -> tuple[list[np.ndarray], str]:
    from lsbench.mobile import litert_interpreter

    interp, version = litert_interpreter(path, threads=1)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], x.numpy().reshape(inp["shape"]))
    interp.invoke()
    return [interp.get_tensor(o["index"]) for o in interp.get_output_details()], f"ai_edge_litert {version}"


def _run_coreml(path: Path, x: torch.Tensor) -> tuple[list[np.ndarray], str] | None:
    if sys.platform != "darwin":
        return None
    import coremltools as ct

    mlmodel = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
    name = mlmodel.get_spec().description.input[0].name
    out = mlmodel.predict({name: x.numpy()})
    return [np.asarray(out[k]) for k in sorted(out)], f"coremltools {ct.__version__} (Core ML, CPU only)"


_EXPORTERS = {"onnx": _export_onnx, "pte": _export_pte, "tflite": _export_tflite, "coreml": _export_coreml}
_RUNNERS = {"onnx": _run_onnx, "pte": _run_pte, "tflite": _run_tflite, "coreml": _run_coreml}


# --------------------------------------------------------------------------- public entry point

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
) -> ExportResult:
    """Export ``model`` (eval mode, fp32, CPU, already reparameterized) as ``out_dir/<name><suffix>``.

    ``fmt`` is one of :data:`FORMATS`; the input shape is static (``input_size``). With ``check``,
    the artifact is run in its own runtime on a seeded random input and compared with eager
    PyTorch: ``max_rel_err = max|y_artifact - y_eager| / max|y_eager|`` (the error relative to the
    output scale) must be ``<= tol`` (1e-4), else an :class:`LsbenchError` naming the model, the
    format and the error is raised (the artifact is kept for inspection). Core ML off macOS is
    written but recorded as unchecked (``checked=False``, ``passed=None``). An existing artifact
    of the same name is replaced.
    """
    if fmt not in FORMATS:
        raise LsbenchError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    size = _check_input_size(input_size)
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
    try:
        exporter, details = _EXPORTERS[fmt](model, x, path, **options)
    except LsbenchError:
        raise
    except Exception as exc:  # exporters raise anything; the user gets one line
        raise LsbenchError(f"{name}: {fmt} export failed: {type(exc).__name__}: {_one_line(exc)}") from exc
    export_s = time.perf_counter() - start
    nbytes, digest = artifact_digest(path)

    common = dict(name=name, format=fmt, path=path, size_bytes=nbytes, sha256=digest, input_size=size,
                  exporter=exporter, export_s=export_s, tol=tol, details=details)
    if not check:
        return ExportResult(checked=False, max_abs_err=None, max_rel_err=None, output_scale=None, passed=None,
                            check_note="parity check not requested", **common)
    try:
        ran = _RUNNERS[fmt](path, x)
    except LsbenchError:
        raise
    except Exception as exc:
        raise LsbenchError(f"{name}: the exported {fmt} artifact failed to run: {type(exc).__name__}: "
                           f"{_one_line(exc)}") from exc
    if ran is None:
        return ExportResult(checked=False, max_abs_err=None, max_rel_err=None, output_scale=None, passed=None,
                            check_note=f"Core ML predictions need macOS; parity not checked on {sys.platform}",
                            **common)
    actual, runtime = ran
    max_abs, max_rel, scale = compare_outputs(reference, actual)
    result = ExportResult(checked=True, max_abs_err=max_abs, max_rel_err=max_rel, output_scale=scale,
                          passed=bool(max_rel <= tol), check_runtime=runtime, **common)
    if not result.passed:
        err = LsbenchError(f"{name}: {fmt} parity check failed: max_rel_err {max_rel:.3g} > tol {tol:.0e} "
                           f"(max_abs_err {max_abs:.3g}, output scale {scale:.3g}; artifact kept at {path})")
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result
