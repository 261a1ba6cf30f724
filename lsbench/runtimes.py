"""The on-host runtimes that run exported artifacts: one owner for their packages, file suffixes, sessions
and the seeded input every artifact is fed.

The export parity check (:mod:`lsbench.export`) and the mobile timer (:mod:`lsbench.mobile`) both run an
artifact through :func:`open_runner`, so "run this .pte" means one thing in both, and neither imports the
other.

Sessions, as each runtime is set up:

* onnxruntime: ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1``, sequential execution,
  ``ORT_ENABLE_ALL`` graph optimizations, CPU execution provider.
* ExecuTorch: the XNNPACK threadpool is process-wide. It is resized (only when it differs from ``threads``)
  *before* the program is loaded and never while a method this module loaded is alive: resizing it under a
  loaded XNNPACK method has hung the process. Do not run ExecuTorch from two threads at once.
* LiteRT: ``ai_edge_litert`` Interpreter with ``num_threads`` (default XNNPACK delegate).
* Core ML: ``coremltools`` predicts on macOS only, on the CPU compute unit.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from lsbench.errors import LsbenchError, one_line

__all__ = ["FORMATS", "SUFFIXES", "require", "format_of", "check_input_size", "check_threads", "parity_input",
           "runtime_info", "can_run", "open_runner", "onnxruntime_session", "executorch_method", "executorch_threads",
           "litert_interpreter"]

#: artifact formats, and the suffix each is written with
SUFFIXES = {"onnx": ".onnx", "pte": ".pte", "tflite": ".tflite", "coreml": ".mlpackage"}
FORMATS = tuple(SUFFIXES)

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
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        purpose, hint = _EXTRAS.get(top, (module, f"install {top}"))
        raise LsbenchError(f"{purpose} needs the '{top}' package, which cannot be imported "
                           f"({one_line(exc)}): {hint}") from None


def format_of(path: str | os.PathLike) -> str:
    """The format of an artifact from its suffix (``.onnx``, ``.pte``, ``.tflite``, ``.mlpackage``)."""
    suffix = Path(path).suffix.lower()
    for fmt, s in SUFFIXES.items():
        if s == suffix:
            return fmt
    raise LsbenchError(f"cannot tell the format of {path}: expected one of {', '.join(SUFFIXES.values())}")


def check_input_size(input_size: Sequence[int]) -> tuple[int, ...]:
    """(batch, channels, height, width) as ints, or a one-line LsbenchError."""
    try:
        size = tuple(int(s) for s in input_size)
    except (TypeError, ValueError):
        raise LsbenchError(f"input_size must be a sequence of ints, got {input_size!r}") from None
    if len(size) != 4 or any(s < 1 for s in size):
        raise LsbenchError(f"input_size must be 4 positive ints (batch, channels, height, width), got {size}")
    return size


def check_threads(threads: int) -> int:
    if int(threads) != threads or threads < 1:
        raise LsbenchError(f"threads must be a positive integer, got {threads}")
    return int(threads)


def parity_input(input_size: Sequence[int], seed: int = 0) -> torch.Tensor:
    """The seeded standard-normal fp32 input of the parity check and of the timers."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(check_input_size(input_size), generator=gen, dtype=torch.float32)


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise LsbenchError(f"no exported model at {p}")
    return p


def _check_shape(expected: Sequence[Any], size: tuple[int, ...] | None, path: Path) -> None:
    if size is None:  # the caller feeds the shape it exported with
        return
    exp = tuple(expected)
    if len(exp) != len(size) or any(isinstance(e, int) and e != s for e, s in zip(exp, size)):
        raise LsbenchError(f"{path.name} was exported for input {exp}, not {size}")


# --------------------------------------------------------------------------- runtime info

def runtime_info(fmt: str, threads: int | None = None) -> dict[str, Any]:
    """Which runtime runs ``fmt`` artifacts here, its version and settings (for the record).

    Raises :class:`LsbenchError` naming the extra to install when the runtime is missing.
    """
    info: dict[str, Any] = {"format": fmt}
    if fmt == "onnx":
        ort = require("onnxruntime")
        info.update(runtime="onnxruntime", version=ort.__version__, provider="CPUExecutionProvider",
                    graph_optimization="all", execution_mode="sequential", inter_op_threads=1)
    elif fmt == "pte":
        require("executorch")
        import executorch.version as et_version
        from executorch.runtime import Runtime

        info.update(runtime="executorch", version=et_version.__version__, backend="XnnpackBackend",
                    backend_available=Runtime.get().backend_registry.is_available("XnnpackBackend"))
    elif fmt == "tflite":
        litert = require("ai_edge_litert")
        info.update(runtime="litert", version=getattr(litert, "__version__", "unknown"),
                    interpreter="ai_edge_litert.interpreter.Interpreter (default XNNPACK delegate)")
    elif fmt == "coreml":
        ct = require("coremltools")
        info.update(runtime="coremltools", version=ct.__version__, can_predict=sys.platform == "darwin")
    else:
        raise LsbenchError(f"unknown format '{fmt}'; choose one of {', '.join(SUFFIXES)}")
    if threads is not None:
        info["threads"] = check_threads(threads)
    return info


def can_run(fmt: str) -> str | None:
    """None when artifacts of ``fmt`` can run on this host, else why not (Core ML needs macOS)."""
    if fmt == "coreml" and sys.platform != "darwin":
        return f"Core ML predictions need macOS; parity not checked on {sys.platform}"
    return None


# --------------------------------------------------------------------------- sessions

