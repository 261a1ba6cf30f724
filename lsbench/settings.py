"""How a measurement is taken: one frozen value that is recorded with every result.

Every knob that changes a latency or throughput number lives here, so that two numbers are
only compared when their settings match, and so that a resumed sweep can recognise work it
already did by the settings' hash (`ProfileSettings.key()`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from lsbench.errors import LsbenchError

DEVICES = ("cpu", "cuda")
#: PyTorch itself runs the model
EAGER = "eager"
# On-host mobile runtimes run on the CPU: the model is exported, checked against eager, then timed there.
# Each runtime's artifact format (lsbench.runtimes owns the formats' files and sessions).
RUNTIMES = {"onnxruntime": "onnx", "executorch": "pte", "litert": "tflite"}
DTYPES = ("fp32", "fp16", "bf16")


def torch_dtype(name: str):
    """The torch dtype of a settings dtype name ("fp32", "fp16", "bf16"); a one-line error for any other."""
    import torch

    if name not in DTYPES:
        raise LsbenchError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}[name])
MIN_RESOLUTION = 32

# Fields that label a settings value without changing what is measured: left out of key().
_LABEL_FIELDS = frozenset({"preset"})
# --- training mode (issue 13) ---------------------------------------------------------------------------
#: what one timed step does: an inference forward, or a training step (forward, loss, backward, optimizer step)
MODES = ("infer", "train")
OPTIMIZERS = ("sgd", "adamw")
# Fields added after records were stored: left out of key() while at these defaults, so every key
# (and every resume key) of the settings that existed before stays what it was.
_KEY_DEFAULTS = {"mode": "infer", "optimizer": None, "precision": None, "min_rounds": 3, "max_s": None}


@dataclass(frozen=True)
class ProfileSettings:
    """The full recipe of one timing run; `validate()` before use, `key()` to deduplicate.

    Count and time windows combine: the warm-up runs at least `warmup` iterations and, when
    `warmup_s` is set, until `warmup_s` seconds have passed; the timed phase runs at least
    `repeats` iterations and, when `measure_s` is set, until the timed iterations add up to
    `measure_s` seconds (the RepViT/LSNet stopping rule).
    """

    device: str = "cpu"  # where the model runs: cpu | cuda
    runtime: str = EAGER  # what runs it: eager (PyTorch) or an on-host runtime (onnxruntime, executorch, litert)
    batch: int = 1
    resolution: int | None = None  # None: the model's native input size
    dtype: str = "fp32"
    amp: bool = False  # True: autocast to `dtype`; False: cast the model and input to `dtype`
    channels_last: bool = False
    compile: bool = False  # torch.compile
    jit_trace: bool = False  # torch.jit.trace
    cudnn_benchmark: bool = False
    # TF32 on Ampere+: None leaves PyTorch's defaults (cuDNN convolutions in TF32, matmuls in
    # full fp32), which is what the paper scripts ran with; True enables TF32 for both; False
    # disables it for both (strict IEEE fp32).
    tf32: bool | None = None
    fused: bool = True  # reparameterize (fuse BN / branches) before timing
    features_only: bool = False  # the backbone of dense tasks: timm's features_only model (the stage maps)
    threads: int = 1  # CPU intra-op threads
    interop_threads: int = 1
    pin_cores: tuple[int, ...] | None = None
    warmup: int = 20
    warmup_s: float | None = None
    repeats: int = 100
    measure_s: float | None = None
    sync_each: bool = True  # CUDA: synchronize after every iteration (the papers' protocol)
    # Eager CPU: the models of one sweep are timed in `rounds` interleaved rounds (each round: `warmup`
    # then `repeats` calls per model, the model order rotating), so a slow episode of a shared machine
    # is spread over every model and over a fraction of each model's samples instead of one whole run.
    # Each round re-builds the model: its memory placement (seen here to move one model's median by up
    # to 10 % between builds in one process) is then averaged over instead of drawn once per run.
    rounds: int = 1
    mode: str = "infer"  # infer | train (a full training step of the unfused model, see lsbench.training)
    optimizer: str | None = None  # train mode: sgd | adamw (None: sgd); None in infer mode
    # Adaptive stopping (lsbench.timing.stop_reason): with `precision` set, each model runs at least
    # `min_rounds` rounds, then stops once the 95 % CI half-width of its pooled median is at most `precision`
    # (relative: 0.01 = ±1 %), or at a cap: `rounds` rounds, or `max_s` timed seconds. Its records say which.
    # None: exactly `rounds` rounds.
    precision: float | None = None
    min_rounds: int = 3
    max_s: float | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        # Normalise types so that equal settings always serialise (and hash) identically:
        # a list of cores from JSON or 5 vs 5.0 seconds must not produce a different key.
        if self.pin_cores is not None:
            object.__setattr__(self, "pin_cores", tuple(sorted({int(c) for c in self.pin_cores})))
        for name in ("warmup_s", "measure_s", "precision", "max_s"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))
        if self.mode == "train" and self.optimizer is None:
            object.__setattr__(self, "optimizer", "sgd")

    def validate(self) -> "ProfileSettings":
        """Raise LsbenchError for a setting a run cannot honour; returns self for chaining."""
        if self.device not in DEVICES:
            hint = f" (on-host runtimes are --runtime {self.device})" if self.device in RUNTIMES else ""
            raise LsbenchError(f"unknown device {self.device!r}; expected one of {', '.join(DEVICES)}{hint}")
        if self.runtime != EAGER and self.runtime not in RUNTIMES:
            raise LsbenchError(f"unknown runtime {self.runtime!r}; expected one of {EAGER}, {', '.join(RUNTIMES)}")
        if self.runtime != EAGER and self.device != "cpu":
            raise LsbenchError(f"runtime {self.runtime} runs on the host CPU, not {self.device}")
        if self.runtime != EAGER and (self.dtype != "fp32" or self.amp or self.compile or self.jit_trace):
            raise LsbenchError(f"runtime {self.runtime} runs the exported fp32 model; drop --dtype/--amp/--compile")
        if self.dtype not in DTYPES:
            raise LsbenchError(f"unknown dtype {self.dtype!r}; expected one of {', '.join(DTYPES)}")
        if self.batch < 1:
            raise LsbenchError(f"batch must be at least 1, got {self.batch}")
        if self.resolution is not None and self.resolution < MIN_RESOLUTION:
            raise LsbenchError(f"resolution must be at least {MIN_RESOLUTION}, got {self.resolution}")
        if self.threads < 1:
            raise LsbenchError(f"threads must be at least 1, got {self.threads}")
        if self.interop_threads < 1:
            raise LsbenchError(f"interop_threads must be at least 1, got {self.interop_threads}")
        if self.rounds < 1:
            raise LsbenchError(f"rounds must be at least 1, got {self.rounds}")
        if self.repeats < 1:
            raise LsbenchError(f"repeats must be at least 1, got {self.repeats}")
        if self.precision is not None and not 0.0 < self.precision < 1.0:  # NaN fails too
            raise LsbenchError(f"precision must be between 0 and 1 (0.01 = ±1 %), got {self.precision}")
        if self.min_rounds < 1:
            raise LsbenchError(f"min_rounds must be at least 1, got {self.min_rounds}")
        if self.max_s is not None and not self.max_s > 0:
            raise LsbenchError(f"max_s must be positive, got {self.max_s}")
        if self.warmup < 0:
            raise LsbenchError(f"warmup must not be negative, got {self.warmup}")
        if self.warmup_s is not None and self.warmup_s < 0:
            raise LsbenchError(f"warmup_s must not be negative, got {self.warmup_s}")
        if self.measure_s is not None and self.measure_s <= 0:
            raise LsbenchError(f"measure_s must be positive, got {self.measure_s}")
        if self.pin_cores is not None and (not self.pin_cores or min(self.pin_cores) < 0):
            raise LsbenchError(f"pin_cores must be a non-empty list of core ids >= 0, got {list(self.pin_cores)}")
        if self.amp and self.dtype == "fp32":
            raise LsbenchError("amp needs dtype fp16 or bf16 (autocast to fp32 does nothing)")
        if self.tf32 not in (None, True, False):
            raise LsbenchError(f"tf32 must be true, false or unset, got {self.tf32!r}")
        if self.compile and self.jit_trace:
            raise LsbenchError("choose one of compile and jit_trace, not both")
        if self.mode not in MODES:
            raise LsbenchError(f"unknown mode {self.mode!r}; expected one of {', '.join(MODES)}")
        if self.mode == "infer" and self.optimizer is not None:
            raise LsbenchError("an optimizer needs mode train")
        if self.mode == "train":
            if self.optimizer not in OPTIMIZERS:
                raise LsbenchError(f"unknown optimizer {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
            if self.fused:
                raise LsbenchError("train mode times the unfused (trainable) model; drop --fused")
            if self.runtime != EAGER or self.jit_trace or self.features_only:
                raise LsbenchError("train mode trains the eager classifier; drop --runtime/--jit-trace/--features-only")
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (pin_cores as a list)."""
        data = dataclasses.asdict(self)
        if data["pin_cores"] is not None:
            data["pin_cores"] = list(data["pin_cores"])
        return data

    def key(self) -> str:
        """Stable 12-hex-digit hash of what is measured, used to skip finished work on resume.

        sha1 of the sorted JSON of all fields except the preset label: the same recipe reached
        through a preset or through explicit options is the same measurement.
        """
        data = {k: v for k, v in self.as_dict().items()
                if k not in _LABEL_FIELDS and not (k in _KEY_DEFAULTS and v == _KEY_DEFAULTS[k])}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:12]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProfileSettings":
        """Rebuild settings from `as_dict()` output (e.g. read back from a results file)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LsbenchError(f"unknown settings field(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ProfileSettings":
        """A copy with some fields changed; unknown field names raise LsbenchError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise LsbenchError(
                f"unknown settings field(s): {', '.join(unknown)}; valid fields: {', '.join(sorted(names))}"
            )
        return dataclasses.replace(self, **changes)


