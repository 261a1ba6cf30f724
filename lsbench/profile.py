"""Profile models: params, FLOPs and latency under one recorded :class:`ProfileSettings`.

There is one timing path. :func:`profile_sweep` times the pending models in ``settings.rounds`` interleaved
rounds (the model order rotating each round; ``rounds=1`` is the same loop with one round), each round on a
fresh build (eager) or a fresh runtime session (an exported artifact), and stores every finished round at
once as a ``latency_round`` record. A model's result (counts, pooled latency and throughput) is stored as one
batch right after its last round. A sweep killed at any moment therefore loses at most the round in progress;
the rerun measures only the missing rounds, with identical settings, and pools them with the stored ones.

Nothing here prints, saves figures or plots; callbacks tell a caller what is happening.
"""
from __future__ import annotations

import contextlib
import math
import functools
import hashlib
import os
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

import zoo

from .counting import COUNTERS, check_counters, count_flops, param_counts
from .env import fingerprint, gpu_telemetry
from .energy import EnergyWindow
from .errors import LsbenchError
from .isolate import fault_point, in_isolated_child, run_child
from .memory import PEAK_METHODS, CudaPeak, RssPeak, cpu_peak_memory, weight_bytes
from .options import check_pin_cores, check_threads, require_device
from .resources import check_fits
from .results import Record, ResultsStore
from .settings import EAGER, RUNTIMES, ProfileSettings, torch_dtype
from .timing import MEDIAN_CI_METHOD, cpu_threads, median_half_width, stop_reason, summarize, time_cpu, time_cuda
from .training import OPTIMIZER_RECIPES, retry_on_oom, train_step
from .untimed import UntimedPool, auto_workers

__all__ = ["PreparedModel", "prepare", "time_prepared", "count_records", "profile_sweep", "job_key", "validate_job",
           "check_host", "check_memory", "preflight", "job_rounds", "sweep_child", "METRICS", "ROUND_METRIC"]

METRICS = ("params", "flops", "latency")
#: one finished timing round of one model (its samples in ``extra["samples_s"]``)
ROUND_METRIC = "latency_round"
#: this process: rounds pooled from several runs (a resumed sweep) say so
RUN_ID = uuid.uuid4().hex[:12]
_WEIGHTS = "random init (seed 0)"


@dataclass
class PreparedModel:
    """A model in the exact form that is timed, with its input and a description of how it was made."""

    name: str
    model: Callable[[Tensor], Tensor]
    example: Tensor
    resolution: int
    form: dict
    weight_bytes: int = 0  # of the module before tracing or compiling
    #: the timed call: ``model(example)`` in infer mode, one training step (lsbench.training) in train mode
    step: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        if self.step is None:
            self.step = functools.partial(self.model, self.example)


def _resolution(name: str, settings: ProfileSettings) -> int:
    return settings.resolution or zoo.get_card(name).input_size


def check_host(settings: ProfileSettings) -> None:
    """Refuse, before any work, what this machine cannot honour: a missing CUDA device, more threads than
    usable cores, pinning to cores the process may not use."""
    require_device(settings.device)
    if settings.device == "cpu":
        check_threads(settings.threads)
        check_threads(settings.interop_threads, "interop_threads")
        check_pin_cores(settings.pin_cores)


@functools.lru_cache(maxsize=256)
def check_memory(name: str, settings: ProfileSettings) -> None:
    """Refuse, before anything is allocated, a model whose input, activations and weights at this batch
    and resolution cannot fit the device (a lower bound from one meta-device forward). A model that fits is
    remembered for the process: the CLI's preflight and the sweep's own check then build it on the meta
    device once (a refusal raises, and is never remembered)."""
    with torch.device("meta"):
        model = zoo.create_model(name, **({"features_only": True} if settings.features_only else {})).eval()
    res = _resolution(name, settings)
    try:
        check_fits(model, (settings.batch, 3, res, res), settings.device, dtype=settings.dtype)
    except LsbenchError as exc:
        raise LsbenchError(f"{name} at batch {settings.batch}, {res}x{res} px: {exc}") from None


