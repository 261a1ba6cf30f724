"""A default 5-round, 3-model sweep killed with SIGKILL at 10 random moments: after every kill each line of the
store parses and no finished round is lost; the resume measures only what is missing and never duplicates a
record; the pooled result is made of exactly the five stored rounds."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from lsbench.profile import ROUND_METRIC
from lsbench.results import ResultsStore

REPO = Path(__file__).resolve().parents[1]
MODELS = ["mobilenetv3_small_100", "efficientvit_m0", "lsnet_t"]
# the default CPU preset (1 thread, batch 1) with 5 fixed interleaved rounds, short windows and a small input
ARGS = ["profile", "--models", ",".join(MODELS), "--resolution", "64", "--repeats", "3", "--warmup", "1",
        "--rounds", "5", "--precision", "off",  # fixed rounds: what is checked here is the resume
        "--counters", "fvcore", "--format", "csv"]


def _start(out: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "lsbench.cli", *ARGS, "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _state(out: Path):
    path = out / "results.jsonl"
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()] if path.exists() else []
    for line in lines:
        json.loads(line)  # every line is a whole record
    records = ResultsStore(out).records()
    rounds = Counter((r.model, r.extra["round"]) for r in records if r.metric == ROUND_METRIC)
    finals = Counter((r.model, r.metric) for r in records if r.metric in ("latency", "throughput", "params"))
    return records, rounds, finals


def test_sigkill_at_random_moments_loses_no_round_and_resumes_without_duplicates(tmp_path):
    rng = random.Random(20261201)
    out = tmp_path / "store"
    seen_rounds: set = set()
    for _ in range(10):
        proc = _start(out)
        time.sleep(rng.uniform(0.5, 12.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        records, rounds, finals = _state(out)
        assert all(n == 1 for n in rounds.values()), rounds  # no round measured twice
        assert all(n == 1 for n in finals.values()), finals  # no result stored twice
        assert seen_rounds <= set(rounds), "a finished round was lost"
        seen_rounds = set(rounds)
    before = len(seen_rounds)
    earlier_runs = {r.extra["run_id"] for r in _state(out)[0] if r.metric == ROUND_METRIC}
    proc = _start(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()[-2000:]
    records, rounds, finals = _state(out)
    assert set(rounds) == {(m, r) for m in MODELS for r in range(5)} and all(n == 1 for n in rounds.values())
    assert all(finals[(m, metric)] == 1 for m in MODELS for metric in ("latency", "throughput", "params"))
    # the final run measured exactly the rounds that were missing
    new = [r for r in records if r.metric == ROUND_METRIC and r.extra["run_id"] not in earlier_runs]
    assert len(new) == 15 - before and len({r.extra["run_id"] for r in new}) <= 1
    for model in MODELS:
        stored = [r for r in records if r.model == model and r.metric == ROUND_METRIC]
        latency = next(r for r in records if r.model == model and r.metric == "latency")
        assert latency.stats["n"] == sum(len(r.extra["samples_s"]) for r in stored)
        assert latency.extra["rounds"] == 5 and latency.extra["runs"] == len({r.extra["run_id"] for r in stored})
        assert latency.extra["resumed"] == (latency.extra["runs"] > 1)
    # a second complete rerun measures nothing
    proc = _start(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and err.decode().count("already measured with these settings, skipped") == 3
    assert len(ResultsStore(out).records()) == len(records)