# Where the preset facts come from (kept here so the numbers can be re-checked):
# - lsnet: LSNet reports GPU throughput with RepViT's speed_gpu.py (THU-MIG/RepViT): timm model
#   with BatchNorm fused (utils.replace_batchnorm), fp32, NCHW, no autocast, no torch.compile,
#   cudnn.benchmark and TF32 untouched (PyTorch defaults: cuDNN TF32 on, matmul TF32 off),
#   batch 2048 at 224; 5 s warm-up (T0), then iterations with torch.cuda.synchronize() after
#   each until the iteration times add up to >= 10 s (T1); img/s = batch / mean iteration
#   time. The script times with time.time(); we use CUDA events. warmup=0 reproduces its
#   purely time-based warm-up; repeats=10 is only a floor for the statistics.
# - efficientvit: EfficientViT (MIT Han lab) measures fused models under torch.jit.trace with
#   fp16 autocast, batch 2048, 10 s warm-up and 60 s measured.
# - timm: timm's benchmark.py defaults: batch 256, 10 warm-up + 40 timed steps, synchronizing
#   after each step; it sets torch.backends.cudnn.benchmark = True globally. TF32 is on here:
#   the benchmark.py versions read do not set it themselves, so convolutions ran in TF32 by
#   PyTorch's default; tf32=True also enables it for matmuls. timm does not reparameterize.
PRESETS: dict[str, ProfileSettings] = {
    # Adaptive: rounds of 10 warm-up + 30 timed calls, at least 3, until the pooled median is known to ±1 %,
    # at most 8 (240 samples: the fixed 5 x 60 protocol it replaces took 300; benchmarks/paper_time.py).
    "cpu": ProfileSettings(
        device="cpu", batch=1, dtype="fp32", threads=1, interop_threads=1,
        warmup=10, repeats=30, rounds=8, precision=0.01, min_rounds=3, fused=True, preset="cpu",
    ),
    "lsnet": ProfileSettings(
        device="cuda", batch=2048, dtype="fp32", amp=False, channels_last=False, compile=False,
        cudnn_benchmark=False, fused=True, warmup=0, warmup_s=5.0, repeats=10, measure_s=10.0,
        sync_each=True, preset="lsnet",
    ),
    # The H200 anchors' protocol (lsnet-facts §4, "lsnet_short"): the lsnet recipe with 2 s warm-up and 4 s
    # measured, for sweeps that must fit a short GPU session.
    "lsnet_short": ProfileSettings(
        device="cuda", batch=2048, dtype="fp32", amp=False, channels_last=False, compile=False,
        cudnn_benchmark=False, fused=True, warmup=0, warmup_s=2.0, repeats=10, measure_s=4.0,
        sync_each=True, preset="lsnet_short",
    ),
    "efficientvit": ProfileSettings(
        device="cuda", batch=2048, dtype="fp16", amp=True, jit_trace=True, fused=True,
        warmup=0, warmup_s=10.0, repeats=10, measure_s=60.0, sync_each=True, preset="efficientvit",
    ),
    "timm": ProfileSettings(
        device="cuda", batch=256, dtype="fp32", cudnn_benchmark=True, tf32=True, fused=False,
        warmup=10, repeats=40, sync_each=True, preset="timm",
    ),
}