def preflight(names: Sequence[str], settings: ProfileSettings, metrics: Iterable[str] = METRICS) -> None:
    """Everything that can be refused before a sweep starts: unknown names, what this host cannot honour,
    and (when latency is measured) models that cannot fit the device at this batch and resolution."""
    settings.validate()
    for name in names:
        zoo.get_card(name)
    check_host(settings)
    if "latency" in metrics:
        for name in names:
            check_memory(name, settings)


def _build(name: str, checkpoint: str | None, fused: bool, features_only: bool = False) -> nn.Module:
    torch.manual_seed(0)  # random weights are the papers' speed protocol; seeded for repeatability
    kwargs = {"features_only": True} if features_only else {}
    model = zoo.create_model(name, checkpoint=checkpoint, **kwargs).eval()
    return zoo.reparameterize(model, inplace=True) if fused else model


def prepare(name: str, settings: ProfileSettings, checkpoint: str | None = None,
            model: nn.Module | None = None) -> PreparedModel:
    """Build ``name`` and turn it into the eager form ``settings`` describe (fused, dtype, layout, compiled);
    in train mode the unfused model in train mode with its optimizer, stepped by ``step``. ``model``: one
    already built (e.g. at another input size, by ``lsbench scale``), formed the same way.
    ``settings`` must be valid (:meth:`ProfileSettings.validate`)."""
    device = torch.device(settings.device)
    res = _resolution(name, settings)
    if model is None:
        model = _build(name, checkpoint, settings.fused, settings.features_only)
    elif settings.fused:
        model = zoo.reparameterize(model.eval(), inplace=True)
    model = model.to(device)
    x = torch.randn(settings.batch, 3, res, res, device=device)
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    x = x.contiguous(memory_format=memory_format)
    if settings.dtype != "fp32" and not settings.amp:
        model, x = model.to(torch_dtype(settings.dtype)), x.to(torch_dtype(settings.dtype))
    runner: Callable[[Tensor], Tensor] = model
    if settings.jit_trace:
        with torch.no_grad(), _autocast(settings):
            runner = torch.jit.trace(model, x, check_trace=False)
    elif settings.compile:
        runner = torch.compile(model)
    ska_kernel = "triton" if settings.device == "cuda" and zoo.ska.use_triton() else "pytorch"
    form = {"ska_kernel": ska_kernel, "fused": settings.fused, "dtype": settings.dtype, "amp": settings.amp,
            "channels_last": settings.channels_last, "jit_trace": settings.jit_trace,
            "compile": settings.compile, "features_only": settings.features_only,
            "weights": checkpoint or _WEIGHTS}
    if settings.mode != "train":
        return PreparedModel(name, runner, x, res, form, weight_bytes(model))
    amp_dtype = torch_dtype(settings.dtype) if settings.amp else None
    step = train_step(model, x, settings.optimizer, amp_dtype=amp_dtype)
    if runner is not model:  # compiled: the step runs the compiled module on the same parameters
        step.model = runner
    form.update(mode="train", optimizer=OPTIMIZER_RECIPES[settings.optimizer],
                loss="cross-entropy on fixed random labels (seed 0)", grad_scaler=step.scaler is not None)
    return PreparedModel(name, runner, x, res, form, weight_bytes(model), step=step)


def _autocast(settings: ProfileSettings):
    if not settings.amp:
        return contextlib.nullcontext()
    return torch.autocast(device_type=settings.device, dtype=torch_dtype(settings.dtype))


def _step_mode(settings: ProfileSettings):
    """Inference runs under inference_mode and autocast; a training step needs autograd and autocasts its
    forward itself (backward outside autocast, as PyTorch's AMP recipe does)."""
    if settings.mode == "train":
        return torch.enable_grad()
    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(_autocast(settings))
    return stack


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


def _record(name: str, metric: str, value: float, unit: str, settings: ProfileSettings, fp: dict, key: str,
            **kw) -> Record:
    return Record(model=name, metric=metric, value=value, unit=unit, settings=settings, fingerprint=fp,
                  job_key=key, **kw)


