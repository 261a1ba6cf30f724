"""Will it fit? A memory estimate of one forward (or forward for backward) before anything is allocated.

The model runs once on the ``meta`` device (shapes and dtypes, no storage), so asking costs a fraction
of a second even for a batch of 10^9 or a 100000-pixel input. What it needs is compared with what the
device has, and a run that cannot fit is refused in one line instead of ending in an OOM kill or a
traceback half-way through a sweep.

The estimate is a *lower bound* of what eager PyTorch allocates, so a refusal is never wrong; workspaces,
allocator rounding and fragmentation come on top:

- weights: every parameter and buffer (floating ones in the run's dtype); they live throughout.
- input: the input batch (plus ``held_bytes`` the caller keeps, e.g. ERF's whole image stack).
- activations, inference: the largest, over all aten ops, of the distinct storages an op reads and
  writes (weights and input excluded). While an op runs, its inputs are alive (they are its arguments)
  and its output is allocated, so the peak is at least that much; tensors kept alive across ops (skip
  connections, attention caches) only add to it.
- activations, backward (ERF, training): every tensor autograd saves for backward, plus the output and the
  input's gradient. All saved tensors are alive together when the forward ends, before the backward frees
  any. Parameters that do not require grad save less, so running them without grad keeps the bound low.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from lsbench.errors import LsbenchError
from lsbench.settings import RUNTIMES, torch_dtype

GIB = 1 << 30


@dataclass(frozen=True)
class MemoryEstimate:
    """Lower bound of the bytes one run allocates, by kind (see the module docstring)."""

    input_bytes: int
    activation_bytes: int
    weight_bytes: int

    @property
    def total(self) -> int:
        return self.input_bytes + self.activation_bytes + self.weight_bytes

    def describe(self) -> str:
        return (f"{gib(self.total)} GiB (input {gib(self.input_bytes)}, activations {gib(self.activation_bytes)}, "
                f"weights {gib(self.weight_bytes)})")


def gib(n: float) -> str:
    """Bytes as GiB for a message: 2 decimals below 10 GiB, 1 above, thousands separated."""
    value = n / GIB
    return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    return dtype if isinstance(dtype, torch.dtype) else torch_dtype(dtype)


def _nbytes(shape: Sequence[int], dtype: torch.dtype) -> int:
    return math.prod(int(s) for s in shape) * torch.empty((), dtype=dtype).element_size()


class _OpPeak(TorchDispatchMode):
    """Largest sum of distinct storages read and written by one aten op, `skip` storages excluded."""

    def __init__(self, skip: set[StorageWeakRef]) -> None:
        super().__init__()
        self.skip = skip
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        live: dict[StorageWeakRef, int] = {}
        for t in tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                ref = StorageWeakRef(t.untyped_storage())
                if ref not in self.skip:
                    live[ref] = t.untyped_storage().nbytes()
        self.peak = max(self.peak, sum(live.values()))
        return out


def estimate_memory(model: nn.Module, input_shape: Sequence[int], dtype: torch.dtype | str = torch.float32,
                    backward: bool = False, held_bytes: int = 0) -> MemoryEstimate:
    """Lower bound of the memory one forward of `model` on an `input_shape` batch allocates (with
    `backward`: what a backward to the input needs), from one forward on the meta device.

    `dtype` is the run's dtype (torch dtype or fp32/fp16/bf16): floating weights and the input are
    counted in it (with autocast pass the autocast dtype: weights are then under-counted, the bound holds).
    The model itself is not touched: its parameters and buffers are swapped for meta tensors."""
    dtype = _dtype(dtype)
    state = {name: torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype, device="meta")
             for name, t in [*model.named_parameters(), *model.named_buffers()]}
    weights = {StorageWeakRef(t.untyped_storage()): t.untyped_storage().nbytes() for t in state.values()}
    x = torch.empty(tuple(int(s) for s in input_shape), dtype=dtype, device="meta")
    skip = set(weights) | {StorageWeakRef(x.untyped_storage())}
    if backward:
        x.requires_grad_(True)
        saved: dict[StorageWeakRef, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            ref = StorageWeakRef(t.untyped_storage())
            if ref not in skip:
                saved[ref] = t.untyped_storage().nbytes()
            return t

        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = functional_call(model, state, (x,), strict=False)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                saved[StorageWeakRef(t.untyped_storage())] = t.untyped_storage().nbytes()
        activations = sum(saved.values()) + x.untyped_storage().nbytes()  # + the input's gradient
    else:
        mode = _OpPeak(skip)
        with torch.no_grad(), mode:
            functional_call(model, state, (x,), strict=False)
        activations = mode.peak
    return MemoryEstimate(input_bytes=x.untyped_storage().nbytes() + int(held_bytes),
                          activation_bytes=int(activations), weight_bytes=sum(weights.values()))


# ------------------------------------------------------------------------------------------ what is there

def meminfo_available(path: Path = Path("/proc/meminfo")) -> int | None:
    try:
        match = re.search(r"^MemAvailable:\s+(\d+) kB", path.read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _stat_field(path: Path, name: str) -> int:
    try:
        match = re.search(rf"^{name} (\d+)$", path.read_text(), re.M)
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def cgroup_headroom(root: Path = Path("/sys/fs/cgroup"), proc: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes this process's memory cgroup still allows (limit - usage + reclaimable file cache), or None.

    cgroup v2: the tightest memory.max from the process's group up to the root. cgroup v1: the memory
    controller's hierarchical limit. Inside a container the group's path may not exist in the container's
    view of /sys/fs/cgroup; the mount's own root files are then the group's."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    best: int | None = None
    for line in lines:
        _, controllers, group = line.split(":", 2)
        group = group.lstrip("/")
        if controllers == "" and (root / "cgroup.controllers").exists():  # v2
            directory = root / group if (root / group / "memory.max").exists() else root
            while True:
                limit = _read_int(directory / "memory.max")
                usage = _read_int(directory / "memory.current")
                if limit is not None and usage is not None:
                    room = limit - usage + _stat_field(directory / "memory.stat", "inactive_file")
                    best = room if best is None else min(best, room)
                if directory == root:
                    break
                directory = directory.parent
        elif "memory" in controllers.split(","):  # v1
            base = root / "memory"
            directory = base / group if (base / group / "memory.limit_in_bytes").exists() else base
            limit = _stat_field(directory / "memory.stat", "hierarchical_memory_limit") or \
                _read_int(directory / "memory.limit_in_bytes")
            usage = _read_int(directory / "memory.usage_in_bytes")
            if limit is not None and usage is not None and limit < 1 << 60:  # 2^63-ish means unlimited
                room = limit - usage + _stat_field(directory / "memory.stat", "total_inactive_file")
                best = room if best is None else min(best, room)
    return None if best is None else max(best, 0)


def available_memory(device: str | torch.device = "cpu") -> int | None:
    """Bytes a new allocation on `device` can still get, or None when the system does not say.

    CPU (and the on-host runtimes): /proc/meminfo MemAvailable, lowered to the memory cgroup's headroom
    when that is tighter (a container's limit is what kills). CUDA: the driver's free memory plus what
    this process's caching allocator holds reserved but unused."""
    name = str(device)
    if name in RUNTIMES or name.startswith("cpu"):
        free = [v for v in (meminfo_available(), cgroup_headroom()) if v is not None]
        return min(free) if free else None
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LsbenchError("device cuda requested but CUDA is not available on this machine")
        index = torch.device(name).index
        index = torch.cuda.current_device() if index is None else index
        free, _ = torch.cuda.mem_get_info(index)
        return free + torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
    raise LsbenchError(f"unknown device {name!r} for a memory check")


def check_fits(model: nn.Module, input_shape: Sequence[int], device: str | torch.device = "cpu",
               dtype: torch.dtype | str = torch.float32, backward: bool = False,
               held_bytes: int = 0) -> MemoryEstimate | None:
    """Refuse, in one LsbenchError line, a run whose memory lower bound exceeds what `device` has.

    Returns the estimate when it fits, and None when the device's free memory is unknown or the model
    cannot run on the meta device (an operator without a meta kernel): the run then goes ahead unchecked."""
    try:
        estimate = estimate_memory(model, input_shape, dtype=dtype, backward=backward, held_bytes=held_bytes)
    except (NotImplementedError, RuntimeError):
        return None
    free = available_memory(device)
    if free is None:
        return None
    if estimate.total > free:
        where = "this machine has" if str(device) in RUNTIMES or str(device).startswith("cpu") else \
            f"{device} has"
        raise LsbenchError(f"needs at least {estimate.describe()}, {where} {gib(free)} GiB available")
    return estimate

