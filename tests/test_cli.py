"""The CLI through typer's runner: real runs on small models, and every user-error path exits 2 with one line."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from lsbench.results import ResultsStore


def test_list_shows_measured_and_published_params():
    result = run_cli("list", "--family", "lsnet", "--format", "csv")
    assert result.exit_code == 0
    rows = {line.split(",")[0]: line.split(",") for line in result.stdout.splitlines()[1:] if line}
    assert set(rows) == {"lsnet_t", "lsnet_s", "lsnet_b", "lsnet_t_distill", "lsnet_s_distill", "lsnet_b_distill"}
    assert int(rows["lsnet_t"][4]) == 11_409_832
    assert int(rows["lsnet_t"][5]) == 11_370_488


def test_profile_counts_then_resumes(tmp_path):
    args = ["profile", "--models", "lsnet_t,mobilenetv3_small_100", "--metrics", "params,flops",
            "--counters", "fvcore", "--out", str(tmp_path), "--format", "json"]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    summary = {row["model"]: row for row in json.loads(first.stdout)}
    assert summary["lsnet_t"]["params_fused"] == 11_370_488
    assert round(summary["lsnet_t"]["gmacs_fvcore"], 4) == 0.3163
    n_records = len(ResultsStore(tmp_path).records())
    second = run_cli(*args)
    assert second.exit_code == 0
    assert second.stderr.count("already measured with these settings, skipped") == 2
    assert len(ResultsStore(tmp_path).records()) == n_records


def test_profile_cpu_latency_records_settings(tmp_path):
    result = run_cli("profile", "--models", "mobilenetv3_small_100,efficientvit_m0", "--metrics", "latency",
                  "--repeats", "5", "--rounds", "3", "--warmup", "1", "--threads", "1", "--resolution", "96",
                  "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "round 3/3" in result.stderr
    frame = ResultsStore(tmp_path).frame()
    latency = frame[frame["metric"] == "latency"].iloc[0]
    assert latency["stats_n"] == 15 and latency["value"] > 0  # 3 interleaved rounds of 5
    assert latency["settings_rounds"] == 3 and latency["extra_rounds"] == 3
    assert latency["settings_threads"] == 1 and latency["settings_resolution"] == 96
    assert latency["fingerprint"]["torch_version"] == torch.__version__
    assert latency["extra_threads_effective"]["threads"] == 1
    throughput = frame[frame["metric"] == "throughput"].iloc[0]
    assert throughput["unit"] == "img/s"


@pytest.mark.parametrize("args,fragment", [
    (["profile", "--models", "lsnet_tt"], "unknown model 'lsnet_tt'; did you mean lsnet_t"),
    (["profile", "--batch", "0"], "batch must be at least 1"),
    (["profile", "--rounds", "0"], "rounds must be at least 1"),
    (["profile", "--resolution", "16"], "resolution must be at least 32"),
    (["profile", "--preset", "fast"], "unknown preset 'fast'"),
    (["profile", "--format", "xml"], "unknown format 'xml'"),
    (["profile", "--pin-cores", "a"], "--pin-cores takes core numbers"),
    (["profile", "--metrics", "speed", "--models", "lsnet_t"], "unknown metric 'speed'"),
    (["profile", "--counters", "thop", "--models", "lsnet_t"], "unknown counter 'thop'"),
    (["flops", "repvit_m09"], "did you mean repvit_m0_9"),
    (["flops", "lsnet_t", "--resolution", "8"], "resolution must be at least 32"),
    (["erf", "lsnet_x"], "unknown model 'lsnet_x'"),
])
def test_user_errors_are_one_line(args, fragment, tmp_path):
    assert_one_line_error(run_cli(*args, *(["--out", str(tmp_path)] if args[0] == "profile" else [])), fragment)


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_one_line_error(run_cli("profile", "--models", "lsnet_t", "--out", str(blocker / "sub")), "cannot")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu(tmp_path):
    assert_one_line_error(run_cli("profile", "--device", "cuda", "--out", str(tmp_path)), "CUDA is not available")


def test_corrupt_checkpoint_in_eval(tmp_path):
    ckpt = tmp_path / "bad.pth"
    ckpt.write_bytes(b"not a checkpoint")
    (tmp_path / "data" / "a").mkdir(parents=True)
    assert_one_line_error(run_cli("eval", "lsnet_t", "--data", str(tmp_path / "data"), "--checkpoint", str(ckpt)),
                    "cannot read checkpoint")


def test_flops_by_module():
    result = run_cli("flops", "lsnet_t", "--counters", "fvcore", "--by-module", "--depth", "1", "--format", "csv")
    assert result.exit_code == 0, result.output
    assert "0.3163" in result.stdout
    assert "blocks3" in result.stdout and "blocks4" in result.stdout


def test_erf_small(tmp_path):
    result = run_cli("erf", "mobilenetv3_small_100", "--num-images", "1", "--size", "64", "--no-stages",
                  "--out", str(tmp_path), "--format", "csv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "erf_mobilenetv3_small_100.png").is_file()
    assert "random init" in (tmp_path / "erf_ratios_mobilenetv3_small_100.csv").read_text()


def test_killed_sweep_keeps_finished_models_and_resumes(tmp_path):
    models = "mobilenetv3_small_100,efficientvit_m0,efficientvit_m1,mobilenetv3_large_100,efficientvit_m2"
    cmd = [sys.executable, "-c", "from lsbench.cli import main; main()", "profile", "--models", models,
           "--metrics", "params,flops", "--counters", "fvcore", "--out", str(tmp_path), "--format", "csv"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    path = tmp_path / "results.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if path.exists() and len({json.loads(l)["model"] for l in path.read_text().splitlines() if l}) >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    finished = {r.model for r in ResultsStore(tmp_path).records()}
    assert 1 <= len(finished) < 5
    result = run_cli(*cmd[3:])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("skipped") >= len(finished)
    records = ResultsStore(tmp_path).records()
    per_model = {}
    for r in records:
        per_model.setdefault(r.model, []).append(r.metric)
    assert set(per_model) == set(models.split(","))
    assert all(sorted(m) == ["macs", "params", "params_fused"] for m in per_model.values())


def test_profile_features_only_backbone_at_dense_resolution(tmp_path):
    """The dense-task backbone (timm features_only): the classifier is gone from the counts and the input is 512."""
    result = run_cli("profile", "--models", "lsnet_t", "--features-only", "--resolution", "512", "--quick",
                  "--counters", "fvcore", "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    import zoo

    head = sum(p.numel() for p in zoo.create_model("lsnet_t").head.parameters())
    assert row["params"] == 11_409_832 - head  # the whole model less its classifier
    frame = ResultsStore(tmp_path).frame()
    latency = frame[frame["metric"] == "latency"].iloc[0]
    assert latency["settings_features_only"] and latency["extra_resolution"] == 512
    assert latency["extra_form"]["features_only"] is True


def test_profile_records_peak_memory_and_weight_bytes(tmp_path):
    result = run_cli("profile", "--models", "mobilenetv3_small_100", "--metrics", "latency", "--quick",
                  "--resolution", "96", "--out", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)[0]
    frame = ResultsStore(tmp_path).frame().set_index("metric")
    import zoo

    fused = zoo.reparameterize(zoo.create_model("mobilenetv3_small_100").eval())
    expected = sum(t.numel() * t.element_size() for t in [*fused.parameters(), *fused.buffers()])
    assert frame.at["weight_bytes", "value"] == expected
    # one forward at 96 px holds at least its logits and the stem's output (16 x 48 x 48 fp32)
    assert frame.at["peak_memory", "value"] >= 16 * 48 * 48 * 4
    assert row["peak_memory_MiB"] == pytest.approx(frame.at["peak_memory", "value"] / 2**20, abs=1e-4)  # json rounds


def test_profile_summary_is_compact_unless_wide(tmp_path):
    args = ["profile", "--models", "mobilenetv3_small_100", "--quick", "--counters", "fvcore,torch",
            "--resolution", "96", "--out", str(tmp_path), "--format", "md"]
    compact = run_cli(*args)
    assert compact.exit_code == 0, compact.output
    header = compact.stdout.splitlines()[0]
    assert "latency ms (median ± IQR)" in header and "GMACs (fvcore)" in header and "gmacs_torch" not in header
    wide = run_cli(*args, "--wide")
    assert "gmacs_torch" in wide.stdout.splitlines()[0] and "latency_cv_pct" in wide.stdout.splitlines()[0]
    full = json.loads(run_cli(*args[:-1], "json").stdout)[0]
    assert {"gmacs_fvcore", "gmacs_torch", "latency_iqr_ms", "latency_n"} <= set(full)