def count_records(name: str, settings: ProfileSettings, fp: dict, counters: Sequence[str] = COUNTERS,
                  checkpoint: str | None = None, key: str = "") -> list[Record]:
    """Params (as built and BN-fused) and, when ``counters`` are given, the FLOPs of the fused model at
    batch 1 from every counter."""
    res = _resolution(name, settings)
    model = _build(name, checkpoint, fused=False, features_only=settings.features_only)
    counts = param_counts(model)
    records = [
        _record(name, "params", counts["total"], "count", settings, fp, key, extra={"form": "as built"}),
        _record(name, "params_fused", counts["fused"], "count", settings, fp, key,
                extra={"form": "reparameterized", "method": zoo.registry.REPARAM_METHOD}),
    ]
    if counters:
        for count in count_flops(model, (1, 3, res, res), counters, fused=True):
            records.append(_record(name, "macs", count.gmacs, "GMac", settings, fp, key, counter=count.counter,
                                   extra={"convention": count.convention, "resolution": res, "batch": 1,
                                          "form": "reparameterized", "unsupported": count.unsupported,
                                          "raw": count.raw, "raw_unit": count.unit}))
    return records


# ----------------------------------------------------------------------------------------- timers
# A timer is opened once per model and sweep; each call times one round and returns (samples_s, extra).

Timer = Callable[[], "tuple[list[float], dict]"]


def _windows(settings: ProfileSettings) -> dict:
    return dict(warmup=settings.warmup, repeats=settings.repeats, warmup_s=settings.warmup_s,
                measure_s=settings.measure_s)


def time_prepared(prepared: PreparedModel, settings: ProfileSettings) -> tuple[list[float], dict]:
    """Per-call seconds of one round, with the round's memory (and, on CUDA, energy) in the extras.
    A call is one inference forward or, in train mode, one training step (``prepared.step``)."""
    x = prepared.example
    step = prepared.step
    windows = _windows(settings)
    if settings.device == "cuda":
        index = x.device.index if x.device.index is not None else torch.cuda.current_device()
        with _cuda_flags(settings), _step_mode(settings):
            try:
                # warm up first, so that the peak and the energy cover the timed window only
                time_cuda(step, sync_each=settings.sync_each, warmup=windows["warmup"],
                          warmup_s=windows["warmup_s"], repeats=1)
                with CudaPeak(x.device) as peak, EnergyWindow(index) as energy:
                    samples = time_cuda(step, sync_each=settings.sync_each, warmup=0, warmup_s=None,
                                        repeats=windows["repeats"], measure_s=windows["measure_s"])
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if settings.mode == "train":
                    raise  # the eager timer decays the batch and retries (timm's benchmark.py behaviour)
                raise LsbenchError(f"{prepared.name}: CUDA out of memory at batch {settings.batch}; "
                                   f"lower --batch") from None
        memory = {"peak_bytes": peak.growth, "peak_abs_bytes": peak.peak, "method": PEAK_METHODS["cuda"],
                  "weight_bytes": prepared.weight_bytes}
        return samples, {"memory": memory, "energy": energy.as_dict(len(samples) * settings.batch)}
    with cpu_threads(settings.threads, settings.interop_threads, settings.pin_cores) as effective:
        with _step_mode(settings):
            with RssPeak() as rss:
                samples = time_cpu(step, **windows)
            peak = cpu_peak_memory(step)  # one untimed call: the profiler stays out of the timing
    memory = {"peak_bytes": peak, "method": PEAK_METHODS["cpu"], "rss_growth_bytes": rss.growth,
              "weight_bytes": prepared.weight_bytes}
    return samples, {"threads_effective": effective, "memory": memory}


@contextlib.contextmanager
def _eager_timer(name: str, settings: ProfileSettings, checkpoint: str | None) -> Iterator[Timer]:
    """Each round re-builds the model: its memory placement (seen to move one model's median by up to 10 %
    between builds in one process) is averaged over instead of drawn once per run."""

    working = {"batch": settings.batch}  # train mode on CUDA: the batch that last fitted

    def measure(batch: int) -> tuple[list[float], dict]:
        at = settings if batch == settings.batch else settings.replace(batch=batch)
        prepared = prepare(name, at, checkpoint)
        samples, extra = time_prepared(prepared, at)
        extra.update(form=prepared.form, resolution=prepared.resolution)
        if settings.mode == "train":
            extra.update(batch=batch, train_steps=prepared.step.steps)
        return samples, extra

    def one_round() -> tuple[list[float], dict]:
        before = gpu_telemetry() if settings.device == "cuda" else None
        if settings.mode == "train" and settings.device == "cuda":
            (samples, extra), failed = retry_on_oom(measure, working["batch"], cleanup=torch.cuda.empty_cache,
                                                   label=name)
            working["batch"] = extra["batch"]
            extra.update(batch_requested=settings.batch, oom_batches=failed)
        else:
            samples, extra = measure(settings.batch)
        if settings.device == "cuda":
            extra.update(gpu_before=before, gpu_after=gpu_telemetry())
        return samples, extra

    yield one_round



