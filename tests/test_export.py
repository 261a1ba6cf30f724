"""Export to mobile formats (ONNX, ExecuTorch .pte, TFLite, Core ML) and on-host mobile-runtime timing."""
from __future__ import annotations

import contextlib
import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from lsbench import export as lx
from lsbench import mobile, runtimes
from lsbench.errors import LsbenchError

import custom_ops  # noqa: F401  (tests/custom_ops.py registers lsbench_test::twice)
from lsbench.export import DEFAULT_TOL, export_model
from zoo.ska import SKA

HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None
HAS_COREMLTOOLS = importlib.util.find_spec("coremltools") is not None
HAS_LITERT = importlib.util.find_spec("litert_torch") is not None
needs_executorch = pytest.mark.skipif(not HAS_EXECUTORCH, reason="executorch not installed (lsbench[mobile])")

TINY = (1, 3, 32, 32)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class TinySKANet(nn.Module):
    """Conv stem, a dynamic-kernel SKA layer (weights from a 1x1 conv, G = C/8 groups), linear head."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.g = c // 8
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU())
        self.kernel = nn.Conv2d(c, self.g * 9, 1)
        self.ska = SKA()
        self.head = nn.Linear(c, 10)

    def forward(self, x):
        x = self.stem(x)
        b, _, h, w = x.shape
        y = self.ska(x, self.kernel(x).view(b, self.g, 9, h, w)) + x
        return self.head(y.mean((2, 3)))


def tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


def randomize_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN/GN statistics and affine params, so zero-initialised branches are not silently zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)):
                n = m.weight.numel()
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                    m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
    return model


@pytest.fixture(scope="module")
def mnv3_onnx(tmp_path_factory):
    import timm

    model = timm.utils.reparameterize_model(randomize_norms(timm.create_model("mobilenetv3_small_100")).eval())
    return export_model(model, "mobilenetv3_small_100", "onnx", tmp_path_factory.mktemp("onnx"), (1, 3, 128, 128))


# --------------------------------------------------------------------------- ONNX

def test_onnx_real_model_parity_and_checker(mnv3_onnx):
    import onnx

    r = mnv3_onnx
    assert r.path.is_file() and r.path.suffix == ".onnx" and r.format == "onnx"
    onnx.checker.check_model(str(r.path), full_check=True)
    assert not r.path.with_name(r.path.name + ".data").exists()  # weights are embedded: one file
    assert r.checked and r.passed and r.max_rel_err <= DEFAULT_TOL
    assert r.max_abs_err <= r.max_rel_err * r.output_scale * (1 + 1e-9)
    assert r.details["opset"] == lx.ONNX_OPSET and r.check_runtime.startswith("onnxruntime")
    assert r.size_bytes == r.path.stat().st_size and len(r.sha256) == 64
    assert r.as_dict()["path"] == str(r.path)


def test_ska_model_exported_under_reference_matches_eager(tmp_path):
    model = TinySKANet().eval()
    # the eager model really goes through the custom op that exporters cannot carry
    gm = torch.export.export(model, (torch.randn(TINY),)).graph_module
    assert any("zoo.ska" in str(n.target) for n in gm.graph.nodes)
    r = export_model(model, "tiny_ska", "onnx", tmp_path, TINY)
    assert r.passed and r.max_rel_err <= DEFAULT_TOL


def test_lsnet_t_onnx_parity(tmp_path):
    from zoo import create_model, reparameterize

    model = reparameterize(randomize_norms(create_model("lsnet_t")).eval())
    r = export_model(model, "lsnet_t", "onnx", tmp_path)
    assert r.passed and r.max_rel_err <= DEFAULT_TOL, r


def test_torchscript_exporter_option(tmp_path):
    r = export_model(tiny_conv(), "tiny", "onnx", tmp_path, TINY, onnx_exporter="torchscript")
    assert r.passed and r.details["opset"] == lx.TORCHSCRIPT_OPSET


def test_parity_failure_raises_naming_model_format_and_error(tmp_path, monkeypatch):
    real = runtimes.open_runner

    @contextlib.contextmanager
    def off_by_one(*args, **kwargs):
        with real(*args, **kwargs) as (call, runtime):
            yield (lambda x: [o + 1.0 for o in call(x)]), runtime

    monkeypatch.setattr(lx, "open_runner", off_by_one)
    with pytest.raises(LsbenchError, match=r"tiny: onnx parity check failed: max_rel_err") as info:
        export_model(tiny_conv(), "tiny", "onnx", tmp_path, TINY)
    assert "\n" not in str(info.value)
    assert info.value.result.passed is False and info.value.result.path.exists()


def test_no_check(tmp_path):
    r = export_model(tiny_conv(), "tiny", "onnx", tmp_path, TINY, check=False)
    assert not r.checked and r.passed is None and r.max_abs_err is None and r.path.exists()


# --------------------------------------------------------------------------- user errors

@pytest.mark.parametrize("kwargs, message", [
    (dict(fmt="tflite2"), "unknown export format 'tflite2'"),
    (dict(fmt="onnx", input_size=(3, 224, 224)), "input_size must be 4 positive ints"),
    (dict(fmt="onnx", onnx_exporter="jit"), "unknown ONNX exporter 'jit'"),
    (dict(fmt="pte", opset=17), "opset applies to ONNX export only"),
    (dict(fmt="onnx", name="///"), "cannot make a file name"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    args = dict(model=tiny_conv(), name="tiny", out_dir=tmp_path) | kwargs
    with pytest.raises(LsbenchError, match=message):
        export_model(**args)


def test_training_mode_model_is_refused(tmp_path):
    with pytest.raises(LsbenchError, match="training mode"):
        export_model(tiny_conv().train(), "tiny", "onnx", tmp_path, TINY)


@pytest.mark.parametrize("fmt", ["onnx", pytest.param("pte", marks=needs_executorch)])
def test_export_failure_is_one_line(tmp_path, fmt):
    class CustomOp(nn.Module):  # a custom op without an ONNX translation or ExecuTorch kernel
        def forward(self, x):
            return torch.ops.lsbench_test.twice(x)

    with pytest.raises(LsbenchError, match=f"^bad: {fmt} export failed: ") as info:
        export_model(CustomOp().eval(), "bad", fmt, tmp_path, TINY)
    assert "\n" not in str(info.value)


@pytest.mark.skipif(HAS_LITERT, reason="litert-torch is installed")
def test_tflite_without_litert_names_the_extra(tmp_path):
    with pytest.raises(LsbenchError, match=r"install lsbench\[litert\]"):
        export_model(tiny_conv(), "tiny", "tflite", tmp_path, TINY)


def test_missing_coremltools_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import fails as if not installed
    with pytest.raises(LsbenchError, match=r"install lsbench\[coreml\]"):
        export_model(tiny_conv(), "tiny", "coreml", tmp_path, TINY)


# --------------------------------------------------------------------------- ExecuTorch

@needs_executorch
def test_pte_ska_model_parity_and_timing(tmp_path):
    r = export_model(TinySKANet().eval(), "tiny_ska", "pte", tmp_path, TINY)
    assert r.path.suffix == ".pte" and r.passed and r.max_rel_err <= DEFAULT_TOL
    assert r.details["xnnpack_delegates"] >= 1 and r.check_runtime.startswith("executorch")
    samples = mobile.time_executorch(r.path, TINY, threads=1, warmup=1, repeats=3)
    assert len(samples) >= 3 and all(s > 0 for s in samples)
    _, info = mobile.time_artifact(r.path, TINY, threads=1, warmup=0, repeats=1)
    assert info["threads"] == 1 and info["threadpool_threads"] == 1  # the pool really ran with 1 thread
    with pytest.raises(LsbenchError, match="exported for input"):
        mobile.time_executorch(r.path, (1, 3, 64, 64), warmup=0, repeats=1)


@needs_executorch
@pytest.mark.slow
def test_pte_real_model_parity(tmp_path):
    import timm

    model = timm.utils.reparameterize_model(randomize_norms(timm.create_model("mobilenetv3_small_100")).eval())
    r = export_model(model, "mobilenetv3_small_100", "pte", tmp_path, (1, 3, 128, 128))
    assert r.passed and r.max_rel_err <= DEFAULT_TOL
    assert r.details["xnnpack_delegates"] >= 1


@needs_executorch
@pytest.mark.slow
def test_pte_lsnet_t_parity(tmp_path):
    from zoo import create_model, reparameterize

    model = reparameterize(randomize_norms(create_model("lsnet_t")).eval())
    r = export_model(model, "lsnet_t", "pte", tmp_path)
    assert r.passed and r.max_rel_err <= DEFAULT_TOL, r


# --------------------------------------------------------------------------- Core ML

@pytest.mark.skipif(not HAS_COREMLTOOLS, reason="coremltools not installed")
@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS the check runs")
def test_coreml_off_macos_is_recorded_unchecked(tmp_path):
    r = export_model(tiny_conv(), "tiny", "coreml", tmp_path, TINY)
    assert r.path.is_dir() and r.path.suffix == ".mlpackage" and r.size_bytes > 0
    assert r.checked is False and r.passed is None and r.max_rel_err is None
    assert "macOS" in r.check_note
    assert lx.artifact_digest(r.path) == (r.size_bytes, r.sha256)


# --------------------------------------------------------------------------- helpers and timing

def test_compare_outputs_scale():
    ref = torch.tensor([[0.001, -0.002]])
    abs_err, rel_err, scale = lx.compare_outputs(ref, [ref.numpy() + 1e-7])
    assert scale == pytest.approx(0.002) and abs_err == pytest.approx(1e-7, rel=1e-3)
    assert rel_err == pytest.approx(5e-5, rel=1e-3)
    assert lx.compare_outputs(ref, [np.full((1, 2), np.nan, np.float32)])[1] == float("inf")
    with pytest.raises(LsbenchError, match="outputs"):
        lx.compare_outputs((ref, ref), [ref])


def test_directory_digest_is_deterministic(tmp_path):
    d = tmp_path / "m.mlpackage"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(b"abc")
    (d / "sub" / "b.json").write_bytes(b"{}")
    size, digest = lx.artifact_digest(d)
    assert size == 5 and lx.artifact_digest(d)[1] == digest
    (d / "a.bin").write_bytes(b"abd")
    assert lx.artifact_digest(d)[1] != digest


def test_time_onnxruntime(mnv3_onnx):
    samples = mobile.time_onnxruntime(mnv3_onnx.path, (1, 3, 128, 128), threads=1, warmup=1, repeats=5)
    assert len(samples) >= 5 and all(0 < s < 10 for s in samples)
    with pytest.raises(LsbenchError, match="exported for input"):
        mobile.time_onnxruntime(mnv3_onnx.path, (1, 3, 224, 224), warmup=0, repeats=1)
    with pytest.raises(LsbenchError, match="threads"):
        mobile.time_onnxruntime(mnv3_onnx.path, (1, 3, 128, 128), threads=0)
    samples, info = mobile.time_artifact(mnv3_onnx.path, (1, 3, 128, 128), warmup=0, repeats=2)
    assert info["runtime"] == "onnxruntime" and info["threads"] == 1 and len(samples) >= 2


def test_runtime_info_and_format_errors(tmp_path):
    info = runtimes.runtime_info("onnx", threads=2)
    assert info["runtime"] == "onnxruntime" and info["version"] and info["threads"] == 2
    if HAS_EXECUTORCH:
        info = runtimes.runtime_info("pte")
        assert info["runtime"] == "executorch" and info["backend_available"] is True
    with pytest.raises(LsbenchError, match="unknown format"):
        runtimes.runtime_info("pt")
    with pytest.raises(LsbenchError, match="cannot tell the format"):
        runtimes.format_of(tmp_path / "m.bin")
    with pytest.raises(LsbenchError, match="Core ML runs only on Apple"):
        mobile.time_artifact(tmp_path / "m.mlpackage")
    with pytest.raises(LsbenchError, match="no exported model"):
        mobile.time_onnxruntime(tmp_path / "missing.onnx")
