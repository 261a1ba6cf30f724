"""Checks of what a user asks for that every command shares: model lists, devices, sizes, threads, folders
and output formats. Each failure is one :class:`~lsbench.errors.LsbenchError` line, raised before any work
starts, so a bad option never costs a model build (or leaves a half-made folder behind).
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from lsbench.errors import LsbenchError

__all__ = ["MIN_RESOLUTION", "TEXT_FORMATS", "split_models", "require_device", "check_resolution",
           "check_positive", "check_threads", "check_pin_cores", "check_format", "writable_dir", "usable_cores"]

#: the smallest input side any model here accepts (five stride-2 stages)
MIN_RESOLUTION = 32
#: what ``--format`` takes for a frame printed by a command
TEXT_FORMATS = ("table", "csv", "json", "md")


def split_models(models: str | Iterable[str]) -> list[str]:
    """'a,b' -> [a, b]; 'all' -> the registry; a family name (e.g. 'lsnet') -> its models. Unknown names get
    a one-line error with suggestions; duplicates are dropped, order kept."""
    import zoo

    items = models.split(",") if isinstance(models, str) else [m for part in models for m in part.split(",")]
    names: list[str] = []
    registry = zoo.list_models()
    for item in (m.strip() for m in items):
        if not item:
            continue
        if item == "all":
            names += registry
        elif item not in registry and zoo.list_models(family=item):
            names += zoo.list_models(family=item)
        else:
            zoo.get_card(item)
            names.append(item)
    if not names:
        raise LsbenchError("no models given")
    return list(dict.fromkeys(names))


def require_device(device: str) -> str:
    """``device`` when this machine has it: 'cpu' always, 'cuda' only with a usable CUDA GPU."""
    if device not in ("cpu", "cuda"):
        raise LsbenchError(f"unknown device {device!r}; expected cpu or cuda")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LsbenchError("device cuda requested but CUDA is not available on this machine")
    return device


def check_resolution(resolution: int | None, what: str = "resolution") -> int | None:
    """None (the model's native size) or a side of at least :data:`MIN_RESOLUTION` pixels."""
    if resolution is not None and resolution < MIN_RESOLUTION:
        raise LsbenchError(f"{what} must be at least {MIN_RESOLUTION}, got {resolution}")
    return resolution


def check_positive(value: int | None, what: str) -> int | None:
    if value is not None and value < 1:
        raise LsbenchError(f"{what} must be at least 1, got {value}")
    return value


def usable_cores() -> list[int]:
    """The cores this process may run on (its affinity mask), sorted."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def check_threads(threads: int, what: str = "threads") -> int:
    """At least 1 and no more than the cores this process may use: oversubscribed threads time the
    scheduler, not the model."""
    check_positive(threads, what)
    cores = len(usable_cores())
    if threads > cores:
        raise LsbenchError(f"{what} {threads} is more than the {cores} core(s) this process can use")
    return threads


def check_pin_cores(cores: Iterable[int] | None) -> tuple[int, ...] | None:
    """The cores to pin to, each one this process may use."""
    if cores is None:
        return None
    cores = tuple(sorted(set(int(c) for c in cores)))
    allowed = usable_cores()
    missing = [c for c in cores if c not in allowed]
    if not cores or missing:
        raise LsbenchError(f"cannot pin to core(s) {', '.join(map(str, missing or cores))}: this process may use "
                           f"cores {', '.join(map(str, allowed))}")
    return cores


def check_format(fmt: str, formats: Iterable[str] = TEXT_FORMATS) -> str:
    formats = tuple(formats)
    if fmt not in formats:
        raise LsbenchError(f"unknown format {fmt!r}; valid formats: {', '.join(formats)}")
    return fmt


def writable_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """``path`` as a folder that can be written: created when ``create`` (parents too), else it must exist.
    Call it when about to write, so that a command that fails earlier leaves no empty folder."""
    p = Path(path)
    try:
        if create:
            p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LsbenchError(f"cannot write to {p}: {exc.strerror or exc}") from None
    if not p.is_dir():
        raise LsbenchError(f"cannot write to {p}: not a folder")
    if not os.access(p, os.W_OK):
        raise LsbenchError(f"cannot write to {p}: permission denied")
    return p
