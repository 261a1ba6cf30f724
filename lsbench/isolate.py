"""One fresh process per unit of measuring work, as timm's bulk_runner runs one process per model.

Why: in one long process, state left by earlier models changes later ones (timm issue #955: cuDNN's algorithm
choice degrades after many models; the caching allocator's fragmentation; a crash or a hang takes the whole
sweep with it). :func:`run_child` runs a library function in a child Python with a JSON payload on stdin and
turns its end into an :class:`ChildOutcome` with a one-line description; the child writes its results into
the same results store itself (the store's appends are atomic and locked), so what is stored and how a rerun
resumes is exactly what an in-process run gives.

:func:`fault_point` is the library's own fault injection: ``LSBENCH_FAULT_KILL=MODEL:ROUND`` makes the process
that has just timed round ROUND (1-based) of MODEL kill itself with SIGKILL before the round is stored, so the
tests can kill a real child at a known moment.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChildOutcome", "run_child", "fault_point", "die_with_parent", "in_isolated_child", "default_isolation", "FAULT_ENV"]

#: environment variable of the fault injection: MODEL:ROUND (1-based), the process kills itself there
FAULT_ENV = "LSBENCH_FAULT_KILL"
_PARENT_ENV = "LSBENCH_ISOLATE_PARENT"
_TAIL = 4000


def default_isolation(device: str) -> bool:
    """On by default on CUDA (cuDNN and allocator state carry over between models), off on the CPU (a child's
    start costs seconds and the CPU path keeps no such state)."""
    return device == "cuda"


@dataclass(frozen=True)
class ChildOutcome:
    """How a child ended: ``ok``, else ``message`` (one line, naming what ended it)."""

    returncode: int
    message: str = ""
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _describe(returncode: int, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    if returncode == 2 and last.startswith("error: "):
        return last[len("error: "):]
    return f"exited with code {returncode}" + (f" ({last})" if last else "")


def run_child(target: str, payload: Mapping, env: Mapping[str, str] | None = None) -> ChildOutcome:
    """Run ``target`` ("package.module:function", called with the payload dict) in a fresh Python.

    The child finds this very lsbench first on its path, dies with the parent (Linux), and is killed when
    the parent is interrupted while waiting for it."""
    module, function = target.split(":")
    root = str(Path(__file__).resolve().parents[1])
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, child_env.get("PYTHONPATH")]))
    child_env[_PARENT_ENV] = str(os.getpid())
    code = (f"import json, sys; from lsbench.isolate import die_with_parent; die_with_parent(); "
            f"from {module} import {function} as f; f(json.load(sys.stdin))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=child_env, text=True)
    try:
        _, stderr = proc.communicate(json.dumps(dict(payload)))
    except BaseException:  # Ctrl-C or an error in the parent: never leave the child measuring
        proc.kill()
        proc.wait()
        raise
    stderr = stderr[-_TAIL:]
    if proc.returncode == 0:
        return ChildOutcome(0, "", stderr)
    return ChildOutcome(proc.returncode, _describe(proc.returncode, stderr), stderr)


def die_with_parent() -> None:
    """In a child: ask Linux to SIGKILL this process when its parent dies (an orphan must not go on writing
    to the store a rerun is resuming); a parent that is already gone ends the child at once."""
    parent = os.environ.get(_PARENT_ENV)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent's wait still kills the child on an interrupt
    if parent is not None and os.getppid() != int(parent):
        os._exit(1)


def in_isolated_child() -> bool:
    """Whether this process is a child started by :func:`run_child` (recorded with every round)."""
    parent = os.environ.get(_PARENT_ENV)
    return parent is not None and parent == str(os.getppid())


def fault_point(model: str, round_index: int) -> None:
    """Fault injection: SIGKILL this process when :data:`FAULT_ENV` names ``model`` and ``round_index``
    (0-based here, 1-based in the variable, as the progress lines count rounds)."""
    want = os.environ.get(FAULT_ENV)
    if want and want == f"{model}:{round_index + 1}":
        os.kill(os.getpid(), signal.SIGKILL)
