"""The untimed work of a sweep (FLOP counts, exports), done up front on the cores the sweep may use.

Counting FLOPs three ways and exporting an artifact are deterministic: their results do not depend on how
many cores ran them, nor when. A sweep therefore does all of it before its first timed round, in up to
``workers`` fresh processes at once, and times afterwards, alone: nothing runs beside a measurement. On a
2-core host this halves the export-bound part of an ONNX Runtime sweep without touching what is measured.

Each task's result, value or error, is taken where the sweep used to do the work itself, so a failure
surfaces at the same point of the sweep as before (after the models ahead of it were stored). With one
worker there is no pool: the sweep does each piece of work where it needs it, as it always did.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Hashable, Mapping
from concurrent import futures
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import LsbenchError

__all__ = ["MAX_AUTO_WORKERS", "UntimedPool", "auto_workers", "check_workers", "usable_cores"]

#: ``workers=0`` (auto) uses one process per usable core, at most this many (each imports torch: ~0.5 GB)
MAX_AUTO_WORKERS = 4

Task = tuple[Callable[..., Any], tuple]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise LsbenchError(f"--workers must be 0 (one per core) or a positive count, got {workers!r}")
    return workers


def auto_workers(workers: int, tasks: int) -> int:
    """Processes to use: ``workers`` (0 = one per usable core, at most :data:`MAX_AUTO_WORKERS`), never more
    than there are tasks; 1 means in this process."""
    check_workers(workers)
    wanted = min(usable_cores(), MAX_AUTO_WORKERS) if workers == 0 else workers
    return max(1, min(wanted, tasks))


def _one_share_of_threads(threads: int) -> None:
    """Worker start: each worker gets its share of the cores, so that the workers do not oversubscribe them."""
    import torch

    torch.set_num_threads(threads)


class UntimedPool:
    """``tasks`` (key -> (module-level function, picklable arguments)) running in ``workers`` fresh (spawned)
    processes from the moment the pool is entered. :meth:`result` waits for one task and returns its value or
    raises its error; :meth:`wait` waits for all of them and stops the workers (do it before timing anything). Leaving the pool
    cancels what has not started. A worker that dies (killed, out of memory) fails its tasks with one
    :class:`LsbenchError` each."""

    def __init__(self, tasks: Mapping[Hashable, Task], workers: int):
        self.tasks = dict(tasks)
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Hashable, Future] = {}

    def __enter__(self) -> "UntimedPool":
        threads = max(1, usable_cores() // self.workers)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_one_share_of_threads, initargs=(threads,))
        self._futures = {key: self._pool.submit(fn, *args) for key, (fn, args) in self.tasks.items()}
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._futures

    def wait(self) -> None:
        """Wait for every task, then stop the workers: from here on nothing but the caller runs (the results
        stay readable)."""
        futures.wait(self._futures.values())
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def result(self, key: Hashable) -> Any:
        try:
            return self._futures[key].result()
        except BrokenProcessPool:
            raise LsbenchError(f"{_label(key)}: the worker process doing its untimed work (counting, export) "
                               f"died; rerun with --workers 1 to do it in this process") from None


def _label(key: Hashable) -> str:
    return " ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)
