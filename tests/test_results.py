import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from lsbench.errors import LsbenchError
from lsbench.results import BASE_COLUMNS, Record, ResultsStore, run_sweep
from lsbench.settings import ProfileSettings
from lsbench.timing import summarize

REPO = Path(__file__).resolve().parents[1]


def _child_env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _lines(store):
    return store.path.read_bytes().splitlines()


def _latency(model, settings, ms, **kw):
    return Record(model=model, metric="latency", value=ms, unit="ms", settings=settings, **kw)


def test_record_round_trip_and_conversions():
    settings = ProfileSettings(batch=2, resolution=224, pin_cores=(0,))
    stats = summarize([0.001, 0.002, 0.004])
    r = Record(model="lsnet_t", metric="latency", value=2, unit="ms", stats=stats, settings=settings,
               fingerprint={"cpu_model": "X"}, counter=None, extra={"note": "a"})
    assert r.value == 2.0 and isinstance(r.value, float)
    assert r.settings_key == settings.key() and r.settings["pin_cores"] == [0]
    assert r.stats["median"] == 0.002 and r.stats["n"] == 3
    assert r.time.endswith("+00:00")
    line = r.to_json()
    assert "\n" not in line and json.loads(line)["model"] == "lsnet_t"
    assert Record.from_json(line) == r
    assert ProfileSettings.from_dict(Record.from_json(line).settings) == settings


def test_record_rejects_bad_values():
    with pytest.raises(ValueError, match="source"):
        Record(model="m", metric="flops", value=1.0, unit="GMac", source="guessed")
    with pytest.raises(ValueError, match="finite"):
        Record(model="m", metric="flops", value=float("nan"), unit="GMac")
    with pytest.raises(TypeError):
        Record(model="m", metric="flops", value="1.0", unit="GMac")


def test_store_append_and_read_back(tmp_path):
    store = ResultsStore(tmp_path / "nested" / "run")
    assert store.path == tmp_path / "nested" / "run" / "results.jsonl"
    assert store.records() == [] and store.skipped_lines == 0
    a = Record(model="a", metric="params", value=1.5e6, unit="count", settings_key="k1")
    b = _latency("a", ProfileSettings(), 3.0)
    stamped = store.append([a, b])
    assert [r.batch_size for r in stamped] == [2, 2] and stamped[0].batch_id == stamped[1].batch_id
    store.append([Record(model="b", metric="params", value=2.0, unit="count", settings_key="k1")])
    got = store.records()
    assert [(r.model, r.metric, r.value) for r in got] == [("a", "params", 1.5e6), ("a", "latency", 3.0), ("b", "params", 2.0)]
    assert got[:2] == stamped
    assert len(_lines(store)) == 3
    done = store.completed()
    assert ("a", "k1") in done and {r.metric for r in got if r.settings_key == "k1" and r.model == "a"} == {"params"}
    assert ("c", "k1") not in done
    assert ("a", ProfileSettings().key()) in done and got[1].metric == "latency"


def test_unwritable_directory_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = ResultsStore(blocker / "results")  # reading needs nothing written
    assert store.records() == [] and store.read_warning() is None
    record = Record(model="a", metric="params", value=1.0, unit="count")
    for attempt in (lambda: ResultsStore.open_for_writing(blocker / "results"), lambda: store.append([record])):
        with pytest.raises(LsbenchError, match="cannot write results to") as info:
            attempt()
        assert str(blocker) in str(info.value) and "\n" not in str(info.value)
    assert blocker.read_text() == "not a directory"


def test_frame_is_tidy(tmp_path):
    store = ResultsStore(tmp_path)
    empty = store.frame()
    assert empty.empty and list(empty.columns) == BASE_COLUMNS
    fp = {"cpu_model": "AMD EPYC", "torch_version": "2.14.1", "gpu": {"name": "NVIDIA H100"}}
    stats = summarize([0.001, 0.002, 0.003]).scaled(1e3)
    store.append([
        _latency("lsnet_t", ProfileSettings(batch=4), 2.0, stats=stats, fingerprint=fp, extra={"run": 1}),
        Record(model="lsnet_t", metric="flops", value=0.3, unit="GMac", counter="fvcore", source="reported"),
    ])
    df = store.frame()
    assert len(df) == 2
    assert set(BASE_COLUMNS) <= set(df.columns)
    assert {"stats_median", "stats_iqr", "stats_ci_low", "settings_batch", "settings_dtype", "extra_run"} <= set(df.columns)
    lat = df[df.metric == "latency"].iloc[0]
    assert lat.stats_median == pytest.approx(2.0) and lat.settings_batch == 4
    assert (lat.cpu_model, lat.gpu_name, lat.torch_version) == ("AMD EPYC", "NVIDIA H100", "2.14.1")
    assert lat.fingerprint == fp
    flops = df[df.metric == "flops"].iloc[0]
    assert flops.counter == "fvcore" and flops.source == "reported" and pd.isna(flops.stats_median)
    assert str(df["time"].dtype).startswith("datetime64") and df["time"].dt.tz is not None


