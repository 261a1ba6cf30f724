"""Bad and hostile input to every command: exit code 2, exactly one line on stderr, no traceback, and nothing
left behind (no results file, no empty output folder). Each case runs the real console entry point
(``lsbench.cli.main``) in-process, so usage errors from the option parser are covered too."""
from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from lsbench.cli import main
from lsbench.results import Record, ResultsStore


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    blocker = root / "file"
    blocker.write_text("not a directory")
    data = root / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        Image.new("RGB", (40, 40), (10, 200, 30)).save(data / cls / "x.png")
    (root / "corrupt.pth").write_bytes(b"not a checkpoint")
    ten = root / "ten_classes.pth"  # an lsnet_t checkpoint with a 10-class head
    import zoo

    torch.save(zoo.create_model("lsnet_t", num_classes=10).state_dict(), ten)
    cpu = root / "cpu_results"
    ResultsStore(cpu).append([Record(model="lsnet_t", metric="latency", value=9.0, unit="ms",
                                     settings={"device": "cpu", "batch": 1}, fingerprint={"cpu_model": "X"})])
    return {"root": root, "blocker": blocker, "data": data, "cpu": cpu, "ten": ten}


def _cases():
    return [
        # profile
        (["profile", "--models", "lsnet_tt"], "did you mean lsnet_t"),
        (["profile", "--models", "LSNet_T"], "did you mean lsnet_t"),
        (["profile", "--models", ","], "no models given"),
        (["profile", "--batch", "0"], "batch must be at least 1"),
        (["profile", "--batch", "abc"], "Invalid value for '--batch'"),
        (["profile", "--rounds", "0"], "rounds must be at least 1"),
        (["profile", "--workers", "-1"], "--workers must be 0 (one per core) or a positive count"),
        (["profile", "--precision", "0"], "precision must be between 0 and 1"),
        (["profile", "--precision", "1.5"], "precision must be between 0 and 1"),
        (["profile", "--precision", "-0.01"], "precision must be between 0 and 1"),
        (["profile", "--precision", "nan"], "precision must be between 0 and 1"),
        (["profile", "--precision", "1%"], "--precision takes a fraction like 0.01"),
        (["profile", "--resolution", "16"], "resolution must be at least 32"),
        (["profile", "--resolution", "0"], "resolution must be at least 32"),
        (["profile", "--preset", "fast"], "unknown preset 'fast'"),
        (["profile", "--preset", "lsnet", "--device", "cpu"], "preset 'lsnet' runs on cuda"),
        (["profile", "--format", "xml"], "unknown format 'xml'"),
        (["profile", "--pin-cores", "a"], "--pin-cores takes core numbers"),
        (["profile", "--pin-cores", "99"], "cannot pin to core(s) 99"),
        (["profile", "--metrics", "speed"], "unknown metric 'speed'"),
        (["profile", "--metrics", ""], "no metric given"),
        (["profile", "--counters", "thop"], "unknown counter 'thop'"),
        (["profile", "--threads", "999"], "threads 999 is more than"),
        (["profile", "--threads", "0"], "threads must be at least 1"),
        (["profile", "--device", "tpu"], "unknown device 'tpu'"),
        (["profile", "--runtime", "tensorrt"], "unknown runtime 'tensorrt'"),
        (["profile", "--device", "onnxruntime", "--dtype", "fp16"], "runs the exported fp32 model"),
        (["profile", "--dtype", "fp64"], "unknown dtype 'fp64'"),
        (["profile", "--amp"], "amp needs dtype fp16 or bf16"),
        (["profile", "--batch", "1000000000"], "needs at least"),
        (["profile", "--resolution", "100000"], "needs at least"),
        (["profile", "--bogus"], "No such option: --bogus"),
        (["profile", "--out", "{blocker}/sub"], "cannot write results"),
        # profile --mode train / --isolate (issue 13)
        (["profile", "--mode", "fly"], "unknown mode 'fly'"),
        (["profile", "--mode", "train", "--optimizer", "adam"], "unknown optimizer 'adam'"),
        (["profile", "--optimizer", "sgd"], "an optimizer needs mode train"),
        (["profile", "--mode", "train", "--fused"], "train mode times the unfused"),
        (["profile", "--mode", "train", "--features-only"], "train mode trains the eager classifier"),
        (["profile", "--mode", "train", "--device", "onnxruntime"], "train mode trains the eager classifier"),
        (["profile", "--isolate", "--device", "tpu"], "unknown device 'tpu'"),
        (["profile", "--mode", "train", "--batch", "1000000000"], "needs at least"),
        # flops
        (["flops", "repvit_m09"], "did you mean repvit_m0_9"),
        (["flops", "lsnet_t", "--resolution", "8"], "resolution must be at least 32"),
        (["flops", "lsnet_t", "--resolution", "0"], "resolution must be at least 32"),
        (["flops", "lsnet_t", "--counters", "thop"], "unknown counter 'thop'"),
        (["flops", "lsnet_t", "--format", "xml"], "unknown format 'xml'"),
        (["flops"], "Missing argument 'model'"),
        # erf
        (["erf", "lsnet_x"], "unknown model 'lsnet_x'"),
        (["erf", "lsnet_t", "--size", "16"], "--size must be at least 32"),
        (["erf", "lsnet_t", "--num-images", "0"], "--num-images must be at least 1"),
        (["erf", "lsnet_t", "--images", "{root}/missing"], "does not exist"),
        (["erf", "lsnet_t", "--size", "5000"], "needs at least"),
        (["erf", "lsnet_t", "--checkpoint", "{root}/missing.pth"], "does not exist"),
        (["erf", "lsnet_t", "--format", "xml"], "unknown format 'xml'"),
        # eval
        (["eval", "lsnet_t", "--data", "{root}/missing"], "does not exist"),
        (["eval", "lsnet_t", "--data", "{data}", "--num-classes", "0"], "--num-classes must be at least 1"),
        (["eval", "lsnet_t", "--data", "{data}", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["eval", "lsnet_t", "--data", "{data}", "--checkpoint", "{root}/corrupt.pth"], "cannot read checkpoint"),
        (["eval", "lsnet_t", "--data", "{data}", "--checkpoint", "{ten}"], "would be scored with a random head"),
        (["eval", "lsnet_t", "--data", "{data}", "--interpolation", "foo"], "unknown interpolation 'foo'"),
        (["eval", "lsnet_t"], "Missing option '--data'"),
        # table
        (["table", "--results", "{root}/missing"], "no results in"),
        (["table", "--models", "nope_model"], "unknown model 'nope_model'"),
        (["table", "--deterministic", "--format", "xml"], "unknown format 'xml'"),
        # pareto
        (["pareto", "--results", "{root}/missing"], "no results in"),
        (["pareto", "--reported", "--device", "NVIDIA A100"], "no published throughput on 'NVIDIA A100'"),
        (["pareto", "--results", "{cpu}", "--metric", "flops"], "unknown x metric 'flops'"),
        (["pareto", "--results", "{cpu}", "--device", "NVIDIA A100"], "no measured latency on 'NVIDIA A100'"),
        (["pareto", "--results", "{cpu}", "--overlay"], "no published latency on X"),
        (["pareto", "--reported", "--beside-published"], "--beside-published draws measured throughput"),
        (["pareto", "--results", "{cpu}", "--beside-published", "--metric", "latency"], "it takes --results"),
        (["pareto", "--results", "{cpu}", "--beside-published"], "no measured throughput in the results"),
        # export
        (["export", "lsnet_t", "--format", ""], "no export format given"),
        (["export", "lsnet_t", "--format", "onnx,bogus"], "unknown export format 'bogus'"),
        (["export", "lsnet_t", "--resolution", "0"], "resolution must be at least 32"),
        (["export", "lsnet_t", "--batch", "0"], "batch must be at least 1"),
        (["export", "lsnet_x"], "unknown model 'lsnet_x'"),
        # scale
        (["scale", "--resolution", "224,abc"], "--resolution takes whole numbers like 224,320, got 'abc'"),
        (["scale", "--resolution", "224,16"], "resolution must be at least 32, got 16"),
        (["scale", "--resolution", ","], "--resolution takes a comma-separated list"),
        (["scale", "--batch", "1,0"], "batch must be at least 1, got 0"),
        (["scale", "--batch", "1,x"], "--batch takes whole numbers like 1,4,16, got 'x'"),
        (["scale", "--models", "lsnet_x"], "unknown model 'lsnet_x'"),
        (["scale", "--counter", "thop"], "unknown counter 'thop'"),
        # list, results
        (["list", "--format", "xml"], "unknown format 'xml'"),
        (["list", "--family", "nofamily"], "unknown family 'nofamily'"),
        (["results", "check", "{root}/missing"], "no results in"),
        (["nosuchcommand"], "No such command 'nosuchcommand'"),
    ]


CASES = _cases()


def test_the_goal_figure_holds():
    assert len(CASES) >= 40 and len({c[0][0] for c in CASES}) >= 9  # every command


def _run(argv, capsys):
    sys.stdin = io.StringIO("")
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


@pytest.mark.parametrize("argv, fragment", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(argv, fragment, env, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default --out folders land here and must not appear
    argv = [a.format(**env) for a in argv]
    if argv[0] in ("profile",) and "--out" not in argv:
        argv += ["--out", str(tmp_path / "results")]
    if argv[0] in ("erf", "export", "pareto", "table", "scale") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "made")]
    code, out, err = _run(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert not (tmp_path / "made").exists(), "a failed command left an output folder behind"
    assert not (tmp_path / "results" / "results.jsonl").exists(), "a failed command left a results file"


def test_skipped_files_are_one_warning_line(tmp_path):
    """An unreadable image among good ones: the run goes on, and says so in exactly one line."""
    data = tmp_path / "data"
    for cls in ("a", "b"):
        (data / cls).mkdir(parents=True)
        Image.new("RGB", (40, 40), (200, 10, 30)).save(data / cls / "x.png")
    (data / "a" / "broken.png").write_bytes(b"not an image")
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "lsbench.cli", "eval", "lsnet_t", "--data", str(data), "--workers",
                           "0", "--num-classes", "2"], env=env, capture_output=True, text=True, timeout=300)
    code, out, err = done.returncode, done.stdout, done.stderr
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: skipped 1 unreadable image file(s)"), err
    assert "on 2 images (1 unreadable skipped)" in out