def export_for_timing(name: str, settings: ProfileSettings, checkpoint: str | None, out_dir: str):
    """The deploy form of ``name`` exported for ``settings.runtime`` into ``out_dir`` at the timed input size,
    checked against eager (:func:`lsbench.export.export_model`): untimed work a sweep does up front."""
    from .export import export_model

    res = _resolution(name, settings)
    size = (settings.batch, 3, res, res)
    return export_model(_build(name, checkpoint, True, settings.features_only), name, RUNTIMES[settings.runtime],
                        out_dir, input_size=size, check=True)


@contextlib.contextmanager
def _runtime_timer(name: str, settings: ProfileSettings, checkpoint: str | None, exported) -> Iterator[Timer]:
    """Time the exported deploy form (``exported``, from :func:`export_for_timing`; None: export it here, for as
    long as the timer is open) in a fresh runtime session per round, as eager rebuilds the model."""
    from .mobile import time_artifact

    if exported is None:
        with tempfile.TemporaryDirectory(prefix="lsbench-export-") as folder:
            with _runtime_timer(name, settings, checkpoint, export_for_timing(name, settings, checkpoint, folder)) as t:
                yield t
        return
    res = _resolution(name, settings)
    size = (settings.batch, 3, res, res)
    export = {k: v for k, v in exported.as_dict().items() if k != "path"}
    form = {"fused": True, "dtype": "fp32", "exported": RUNTIMES[settings.runtime],
            "weights": checkpoint or _WEIGHTS}

    def one_round() -> tuple[list[float], dict]:
        samples, info = time_artifact(exported.path, size, threads=settings.threads, **_windows(settings))
        return samples, {"runtime": info, "export": export, "form": form, "resolution": res}

    yield one_round


def _open_timer(name: str, settings: ProfileSettings, checkpoint: str | None, exported=None):
    if settings.runtime == EAGER:
        return _eager_timer(name, settings, checkpoint)
    return _runtime_timer(name, settings, checkpoint, exported)


def _memory_and_energy(rounds: Sequence[Record]) -> list[tuple[str, float, str, dict]]:
    """(metric, value, unit, extra) of the peak memory (the largest round's), the weight bytes and, where
    NVML gives an energy counter, the energy per image over every round's timed window."""
    memories = [r.extra["memory"] for r in rounds if isinstance(r.extra.get("memory"), dict)]
    out = []
    peaks = [m["peak_bytes"] for m in memories if isinstance(m.get("peak_bytes"), (int, float))]
    if peaks:
        out.append(("peak_memory", max(peaks), "B", {"method": memories[0]["method"], "rounds": len(peaks),
                                                     "per_round": peaks}))
    if memories and memories[0].get("weight_bytes"):
        out.append(("weight_bytes", memories[0]["weight_bytes"], "B", {}))
    energies = [r.extra["energy"] for r in rounds if isinstance(r.extra.get("energy"), dict)]
    joules = [e.get("energy_j") for e in energies]
    images = [e.get("images") for e in energies]
    if energies and all(isinstance(j, (int, float)) for j in joules) and all(images):
        out.append(("energy_per_image", sum(joules) / sum(images), "J/img",
                    {"energy_j": sum(joules), "images": sum(images), "windows": energies}))
    return out


def _finite_or_none(value: float) -> float | None:
    """None for an unbounded CI (too few samples for one): records hold JSON numbers only."""
    return value if math.isfinite(value) else None


def _stopped(settings: ProfileSettings, rounds: dict[int, Record]) -> str | None:
    """Why this model's rounds are over (:func:`lsbench.timing.stop_reason`), or None for another round."""
    return stop_reason([rounds[r].extra["samples_s"] for r in sorted(rounds)], precision=settings.precision,
                       min_rounds=settings.min_rounds, max_rounds=settings.rounds, max_s=settings.max_s)