# Short windows for CI and smoke runs; see quick().
QUICK_WARMUP = 3
QUICK_REPEATS = 10
QUICK_WARMUP_S = 0.5
QUICK_MEASURE_S = 1.0
QUICK_BATCH_CAP = {"cpu": 8, "cuda": 64}


def quick(settings: ProfileSettings) -> ProfileSettings:
    """The same recipe with short windows and a capped batch, for smoke tests of any preset.

    Counts drop to at most 3 warm-up / 10 timed iterations; on CUDA the time windows become at
    most 0.5 s warm-up / 1 s measured (set even when the preset is count-based, so a smoke run
    still warms clocks up); the batch is capped (8 on CPU, 64 on CUDA). Everything else, dtype and
    layout included, is kept so the smoke run exercises the same code path. Idempotent.
    """
    warmup_s, measure_s = settings.warmup_s, settings.measure_s
    if settings.device == "cuda":
        warmup_s = QUICK_WARMUP_S if warmup_s is None else min(warmup_s, QUICK_WARMUP_S)
        measure_s = QUICK_MEASURE_S if measure_s is None else min(measure_s, QUICK_MEASURE_S)
    else:
        warmup_s = None if warmup_s is None else min(warmup_s, QUICK_WARMUP_S)
        measure_s = None if measure_s is None else min(measure_s, QUICK_MEASURE_S)
    label = settings.preset or "custom"
    if not label.endswith("quick"):
        label = f"{label}+quick"
    return settings.replace(
        warmup=min(settings.warmup, QUICK_WARMUP),
        repeats=min(settings.repeats, QUICK_REPEATS),
        rounds=1,
        warmup_s=warmup_s,
        measure_s=measure_s,
        batch=min(settings.batch, QUICK_BATCH_CAP.get(settings.device, settings.batch)),
        preset=label,
    ).validate()


