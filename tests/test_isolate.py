"""`profile --isolate`: every round of every model runs in its own process against the same store. A child
really killed (SIGKILL through the library's fault injection, LSBENCH_FAULT_KILL) is reported in one line, the
other model finishes, the rerun keeps every finished record and redoes only the killed model; and the records
are the same set an in-process run stores. (A resume inside a model's rounds is the store's own logic, shown
for many rounds by test_interrupts; one round each keeps this at three child processes.)"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsbench.isolate import FAULT_ENV, default_isolation
from lsbench.profile import ROUND_METRIC, profile_sweep
from lsbench.results import ResultsStore
from lsbench.settings import resolve_settings

REPO = Path(__file__).resolve().parents[1]
MODELS = ["lsnet_t", "mobilenetv3_small_100"]
OPTIONS = dict(batch=1, resolution=64, repeats=2, warmup=1, rounds=1)
ARGS = ["profile", "--models", ",".join(MODELS), "--isolate", "--resolution", "64", "--repeats", "2",
        "--warmup", "1", "--rounds", "1", "--metrics", "params,latency", "--format", "csv"]


def _cli(out: Path, fault: str | None = None) -> tuple[subprocess.CompletedProcess, int]:
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env.update(OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if fault:
        env[FAULT_ENV] = fault
    proc = subprocess.Popen([sys.executable, "-m", "lsbench.cli", *ARGS, "--out", str(out)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), proc.pid


def _signature(records):
    return sorted((r.model, r.metric, r.counter, r.job_key, r.settings_key, r.partial, r.extra.get("round"))
                  for r in records)


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    out = tmp_path_factory.mktemp("isolated")
    first, first_pid = _cli(out, fault="lsnet_t:1")  # the child timing lsnet_t's round SIGKILLs itself
    after_kill = ResultsStore(out).records()
    second, second_pid = _cli(out)
    return out, (first, first_pid, after_kill), (second, second_pid, ResultsStore(out).records())


def test_a_killed_child_is_one_line_the_sweep_goes_on_and_the_rerun_redoes_only_it(killed_then_resumed):
    out, (first, first_pid, after_kill), (second, second_pid, final) = killed_then_resumed
    assert first.returncode == 1, first.stderr[-2000:]
    reports = [ln for ln in first.stderr.splitlines() if "isolated process" in ln]
    assert reports == ["lsnet_t: its isolated process killed by SIGKILL in round 1/1; its unfinished work is "
                       "not stored, the other models go on (rerun to redo it)"]
    assert "Traceback" not in first.stderr
    rounds = {(r.model, r.extra["round"]) for r in after_kill if r.metric == ROUND_METRIC}
    assert rounds == {("mobilenetv3_small_100", 0)}
    finals = {(r.model, r.metric) for r in after_kill if not r.partial}
    assert ("mobilenetv3_small_100", "throughput") in finals and not any(m == "lsnet_t" for m, _ in finals)
    # every round ran in a process of its own, none in the sweep's process
    pids = [r.extra["pid"] for r in after_kill if r.metric == ROUND_METRIC]
    assert len(pids) == 1 and first_pid not in pids
    assert all(r.extra["isolated"] for r in after_kill if r.metric == ROUND_METRIC)

    assert second.returncode == 0, second.stderr[-2000:]
    assert "mobilenetv3_small_100: already measured with these settings, skipped" in second.stdout + second.stderr
    assert final[:len(after_kill)] == after_kill  # nothing finished was lost or rewritten
    redone = final[len(after_kill):]
    assert [(r.model, r.extra["round"]) for r in redone if r.metric == ROUND_METRIC] == [("lsnet_t", 0)]
    assert {r.model for r in redone} == {"lsnet_t"}
    latency = next(r for r in redone if r.metric == "latency")
    assert latency.extra["rounds"] == 1 and latency.stats["n"] == 2
    assert latency.extra["pid"] not in (first_pid, second_pid, *pids) and latency.extra["isolated"]


def test_isolated_and_in_process_runs_store_the_same_records(killed_then_resumed, tmp_path):
    out, _, (_, _, isolated) = killed_then_resumed
    settings = resolve_settings("cpu", None, **OPTIONS)
    assert not default_isolation("cpu") and default_isolation("cuda")
    profile_sweep(MODELS, settings, ResultsStore(tmp_path), metrics=["params", "latency"])
    in_process = ResultsStore(tmp_path).records()
    assert _signature(isolated) == _signature(in_process)
    for a in (r for r in isolated if not r.partial):  # the same extras (values differ: pids, timings)
        b = next(r for r in in_process if (r.model, r.metric) == (a.model, a.metric))
        assert set(a.extra) == set(b.extra) and a.unit == b.unit
    assert not any(r.extra["isolated"] for r in in_process if r.metric == ROUND_METRIC)
    assert {r.extra["pid"] for r in in_process if r.metric == ROUND_METRIC} == {os.getpid()}