def _pooled_records(name: str, settings: ProfileSettings, fp: dict, key: str, rounds: dict[int, Record]
                    ) -> list[Record]:
    """Latency (ms, median + statistics) and throughput (img/s) over every round's samples.

    A train-mode round on CUDA may have run at a batch decayed after an out-of-memory error (its
    ``extra["batch"]``); the result then pools the rounds at the smallest such batch, the one that fitted."""
    ordered = [rounds[r] for r in sorted(rounds)]
    batches = {r.extra.get("batch", settings.batch) for r in ordered}
    batch = min(batches)
    dropped = [r.extra["round"] for r in ordered if r.extra.get("batch", settings.batch) != batch]
    ordered = [r for r in ordered if r.extra.get("batch", settings.batch) == batch]
    samples = [s for r in ordered for s in r.extra["samples_s"]]
    last = {k: v for k, v in ordered[-1].extra.items()
            if k not in ("samples_s", "round", "run_id", "memory", "energy", "train_steps")}
    runs = sorted({r.extra.get("run_id") for r in ordered if r.extra.get("run_id")})
    extra = {**last, "batch": batch, "rounds": len(ordered), "round_medians_ms": [r.value for r in ordered],
             "runs": len(runs), "resumed": len(runs) > 1, "stop": _stopped(settings, rounds),
             "precision_reached": _finite_or_none(median_half_width(samples)), "precision_target": settings.precision,
             "precision_ci": MEDIAN_CI_METHOD}
    if dropped:
        extra["rounds_at_larger_batch"] = dropped
    if "gpu_before" in ordered[0].extra:
        extra["gpu_before"] = ordered[0].extra["gpu_before"]
    latency = summarize(samples).scaled(1e3)
    per_image = summarize([batch / s for s in samples])
    mean_s = sum(samples) / len(samples)
    records = [_record(name, metric, value, unit, settings, fp, key, extra=info)
               for metric, value, unit, info in _memory_and_energy(ordered)]
    return records + [
        _record(name, "latency", latency.median, "ms", settings, fp, key, stats=latency, extra=extra),
        # the papers' throughput: batch / mean iteration time; stats are of per-iteration img/s
        _record(name, "throughput", batch / mean_s, "img/s", settings, fp, key, stats=per_image,
                extra=extra),
    ]


# ----------------------------------------------------------------------------------------- jobs

def validate_job(metrics: Iterable[str], counters: Sequence[str]) -> tuple[list[str], list[str]]:
    """Check metric and counter names before any work starts; returns (metrics, counters), the counters
    empty when no FLOPs are asked for."""
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise LsbenchError(f"unknown metric {unknown[0]!r}; valid metrics: {', '.join(METRICS)}" if unknown
                           else f"no metric given; valid metrics: {', '.join(METRICS)}")
    return metrics, (check_counters(counters) if "flops" in metrics else [])


def job_key(settings: ProfileSettings, metrics: Sequence[str], counters: Sequence[str]) -> str:
    """Resume key of one profile job: the settings' key plus what is measured."""
    blob = f"{settings.key()}|{','.join(sorted(metrics))}|{','.join(sorted(counters))}"
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _fingerprint(settings: ProfileSettings) -> dict:
    return fingerprint(settings.device, threads={"threads": settings.threads,
                                                 "interop_threads": settings.interop_threads})


def _stored_rounds(store: ResultsStore, names: Sequence[str], key: str) -> dict[str, dict[int, Record]]:
    """The rounds already stored for each pending model of this job (the first record of a round wins)."""
    return job_rounds(store.records(), names, key)


def job_rounds(records: Iterable[Record], names: Sequence[str], key: str) -> dict[str, dict[int, Record]]:
    """model -> round index -> the ``latency_round`` record of job ``key`` (the first of a round wins)."""
    rounds: dict[str, dict[int, Record]] = {n: {} for n in names}
    for r in records:
        if r.metric == ROUND_METRIC and r.job_key == key and r.model in rounds:
            index = r.extra.get("round")
            if isinstance(index, int) and isinstance(r.extra.get("samples_s"), list):
                rounds[r.model].setdefault(index, r)
    return rounds


