"""The untimed work of a sweep (counts, exports) done up front in worker processes: the same records and the
same artifacts as the work done in the sweep's own process, errors kept and raised where the sweep needs the
result, a dead worker reported in one line."""
from __future__ import annotations

import operator
import os

import pytest

from lsbench.errors import LsbenchError
from lsbench.profile import profile_sweep
from lsbench.results import ResultsStore
from lsbench.settings import resolve_settings
from lsbench.untimed import MAX_AUTO_WORKERS, UntimedPool, auto_workers, usable_cores


def test_auto_workers_counts():
    assert auto_workers(0, 100) == min(usable_cores(), MAX_AUTO_WORKERS)
    assert auto_workers(3, 2) == 2  # never more processes than tasks
    assert auto_workers(1, 9) == 1
    assert auto_workers(0, 0) == 1
    for bad in (-1, True, 1.5):
        with pytest.raises(LsbenchError, match="--workers"):
            auto_workers(bad, 3)


def test_workers_run_elsewhere_and_keep_errors():
    tasks = {"sum": (operator.add, (1, 2)), "bad": (int, ("x",)), "pid": (os.getpid, ())}
    with UntimedPool(tasks, 2) as pool:
        pool.wait()
        assert "sum" in pool and "other" not in pool
        assert pool.result("sum") == 3 and pool.result("pid") != os.getpid()
        with pytest.raises(ValueError, match="invalid literal"):
            pool.result("bad")
        with pytest.raises(ProcessLookupError):  # wait() stopped the workers: nothing runs beside a timing
            os.kill(pool.result("pid"), 0)


def test_a_dead_worker_fails_its_task_in_one_line():
    with UntimedPool({("export", "m"): (os._exit, (3,))}, 2) as pool:
        with pytest.raises(LsbenchError, match=r"^export m: the worker process .* died; rerun with --workers 1"):
            pool.result(("export", "m"))


def _signature(records):
    return sorted((r.model, r.metric, r.counter, r.value, r.job_key) for r in records)


def test_counts_in_workers_equal_counts_in_process(tmp_path):
    names = ["mobilenetv3_small_100", "lsnet_t"]
    settings = resolve_settings("cpu", quick_run=True, resolution=64)
    runs = {w: profile_sweep(names, settings, ResultsStore(tmp_path / f"w{w}"), ("params", "flops"), workers=w)
            for w in (1, 2)}
    assert _signature(runs[1]) == _signature(runs[2])
    assert {r.metric for r in runs[2]} == {"params", "params_fused", "macs"}
    assert [r.model for r in runs[2] if r.metric == "params"] == names  # stored in the sweep's order


def test_exports_in_workers_are_the_artifacts_the_sweep_would_make(tmp_path):
    pytest.importorskip("onnxruntime")
    names = ["mobilenetv3_small_100", "repvit_m0_9"]
    settings = resolve_settings("cpu", runtime="onnxruntime", batch=1, resolution=64, repeats=2, warmup=1,
                                rounds=1).replace(precision=None)
    runs = {w: profile_sweep(names, settings, ResultsStore(tmp_path / f"w{w}"), ("latency",), workers=w)
            for w in (1, 2)}
    for w, records in runs.items():
        rounds = [r for r in records if r.metric == "latency_round"]
        assert sorted(r.model for r in rounds) == sorted(names), w
        assert all(r.extra["export"]["passed"] and r.extra["export"]["format"] == "onnx" for r in rounds)
    digest = {w: {r.model: r.extra["export"]["sha256"] for r in rs if r.metric == "latency_round"}
              for w, rs in runs.items()}
    assert digest[1] == digest[2]  # the same bytes, wherever they were exported