PRESETS["quick"] = quick(PRESETS["cpu"]).replace(preset="quick")


def get_preset(name: str, **overrides: Any) -> ProfileSettings:
    """The named preset with `overrides` applied, validated; unknown names raise LsbenchError."""
    if name not in PRESETS:
        raise LsbenchError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name].replace(**overrides).validate()


def resolve_settings(device: str = "cpu", preset: str | None = None, runtime: str | None = None,
                     quick_run: bool = False, **overrides: Any) -> ProfileSettings:
    """The settings a command line asks for: the preset (by default ``lsnet`` on CUDA, ``cpu`` otherwise),
    shortened by ``quick_run``, then the options the user gave (``overrides``; None means not given), so
    that an explicit ``--batch`` or ``--repeats`` is kept even in a quick run. A preset made for another
    device is refused rather than silently moved."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if runtime is not None and runtime != EAGER:
        given["runtime"] = runtime
    training = given.get("mode") == "train"
    if training:  # a training step runs the model as built; timm's benchmark.py protocol by default on CUDA
        given.setdefault("fused", False)
    name = preset or (("timm" if training else "lsnet") if device == "cuda" else "cpu")
    base = get_preset(name)
    if device != base.device:
        if preset is not None:
            raise LsbenchError(f"preset {preset!r} runs on {base.device}, not {device}")
        given["device"] = device
    settings = base.replace(**given)
    if quick_run:
        settings = quick(settings).replace(**{k: v for k, v in given.items() if k in _QUICK_FIELDS})
    if training:  # the label says so: a selector naming the preset never picks training figures by mistake
        settings = settings.replace(preset=f"{settings.preset}+train")
    return settings.validate()


# the fields quick() shortens: an explicit value of one of these wins over the quick default
_QUICK_FIELDS = frozenset({"warmup", "repeats", "rounds", "warmup_s", "measure_s", "batch"})
