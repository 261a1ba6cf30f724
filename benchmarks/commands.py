"""Whole-command timing for the benchmarks that compare two versions of a job: one child process per run,
its wall and CPU seconds from the kernel's accounting of finished children, and the load around it."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["lsbench_command", "run_command", "write_result"]


def lsbench_command(*args: str) -> list[str]:
    """``lsbench ARGS`` as this interpreter runs it, so that PYTHONPATH picks which checkout's code runs."""
    return [sys.executable, "-c", "from lsbench.cli import main; main()", *args]


def run_command(cmd: list[str], code: Path) -> dict:
    """Run ``cmd`` in ``code`` (a checkout), with it first on PYTHONPATH (``python -c`` puts the working
    directory first on sys.path, so the working directory must be the checkout too); its wall seconds, CPU
    seconds (user + sys of the child) and the 1-minute load average before and after. A failed command ends
    the benchmark."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))}
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    label = " ".join(["lsbench", *cmd[3:]])
    if done.returncode != 0:
        raise SystemExit(f"{label} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"command": label, "code": str(code), "wall_s": wall, "cpu_s": cpu,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}


def write_result(out: Path | None, name: str, result: dict) -> None:
    """The benchmark's result as ``out/name`` (indented JSON), when an output folder was given."""
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps(result, indent=2, default=str) + "\n")