def test_truncated_final_line_is_skipped_counted_and_repaired(tmp_path):
    store = ResultsStore(tmp_path)
    store.append([Record(model="a", metric="params", value=1.0, unit="count", settings_key="k")])
    whole = Record(model="b", metric="params", value=2.0, unit="count", settings_key="k").to_json()
    with open(store.path, "ab") as handle:  # what a writer killed mid-line leaves behind
        handle.write(whole[: len(whole) // 2].encode())
    assert [r.model for r in store.records()] == ["a"]
    assert store.skipped_lines == 1 and store.first_bad_line == 2
    assert "truncated last line" in store.bad_lines[0][1]
    # The next append removes the partial line instead of gluing its record onto it.
    store.append([Record(model="c", metric="params", value=3.0, unit="count", settings_key="k")])
    assert [r.model for r in store.records()] == ["a", "c"]
    assert store.skipped_lines == 0 and len(_lines(store)) == 2


def test_batch_cut_short_is_not_done(tmp_path):
    store = ResultsStore(tmp_path)
    stamped = store.append([
        Record(model="m", metric="latency", value=1.0, unit="ms", settings_key="k"),
        Record(model="m", metric="throughput", value=9.0, unit="img/s", settings_key="k"),
    ])
    lines = _lines(store)
    store.path.write_bytes(lines[0] + b"\n" + lines[1][:20])  # second record of the batch lost
    assert [r.metric for r in store.records()] == ["latency"]
    assert ("m", "k") not in store.completed()
    calls = []
    run_sweep([("m", "k")], lambda item: calls.append(item) or [
        Record(model="m", metric="latency", value=1.0, unit="ms", settings_key="k")], store)
    assert calls == [("m", "k")] and ("m", "k") in store.completed()
    assert stamped[0].batch_id != store.records()[-1].batch_id


def _append_200(directory, tag, go):
    go.wait(timeout=60)
    store = ResultsStore(directory)
    for i in range(200):
        store.append([Record(model=f"{tag}{i}", metric="params", value=i, unit="count", settings_key="k",
                             extra={"pad": "x" * 3000})])  # ~3 KB lines: writes span pages


def test_concurrent_appenders_never_interleave(tmp_path):
    # Forked processes (the parent already imported everything) so both start writing at once.
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    procs = [ctx.Process(target=_append_200, args=(tmp_path, tag, go)) for tag in ("a", "b")]
    for proc in procs:
        proc.start()
    go.set()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    store = ResultsStore(tmp_path)
    records = store.records()
    assert store.skipped_lines == 0
    assert len(_lines(store)) == 400 and len(records) == 400
    for tag in ("a", "b"):
        assert sorted(r.value for r in records if r.model.startswith(tag)) == list(range(200))


_SWEEP = """
import sys, time
import torch
from lsbench.results import Record, ResultsStore, run_sweep
from lsbench.timing import summarize, time_cpu

a = torch.randn(64, 64)

def measure(item):
    stats = summarize(time_cpu(lambda: a @ a, warmup=2, repeats=20), n_boot=200)
    time.sleep(0.05)
    return [Record(model=item, metric="latency", value=stats.median * 1e3, unit="ms",
                   stats=stats.scaled(1e3), settings_key="k")]

run_sweep([f"m{i:02d}" for i in range(50)], measure, ResultsStore(sys.argv[1]), key=lambda m: (m, "k"))
"""


def test_sigkilled_sweep_loses_nothing_finished_and_resumes(tmp_path):
    store = ResultsStore.open_for_writing(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP, str(tmp_path)], env=_child_env(),
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while store.path.read_bytes().count(b"\n") < 5:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep wrote nothing in time"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    raw = _lines(store)
    assert 5 <= len(raw) < 50
    for line in raw:
        json.loads(line)  # every line written is a whole record
    before = store.records()
    assert store.skipped_lines == 0
    done_before = {r.model for r in before}

    calls = []
    a = torch.randn(64, 64)

    def measure(model):
        calls.append(model)
        start = time.perf_counter_ns()
        (a @ a).sum().item()
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        return [Record(model=model, metric="latency", value=elapsed_ms, unit="ms", settings_key="k")]

    skipped = []
    models = [f"m{i:02d}" for i in range(50)]
    new = run_sweep(models, measure, store, key=lambda m: (m, "k"), on_skip=skipped.append)
    assert sorted(calls) == sorted(set(models) - done_before)
    assert sorted(skipped) == sorted(done_before)
    assert len(new) == len(calls)
    after = store.records()
    assert sorted(r.model for r in after) == models  # exactly 50 unique items, none twice
    assert run_sweep(models, measure, store, key=lambda m: (m, "k")) == [] and len(calls) == 50 - len(done_before)


def test_sweep_stores_finished_items_before_an_interrupt(tmp_path):
    store = ResultsStore(tmp_path)
    settings = ProfileSettings()

    def measure(item):
        model, s = item
        if model == "c":
            raise KeyboardInterrupt
        return [_latency(model, s, 1.0)]

    with pytest.raises(KeyboardInterrupt):
        run_sweep([("a", settings), ("b", settings), ("c", settings)], measure, store)
    assert [r.model for r in store.records()] == ["a", "b"]
    assert ("b", settings.key()) in store.completed()


def test_sweep_refuses_records_it_could_not_resume(tmp_path):
    store = ResultsStore(tmp_path)
    settings = ProfileSettings()
    with pytest.raises(ValueError, match="resume"):
        run_sweep([("a", settings)], lambda item: [_latency("other", settings, 1.0)], store)
    assert store.records() == []
