"""Profile a model: params, FLOPs and latency under one recorded :class:`ProfileSettings`.

Each job is a function of (model name, settings) returning tidy :class:`Record` s; nothing here prints,
saves or plots. :func:`profile_sweep` runs many models through the resumable results store.
"""
from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

import zoo

from .counting import COUNTERS, check_counters, count_flops, count_params
from .env import fingerprint, gpu_telemetry
from .errors import LsbenchError
from .results import Record, ResultsStore, run_sweep
from .settings import RUNTIMES, ProfileSettings
from .timing import cpu_threads, summarize, time_cpu, time_cuda

__all__ = ["PreparedModel", "prepare", "count_records", "latency_records", "profile_model", "profile_sweep",
           "METRICS"]

METRICS = ("params", "flops", "latency")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class PreparedModel:
    """A model in the exact form that is timed, with its input and a description of how it was made."""

    name: str
    model: Callable[[Tensor], Tensor]
    example: Tensor
    resolution: int
    form: dict


def _resolution(name: str, settings: ProfileSettings) -> int:
    return settings.resolution or zoo.get_card(name).input_size


def _check_device(settings: ProfileSettings) -> torch.device:
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise LsbenchError("device cuda requested but CUDA is not available on this machine")
    return torch.device("cpu" if settings.device in RUNTIMES else settings.device)


def _build(name: str, checkpoint: str | None, fused: bool) -> nn.Module:
    torch.manual_seed(0)  # random weights are the papers' speed protocol; seeded for repeatability
    model = zoo.create_model(name, checkpoint=checkpoint).eval()
    return zoo.reparameterize(model, inplace=True) if fused else model


def prepare(name: str, settings: ProfileSettings, checkpoint: str | None = None) -> PreparedModel:
    """Build ``name`` and turn it into the form ``settings`` describe (fused, dtype, layout, compiled)."""
    settings.validate()
    device = _check_device(settings)
    res = _resolution(name, settings)
    model = _build(name, checkpoint, settings.fused).to(device)
    x = torch.randn(settings.batch, 3, res, res, device=device)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    if settings.dtype != "fp32" and not settings.amp:
        model, x = model.to(_DTYPES[settings.dtype]), x.to(_DTYPES[settings.dtype])
    runner: Callable[[Tensor], Tensor] = model
    if settings.jit_trace:
        with torch.no_grad(), _autocast(settings):
            runner = torch.jit.trace(model, x, check_trace=False)
    elif settings.compile:
        runner = torch.compile(model)
    ska_kernel = "triton" if settings.device == "cuda" and zoo.ska.use_triton() else "pytorch"
    form = {"ska_kernel": ska_kernel, "fused": settings.fused, "dtype": settings.dtype, "amp": settings.amp,
            "channels_last": settings.channels_last, "jit_trace": settings.jit_trace,
            "compile": settings.compile, "weights": checkpoint or "random init (seed 0)"}
    return PreparedModel(name, runner, x, res, form)


def _autocast(settings: ProfileSettings):
    if not settings.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=settings.device, dtype=_DTYPES[settings.dtype])