def profile_sweep(names: Sequence[str], settings: ProfileSettings, store: ResultsStore,
                  metrics: Iterable[str] = METRICS, counters: Sequence[str] = COUNTERS,
                  checkpoint: str | None = None, *,
                  isolate: bool = False,
                  workers: int = 1,
                  only_round: int | None = None,
                  run_id: str | None = None,
                  on_start: Callable[[str], None] | None = None,
                  on_done: Callable[[str, list[Record]], None] | None = None,
                  on_skip: Callable[[str], None] | None = None,
                  on_fail: Callable[[str, str], None] | None = None) -> list[Record]:
    """Profile ``names`` into ``store``; models whose result is stored with this job's key are skipped, and a
    model with some rounds stored is timed only for the missing ones. Returns the records written.

    ``isolate``: each round of each model (a model's counts, when nothing is timed) runs in a fresh child
    process (:mod:`lsbench.isolate`) that runs this same function for that one unit of work against the same
    store, so the records and the resume are those of an in-process run. A child that fails or is killed is
    reported in one line through ``on_fail(model, line)``, the rest of its model is left for a rerun and
    the other models go on; without ``on_fail`` the sweep ends with an LsbenchError naming them.
    ``only_round``: time only this round (0-based), the unit of work of a child. ``run_id``: the run the
    rounds are stored under (a child stores under its parent's).

    ``workers``: the untimed work (counts; exports for a runtime) of every pending model is done first, before
    any round, in this many fresh processes (:mod:`lsbench.untimed`; 0 = one per core, 1 = in this process);
    its results are used where the sweep needs them, so the records and their order are the same.

    ``on_start(label)`` before each step, ``on_done(model, records)`` when a model's result is stored,
    ``on_skip(model)`` for a model already done."""
    metrics, counters = validate_job(metrics, counters)
    settings.validate()
    for name in names:
        zoo.get_card(name)  # fail fast on unknown names
    check_host(settings)
    key = job_key(settings, metrics, counters)
    fp = _fingerprint(settings)
    run = run_id or RUN_ID
    finished = store.completed()
    pending = []
    for name in names:
        if (name, key) in finished:
            if on_skip:
                on_skip(name)
        else:
            pending.append(name)
    if not pending:
        return []
    timed = "latency" in metrics
    preflight(pending, settings, metrics)
    rounds = _stored_rounds(store, pending, key) if timed else {n: {} for n in pending}
    new: list[Record] = []
    failures: dict[str, str] = {}  # model -> the line that reported its failed child

    counted = "params" in metrics or "flops" in metrics
    stack = contextlib.ExitStack()
    untimed = None if isolate else _untimed_work(  # an isolated child does its model's untimed work itself
        pending, settings, fp, key, counters if counted else None, checkpoint,
        [n for n in pending if timed and not _stopped(settings, rounds[n])], workers, stack, on_start)

    def from_pool(task: tuple[str, str], work: Callable[[], Any]) -> Any:
        """The pool's result of ``task`` when the pool did that work, else ``work()`` here and now."""
        return untimed.result(task) if untimed is not None and task in untimed else work()

    def finish(name: str) -> None:
        records: list[Record] = []
        if counted:
            if on_start:
                on_start(f"{name} (counting)" if timed else name)
            records += from_pool(("count", name),
                                 lambda: count_records(name, settings, fp, counters, checkpoint, key))
        if timed:
            records += _pooled_records(name, settings, fp, key, rounds[name])
        new.extend(store.append(records))
        if on_done:
            on_done(name, records)

    def in_child(name: str, r: int | None) -> None:
        """One unit of work of ``name`` in a fresh process; what it stored is read back from the store."""
        seen = {x.batch_id for x in store.records()}
        outcome = run_child("lsbench.profile:sweep_child", {
            "names": [name], "settings": settings.as_dict(), "store": str(store.directory), "metrics": metrics,
            "counters": counters, "checkpoint": checkpoint, "only_round": r, "run_id": run})
        after = store.records()
        stored = [x for x in after if x.batch_id not in seen and x.model == name and x.job_key == key]
        new.extend(stored)
        if timed:
            rounds[name] = job_rounds(after, [name], key)[name]
        if not outcome.ok:
            where = f" in round {r + 1}/{settings.rounds}" if r is not None else ""
            line = (f"{name}: its isolated process {outcome.message}{where}; its unfinished work is not stored, "
                    f"the other models go on (rerun to redo it)")
            failures[name] = line
            if on_fail:
                on_fail(name, line)
            return
        results = [x for x in stored if not x.partial]
        if results and on_done:
            on_done(name, results)

    def done_or_failed() -> list[Record]:
        if failures and on_fail is None:
            raise LsbenchError(f"isolated processes failed for {', '.join(failures)}; the other models are "
                               f"stored in {store.path}; rerun to redo them")
        return new

    if not timed:
        with stack:
            for name in pending:
                in_child(name, None) if isolate else finish(name)
        return done_or_failed()
    with stack:
        if untimed is not None:
            untimed.wait()  # all of it done before the first timed call: nothing runs beside a measurement
        timers: dict[str, Timer] = {}
        for name in pending:  # a model whose rounds were all stored before it was pooled
            if _stopped(settings, rounds[name]):
                finish(name)
        for r in range(settings.rounds):
            if only_round is not None and r != only_round:
                continue
            shift = r % len(pending)
            for name in pending[shift:] + pending[:shift]:
                if r in rounds[name] or _stopped(settings, rounds[name]) or name in failures:
                    continue
                if on_start:
                    on_start(f"{name} (round {r + 1}/{settings.rounds})")
                if isolate:
                    in_child(name, r)
                    continue
                if name not in timers:
                    exported = from_pool(("export", name), lambda: None)  # None: the timer exports it itself
                    timers[name] = stack.enter_context(_open_timer(name, settings, checkpoint, exported))
                samples, extra = timers[name]()
                fault_point(name, r)
                median_ms = float(statistics.median(samples)) * 1e3
                done = _record(name, ROUND_METRIC, median_ms, "ms", settings, fp, key, partial=True,
                               extra={**extra, "round": r, "run_id": run, "pid": os.getpid(),
                                      "isolated": in_isolated_child(), "samples_s": samples})
                new.extend(store.append([done]))
                rounds[name][r] = done
                if _stopped(settings, rounds[name]):
                    finish(name)
    return done_or_failed()


