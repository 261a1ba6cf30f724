"""`lsbench anatomy`: a real (short) run writes frames, figures and records; bad input exits 2 with one line."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from lsbench.anatomy_job import anatomy_key, anatomy_settings
from lsbench.results import ResultsStore


@pytest.mark.slow
def test_anatomy_run_writes_frames_figures_and_records(tmp_path):
    result = run_cli("anatomy", "lsnet_t", "--resolution", "128", "--warmup", "1", "--repeats", "2", "--rounds", "2",
                  "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    for stem in ("anatomy_parts", "anatomy_by_part", "anatomy_by_stage", "anatomy_totals", "roofline_ceilings"):
        assert (tmp_path / f"{stem}.csv").exists() and (tmp_path / f"{stem}.md").exists()
    assert (tmp_path / "roofline_cpu.png").stat().st_size > 10_000 and (tmp_path / "roofline_cpu.svg").exists()
    parts = pd.read_csv(tmp_path / "anatomy_by_part.csv")
    assert {"SKA", "LKP", "FFN", "Attention", "stem", "head"} <= set(parts["part"])
    totals = pd.read_csv(tmp_path / "anatomy_totals.csv").iloc[0]
    assert totals["parts_sum_ms"] > 0 and totals["latency_ms"] > 0 and totals["resolution"] == 128
    records = ResultsStore(tmp_path).records()
    key = anatomy_key(anatomy_settings(resolution=128, warmup=1, repeats=2, rounds=2), "fvcore")
    assert {r.settings_key for r in records} == {key}
    metrics = {r.metric for r in records}
    assert {"anatomy_part_time", "anatomy_latency", "anatomy_parts_sum", "weight_bytes", "peak_memory",
            "roofline_ceiling"} <= metrics
    ska = [r for r in records if r.metric == "anatomy_part_time" and r.extra["part"] == "SKA"]
    assert ska and all(r.extra["intensity_mac_per_byte"] == pytest.approx(0.72) for r in ska)
    assert "SKA" in result.stdout and "sum_over_latency" in result.stdout


def test_unknown_model_exits_2():
    assert_one_line_error(run_cli("anatomy", "lsnet_xl"), "unknown model")


def test_bad_counter_exits_2(tmp_path):
    assert_one_line_error(run_cli("anatomy", "lsnet_t", "--counter", "nope", "--out", str(tmp_path)), "unknown counter")


def test_bad_batch_exits_2(tmp_path):
    assert_one_line_error(run_cli("anatomy", "lsnet_t", "--batch", "0", "--out", str(tmp_path)), "batch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_exits_2(tmp_path):
    assert_one_line_error(run_cli("anatomy", "lsnet_t", "--device", "cuda", "--out", str(tmp_path)), "CUDA is not available")


def test_runtime_device_is_refused(tmp_path):
    assert_one_line_error(run_cli("anatomy", "lsnet_t", "--device", "onnxruntime", "--out", str(tmp_path)),
                    "unknown device 'onnxruntime'; expected one of cpu, cuda")