def onnxruntime_session(path: str | os.PathLike, threads: int = 1):
    """(InferenceSession, onnxruntime version): CPU provider, sequential, all graph optimizations."""
    ort = require("onnxruntime")
    threads = check_threads(threads)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(_check_file(path)), so, providers=["CPUExecutionProvider"])
    except LsbenchError:
        raise
    except Exception as exc:
        raise LsbenchError(f"onnxruntime cannot load {path}: {one_line(exc)}") from None
    return sess, ort.__version__


def executorch_threads() -> int | None:
    """The size of ExecuTorch's process-wide XNNPACK threadpool now (None where the build cannot tell)."""
    from executorch.extension.pybindings import portable_lib

    get = getattr(portable_lib, "_threadpool_get_thread_count", None)
    return None if get is None else int(get())


def _set_executorch_threads(threads: int) -> None:
    from executorch.extension.pybindings import portable_lib

    get = getattr(portable_lib, "_threadpool_get_thread_count", None)
    reset = getattr(portable_lib, "_unsafe_reset_threadpool", None)
    if reset is None:
        raise LsbenchError("this ExecuTorch build cannot set its thread count")
    if get is None or get() != threads:
        reset(threads)


@contextlib.contextmanager
def executorch_method(path: str | os.PathLike, threads: int | None = 1) -> Iterator[tuple[Any, str]]:
    """Load ``forward`` of a ``.pte`` (after sizing the threadpool; ``None`` leaves it) and release it after."""
    require("executorch")
    import executorch.version as et_version
    from executorch.runtime import Runtime

    p = _check_file(path)
    if threads is not None:
        _set_executorch_threads(check_threads(threads))
    try:
        program = Runtime.get().load_program(p)
        method = program.load_method("forward")
    except Exception as exc:
        raise LsbenchError(f"ExecuTorch cannot load {p}: {one_line(exc)}") from None
    if method is None:
        raise LsbenchError(f"{p} has no 'forward' method")
    try:
        yield method, et_version.__version__
    finally:
        del method, program
        gc.collect()  # the XNNPACK runtime must be gone before anyone resizes the threadpool


def litert_interpreter(path: str | os.PathLike, threads: int = 1):
    """(allocated LiteRT Interpreter, ai_edge_litert version) for a ``.tflite`` file."""
    litert = require("ai_edge_litert")
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(_check_file(path)), num_threads=check_threads(threads))
    interp.allocate_tensors()
    return interp, getattr(litert, "__version__", "unknown")


# --------------------------------------------------------------------------- runners

Call = Callable[[torch.Tensor], list]


@contextlib.contextmanager
def _onnx_runner(path: Path, size: tuple[int, ...] | None, threads: int | None) -> Iterator[tuple[Call, str]]:
    sess, version = onnxruntime_session(path, threads or 1)
    inp = sess.get_inputs()[0]
    _check_shape(inp.shape, size, path)
    name, run = inp.name, sess.run
    yield (lambda x: run(None, {name: x.numpy()})), f"onnxruntime {version}"


@contextlib.contextmanager
def _pte_runner(path: Path, size: tuple[int, ...] | None, threads: int | None) -> Iterator[tuple[Call, str]]:
    with executorch_method(path, threads) as (method, version):
        _check_shape(method.metadata.input_tensor_meta(0).sizes(), size, path)
        execute = method.execute
        yield (lambda x: execute([x])), f"executorch {version}"


@contextlib.contextmanager
def _tflite_runner(path: Path, size: tuple[int, ...] | None, threads: int | None) -> Iterator[tuple[Call, str]]:
    interp, version = litert_interpreter(path, threads or 1)
    inp = interp.get_input_details()[0]
    _check_shape([int(s) for s in inp["shape"]], size, path)
    outputs = interp.get_output_details()

    def call(x: torch.Tensor) -> list:
        interp.set_tensor(inp["index"], x.numpy())
        interp.invoke()
        return [interp.get_tensor(o["index"]) for o in outputs]

    yield call, f"ai_edge_litert {version}"


@contextlib.contextmanager
def _coreml_runner(path: Path, size: tuple[int, ...] | None, threads: int | None) -> Iterator[tuple[Call, str]]:
    import numpy as np

    ct = require("coremltools")
    mlmodel = ct.models.MLModel(str(_check_file(path)), compute_units=ct.ComputeUnit.CPU_ONLY)
    name = mlmodel.get_spec().description.input[0].name

    def call(x: torch.Tensor) -> list:
        out = mlmodel.predict({name: x.numpy()})
        return [np.asarray(out[k]) for k in sorted(out)]

    yield call, f"coremltools {ct.__version__} (Core ML, CPU only)"


_RUNNERS = {"onnx": _onnx_runner, "pte": _pte_runner, "tflite": _tflite_runner, "coreml": _coreml_runner}


@contextlib.contextmanager
def open_runner(fmt: str, path: str | os.PathLike, threads: int | None = 1,
                input_size: Sequence[int] | None = None) -> Iterator[tuple[Call, str]]:
    """Open ``path`` (a ``fmt`` artifact) in its runtime; yields ``(call, label)``: ``call(x)`` runs one
    inference and returns the outputs, ``label`` names the runtime and version. ``input_size`` (default:
    whatever the artifact takes) is checked against the artifact's static input shape. ``threads=None``
    leaves ExecuTorch's process-wide threadpool as it is."""
    if fmt not in _RUNNERS:
        raise LsbenchError(f"unknown format '{fmt}'; choose one of {', '.join(SUFFIXES)}")
    reason = can_run(fmt)
    if reason:
        raise LsbenchError(f"no on-host runtime runs {fmt} artifacts here: {reason}")
    if threads is not None:
        threads = check_threads(threads)
    size = check_input_size(input_size) if input_size is not None else None
    with _RUNNERS[fmt](Path(path), size, threads) as opened:
        yield opened