def _untimed_work(names: Sequence[str], settings: ProfileSettings, fp: dict, key: str,
                  counters: Sequence[str] | None, checkpoint: str | None, to_time: Sequence[str], workers: int,
                  stack: contextlib.ExitStack, on_start: Callable[[str], None] | None) -> UntimedPool | None:
    """The running pool (:class:`lsbench.untimed.UntimedPool`) of the counts of ``names`` (when ``counters`` is
    not None; keys ``("count", model)``) and, for a runtime, the exports of ``to_time`` (``("export", model)``,
    into a folder that lives as long as ``stack``); None when one process is to do the work."""
    exports = to_time if settings.runtime != EAGER else []
    n = auto_workers(workers, len(names) * (counters is not None) + len(exports))
    if n == 1:
        return None
    tasks: dict = {}
    if counters is not None:
        tasks.update({("count", m): (count_records, (m, settings, fp, counters, checkpoint, key)) for m in names})
    if exports:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="lsbench-export-"))
        tasks.update({("export", m): (export_for_timing, (m, settings, checkpoint, folder)) for m in exports})
    if on_start:
        what = " and ".join(w for w, on in (("counts", counters is not None), ("exports", bool(exports))) if on)
        on_start(f"{what} of {len(names)} model(s), untimed, in {n} processes")
    return stack.enter_context(UntimedPool(tasks, n))


def sweep_child(payload: dict) -> None:
    """Entry point of an isolated child (:func:`lsbench.isolate.run_child`): :func:`profile_sweep` for one
    model's unit of work, into the parent's store. A user-facing error is one ``error:`` line and exit 2."""
    try:
        profile_sweep(payload["names"], ProfileSettings.from_dict(payload["settings"]), ResultsStore(payload["store"]),
                      payload["metrics"], payload["counters"], payload["checkpoint"],
                      only_round=payload["only_round"], run_id=payload["run_id"])
    except zoo.errors.ZooError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        sys.exit(2)