@contextlib.contextmanager
def _cuda_flags(settings: ProfileSettings):
    old = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark
    if settings.tf32 is not None:  # None keeps PyTorch's defaults, as the papers' scripts ran
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = settings.tf32
    try:
        yield
    finally:
        (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = old


def _record(name, metric, value, unit, settings, fp, **kw) -> Record:
    return Record(model=name, metric=metric, value=value, unit=unit, settings=settings, fingerprint=fp, **kw)


def count_records(name: str, settings: ProfileSettings, fp: dict, counters: Sequence[str] = COUNTERS,
                  checkpoint: str | None = None) -> list[Record]:
    """Params (as built and BN-fused) and FLOPs of the fused model at batch 1 from every counter."""
    res = _resolution(name, settings)
    model = _build(name, checkpoint, fused=False)
    fused = zoo.reparameterize(model)
    records = [
        _record(name, "params", count_params(model), "count", settings, fp, extra={"form": "as built"}),
        _record(name, "params_fused", count_params(fused), "count", settings, fp,
                extra={"form": "reparameterized", "method": zoo.registry.REPARAM_METHOD}),
    ]
    for count in count_flops(fused, (1, 3, res, res), counters):
        records.append(_record(name, "macs", count.gmacs, "GMac", settings, fp, counter=count.counter,
                               extra={"convention": count.convention, "resolution": res, "batch": 1,
                                      "form": "reparameterized", "unsupported": count.unsupported,
                                      "raw": count.raw, "raw_unit": count.unit}))
    return records


def _time(prepared: PreparedModel, settings: ProfileSettings) -> tuple[list[float], dict]:
    x = prepared.example

    def step():
        return prepared.model(x)

    windows = dict(warmup=settings.warmup, repeats=settings.repeats, warmup_s=settings.warmup_s,
                   measure_s=settings.measure_s)
    if settings.device == "cuda":
        with _cuda_flags(settings), torch.inference_mode(), _autocast(settings):
            try:
                samples = time_cuda(step, sync_each=settings.sync_each, **windows)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                raise LsbenchError(f"{prepared.name}: CUDA out of memory at batch {settings.batch}; "
                                   f"lower --batch") from None
        return samples, {}
    with cpu_threads(settings.threads, settings.interop_threads, settings.pin_cores) as effective:
        with torch.inference_mode(), _autocast(settings):
            samples = time_cpu(step, **windows)
    return samples, {"threads_effective": effective}


def _time_runtime(name: str, settings: ProfileSettings, checkpoint: str | None) -> tuple[list[float], dict]:
    """Export the deploy form to the runtime's format, check it against eager, time it in that runtime."""
    from .export import export_model
    from .mobile import time_artifact

    if settings.dtype != "fp32" or settings.amp or settings.compile or settings.jit_trace:
        raise LsbenchError(f"{settings.device} runs the exported fp32 model; drop --dtype/--amp/--compile")
    size = (settings.batch, 3, _resolution(name, settings), _resolution(name, settings))
    model = _build(name, checkpoint, fused=True)
    with tempfile.TemporaryDirectory(prefix="lsbench-export-") as tmp:
        exported = export_model(model, name, RUNTIMES[settings.device], tmp, input_size=size, check=True)
        samples: list[float] = []
        for _ in range(settings.rounds):  # a fresh runtime session per round, as eager rebuilds the model
            chunk, info = time_artifact(exported.path, size, threads=settings.threads, warmup=settings.warmup,
                                        repeats=settings.repeats, warmup_s=settings.warmup_s,
                                        measure_s=settings.measure_s)
            samples += chunk
    export = {k: v for k, v in exported.as_dict().items() if k != "path"}
    form = {"fused": True, "dtype": "fp32", "exported": RUNTIMES[settings.device],
            "weights": checkpoint or "random init (seed 0)"}
    return samples, {"runtime": info, "export": export, "form": form, "resolution": size[-1],
                     "rounds": settings.rounds}


def _timed_records(name: str, settings: ProfileSettings, fp: dict, samples: list[float],
                   extra: dict) -> list[Record]:
    """Latency (ms, median + statistics) and throughput (img/s) records from per-batch samples."""
    latency = summarize(samples).scaled(1e3)
    per_image = summarize([settings.batch / s for s in samples])
    mean_s = sum(samples) / len(samples)
    return [
        _record(name, "latency", latency.median, "ms", settings, fp, stats=latency, extra=extra),
        # the papers' throughput: batch / mean iteration time; stats are of per-iteration img/s
        _record(name, "throughput", settings.batch / mean_s, "img/s", settings, fp, stats=per_image,
                extra=extra),
    ]


def _eager_extra(prepared: PreparedModel, settings: ProfileSettings, extra: dict) -> dict:
    return {**extra, "form": prepared.form, "resolution": prepared.resolution, "batch": settings.batch,
            "rounds": settings.rounds}


def latency_records(name: str, settings: ProfileSettings, fp: dict, checkpoint: str | None = None) -> list[Record]:
    """Per-batch latency (ms) and throughput (img/s) with full statistics: CPU, CUDA or an on-host runtime."""
    if settings.device in RUNTIMES:
        samples, extra = _time_runtime(name, settings, checkpoint)
        extra["batch"] = settings.batch
        return _timed_records(name, settings, fp, samples, extra)
    telemetry_before = gpu_telemetry() if settings.device == "cuda" else None
    samples: list[float] = []
    for _ in range(settings.rounds):  # a fresh build per round: memory placement is averaged over
        prepared = prepare(name, settings, checkpoint)
        chunk, extra = _time(prepared, settings)
        samples += chunk
    telemetry_after = gpu_telemetry() if settings.device == "cuda" else None
    extra = _eager_extra(prepared, settings, {**extra, "gpu_before": telemetry_before, "gpu_after": telemetry_after})
    return _timed_records(name, settings, fp, samples, extra)


def validate_job(metrics: Iterable[str], counters: Sequence[str]) -> list[str]:
    """Check metric and counter names before any work starts; returns the metrics as a list."""
    metrics = list(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise LsbenchError(f"unknown metric {unknown[0]!r}; valid metrics: {', '.join(METRICS)}" if unknown
                           else f"no metric given; valid metrics: {', '.join(METRICS)}")
    if "flops" in metrics:
        check_counters(counters)
    return metrics


def profile_model(name: str, settings: ProfileSettings, metrics: Iterable[str] = METRICS,
                  counters: Sequence[str] = COUNTERS, checkpoint: str | None = None) -> list[Record]:
    """Every requested metric of one model under one settings value."""
    metrics = validate_job(metrics, counters)
    settings.validate()
    zoo.get_card(name)  # fail fast on unknown names
    _check_device(settings)
    fp = _fingerprint(settings)
    records: list[Record] = []
    if "params" in metrics or "flops" in metrics:
        counted = count_records(name, settings, fp, counters if "flops" in metrics else (), checkpoint)
        records += [r for r in counted if r.metric != "macs" or "flops" in metrics]
    if "latency" in metrics:
        records += latency_records(name, settings, fp, checkpoint)
    return records


def job_key(settings: ProfileSettings, metrics: Sequence[str], counters: Sequence[str]) -> str:
    """Resume key of one profile job: the settings' key plus what is measured."""
    blob = f"{settings.key()}|{','.join(sorted(metrics))}|{','.join(sorted(counters))}"
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _fingerprint(settings: ProfileSettings) -> dict:
    return fingerprint("cpu" if settings.device in RUNTIMES else settings.device,
                       threads={"threads": settings.threads, "interop_threads": settings.interop_threads})


def _interleaved(names: Sequence[str], settings: ProfileSettings, store: ResultsStore, key: str,
                 metrics: Sequence[str], counters: Sequence[str], on_start, on_done) -> list[Record]:
    """Eager CPU latency of several models in ``settings.rounds`` interleaved rounds (rotating order), each
    round on a freshly built model.

    Counts are measured per model first; each model's records are stored together once its timing is
    complete, so a sweep killed mid-way keeps every model finished before and redoes the rest."""
    fp = _fingerprint(settings)
    prepared: dict[str, PreparedModel] = {}
    samples: dict[str, list[float]] = {n: [] for n in names}
    extras: dict[str, dict] = {}
    for r in range(settings.rounds):
        shift = r % len(names)
        for name in list(names[shift:]) + list(names[:shift]):
            if on_start:
                on_start(f"{name} (round {r + 1}/{settings.rounds})")
            prepared[name] = prepare(name, settings)  # a fresh build per round: placement is averaged over
            chunk, extras[name] = _time(prepared[name], settings)
            samples[name] += chunk
    new: list[Record] = []
    for name in names:
        counted = []
        if "params" in metrics or "flops" in metrics:
            counted = count_records(name, settings, fp, counters if "flops" in metrics else ())
            counted = [r for r in counted if r.metric != "macs" or "flops" in metrics]
        records = counted + _timed_records(name, settings, fp, samples[name],
                                           _eager_extra(prepared[name], settings, extras[name]))
        for r in records:
            r.settings_key = key
        new += store.append(records)
        if on_done:
            on_done(name, records)
    return new


def profile_sweep(names: Sequence[str], settings: ProfileSettings, store: ResultsStore,
                  metrics: Iterable[str] = METRICS, counters: Sequence[str] = COUNTERS,
                  on_start: Callable[[str], None] | None = None,
                  on_done: Callable[[str, list[Record]], None] | None = None,
                  on_skip: Callable[[str], None] | None = None) -> list[Record]:
    """Profile ``names`` in order, storing each model's records as soon as they exist; models already in
    ``store`` with identical settings are skipped, so an interrupted sweep resumes where it stopped.

    Eager CPU latency with ``settings.rounds > 1`` interleaves the pending models round by round
    (:func:`_interleaved`); everything else is measured one model at a time."""
    metrics, counters = tuple(validate_job(metrics, counters)), tuple(counters)
    settings.validate()
    for name in names:
        zoo.get_card(name)
    _check_device(settings)
    key = job_key(settings, metrics, counters)
    if "latency" in metrics and settings.device == "cpu" and settings.rounds > 1:
        finished = store.completed()
        pending = [n for n in names if (n, key) not in finished]
        for name in names:
            if name not in pending and on_skip:
                on_skip(name)
        return _interleaved(pending, settings, store, key, metrics, counters, on_start, on_done) if pending else []

    def measure(name: str) -> list[Record]:
        if on_start:
            on_start(name)
        records = profile_model(name, settings, metrics, counters)
        for r in records:
            r.settings_key = key
        if on_done:
            on_done(name, records)
        return records

    return run_sweep(names, measure, store, key=lambda n: (n, key),
                     on_skip=(lambda n: on_skip(n)) if on_skip else None)
