"""On-host latency of exported artifacts through the mobile runtimes (onnxruntime, ExecuTorch).

These numbers are the *host CPU* through the runtime a phone would use, not phone latency: they
rank models under the runtime's kernels and graph optimizations, and catch ops that fall off the
fast path (e.g. ExecuTorch ops not delegated to XNNPACK), but they do not replace on-device runs.

Every timer feeds the same seeded input as the parity check (:func:`lsbench.export.parity_input`)
and returns per-call seconds from :func:`lsbench.timing.time_cpu`. :func:`runtime_info` describes
how a record was taken (runtime, version, threads, options) and belongs next to every number.

Threads:

* onnxruntime: ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1``, sequential
  execution, ``ORT_ENABLE_ALL`` graph optimizations, CPU execution provider.
* ExecuTorch: the XNNPACK threadpool is process-wide. It is resized (only when it differs from
  ``threads``) *before* the program is loaded and never while a method this module loaded is alive:
  resizing it under a loaded XNNPACK method has hung the process. Do not time ExecuTorch from two
  threads at once.
"""
from __future__ import annotations

import contextlib
import gc
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

from lsbench.errors import LsbenchError
from lsbench.export import SUFFIXES, _check_input_size, parity_input, require
from lsbench.timing import time_cpu

__all__ = ["runtime_info", "time_onnxruntime", "time_executorch", "time_litert", "time_artifact",
           "onnxruntime_session", "executorch_method", "litert_interpreter", "format_of"]


def _check_threads(threads: int) -> int:
    if int(threads) != threads or threads < 1:
        raise LsbenchError(f"threads must be a positive integer, got {threads}")
    return int(threads)


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise LsbenchError(f"no exported model at {p}")
    return p


def format_of(path: str | os.PathLike) -> str:
    """The export format of an artifact from its suffix (``.onnx``, ``.pte``, ``.tflite``, ``.mlpackage``)."""
    suffix = Path(path).suffix.lower()
    for fmt, s in SUFFIXES.items():
        if s == suffix:
            return fmt
    raise LsbenchError(f"cannot tell the format of {path}: expected one of {', '.join(SUFFIXES.values())}")


# --------------------------------------------------------------------------- runtime info

def runtime_info(fmt: str, threads: int | None = None) -> dict[str, Any]:
    """Which runtime measures ``fmt`` artifacts here, its version and settings (for the record).

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
        info.update(runtime="ai_edge_litert", version=getattr(litert, "__version__", "unknown"),
                    interpreter="ai_edge_litert.interpreter.Interpreter (default XNNPACK delegate)")
    elif fmt == "coreml":
        ct = require("coremltools")
        info.update(runtime="coremltools", version=ct.__version__, can_predict=sys.platform == "darwin")
    else:
        raise LsbenchError(f"unknown format '{fmt}'; choose one of {', '.join(SUFFIXES)}")
    if threads is not None:
        info["threads"] = _check_threads(threads)
    return info


# --------------------------------------------------------------------------- sessions

def onnxruntime_session(path: str | os.PathLike, threads: int = 1):
    """(InferenceSession, onnxruntime version): CPU provider, sequential, all graph optimizations."""
    ort = require("onnxruntime")
    threads = _check_threads(threads)
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
        raise LsbenchError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0][:300]}") from None
    return sess, ort.__version__


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
        _set_executorch_threads(_check_threads(threads))
    try:
        program = Runtime.get().load_program(p)
        method = program.load_method("forward")
    except Exception as exc:
        raise LsbenchError(f"ExecuTorch cannot load {p}: {str(exc).strip().splitlines()[0][:300]}") from None
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

    interp = Interpreter(model_path=str(_check_file(path)), num_threads=_check_threads(threads))
    interp.allocate_tensors()
    return interp, getattr(litert, "__version__", "unknown")


def _check_shape(expected: Sequence[Any], size: tuple[int, ...], path: Path) -> None:
    exp = tuple(expected)
    if len(exp) != len(size) or any(isinstance(e, int) and e != s for e, s in zip(exp, size)):
        raise LsbenchError(f"{path.name} was exported for input {exp}, not {size}")


# --------------------------------------------------------------------------- timers

@contextlib.contextmanager
def _onnxruntime_call(path: Path, size: tuple[int, ...], threads: int, seed: int):
    sess, _ = onnxruntime_session(path, threads)
    inp = sess.get_inputs()[0]
    _check_shape(inp.shape, size, path)
    feed = {inp.name: parity_input(size, seed).numpy()}
    run = sess.run
    yield lambda: run(None, feed)


@contextlib.contextmanager
def _executorch_call(path: Path, size: tuple[int, ...], threads: int, seed: int):
    args = [parity_input(size, seed)]
    with executorch_method(path, threads) as (method, _):
        _check_shape(method.metadata.input_tensor_meta(0).sizes(), size, path)
        execute = method.execute
        yield lambda: execute(args)


@contextlib.contextmanager
def _litert_call(path: Path, size: tuple[int, ...], threads: int, seed: int):
    interp, _ = litert_interpreter(path, threads)
    inp = interp.get_input_details()[0]
    _check_shape([int(s) for s in inp["shape"]], size, path)
    interp.set_tensor(inp["index"], parity_input(size, seed).numpy())
    yield interp.invoke


_CALLS = {"onnx": _onnxruntime_call, "pte": _executorch_call, "tflite": _litert_call}


def _time_runtime(fmt: str, path: str | os.PathLike, input_size: Sequence[int], threads: int, warmup: int,
                  repeats: int, warmup_s: float | None, measure_s: float | None, seed: int) -> list[float]:
    """Per-call seconds of one inference in the runtime of ``fmt``, on the seeded parity input."""
    size = _check_input_size(input_size)
    with _CALLS[fmt](Path(path), size, threads, seed) as call:
        return time_cpu(call, warmup=warmup, repeats=repeats, warmup_s=warmup_s, measure_s=measure_s)


def time_onnxruntime(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                     warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                     measure_s: float | None = None, seed: int = 0) -> list[float]:
    """Seconds per ``session.run`` of an ``.onnx`` model (settings: see the module docstring)."""
    return _time_runtime("onnx", path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)


def time_executorch(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                    warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                    measure_s: float | None = None, seed: int = 0) -> list[float]:
    """Seconds per ``forward.execute`` of a ``.pte`` program with an XNNPACK threadpool of ``threads``."""
    return _time_runtime("pte", path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)


def time_litert(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                measure_s: float | None = None, seed: int = 0) -> list[float]:
    """Seconds per ``invoke()`` of a ``.tflite`` model in the LiteRT interpreter (``num_threads=threads``)."""
    return _time_runtime("tflite", path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed)


def time_artifact(path: str | os.PathLike, input_size: Sequence[int] = (1, 3, 224, 224), threads: int = 1,
                  warmup: int = 20, repeats: int = 100, *, warmup_s: float | None = None,
                  measure_s: float | None = None, seed: int = 0) -> tuple[list[float], dict[str, Any]]:
    """(per-call seconds, :func:`runtime_info`) for an artifact, the runtime picked by its suffix."""
    fmt = format_of(path)
    if fmt not in _CALLS:
        raise LsbenchError(f"no on-host runtime times {fmt} artifacts (Core ML runs only on Apple devices)")
    info = runtime_info(fmt, threads)
    return _time_runtime(fmt, path, input_size, threads, warmup, repeats, warmup_s, measure_s, seed), info
