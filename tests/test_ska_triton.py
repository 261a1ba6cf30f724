"""The Triton SKA kernels (zoo/ska/triton.py) against zoo.ska's reference, forward and both gradients.

Two kinds of test:

* interpreter tests, which run everywhere: the kernels run under Triton's CPU interpreter in a subprocess
  (``TRITON_INTERPRET=1`` must be set before Triton is imported, and must not leak into this process), on small
  odd shapes, fp32 (plus fp16/bf16, strided and channels_last inputs);
* ``cuda``-marked tests (skipped without a GPU): the compiled kernels, installed as the CUDA implementation of
  ``zoo::ska``/``zoo::ska_backward``, in every dtype and layout, through autograd and torch.compile.

This module never imports zoo.ska.triton at import time, so collecting it imports no Triton kernels.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from zoo.ska import SKA, ska, ska_backward_reference, ska_reference
from zoo.ska.reference import out_format

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------------------------------------------
# interpreter (CPU) tests

_INTERP_WORKER = r'''
import json, os, sys
assert os.environ.get("TRITON_INTERPRET") == "1"
import torch
from zoo.ska import ska_reference, ska_backward_reference
from zoo.ska import triton as kt
from zoo.ska.reference import out_format as FMT
assert kt.INTERPRET

TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-3, 1e-3), torch.bfloat16: (8e-3, 8e-3),
       torch.float64: (1e-12, 1e-12)}

def check(x, w, go):
    """Compare with the float64 reference on the same (rounded) inputs; returns {quantity: error or None}."""
    rtol, atol = TOL[x.dtype]
    got = {"out": kt.ska_forward_triton(x, w)}
    got["grad_x"], got["grad_w"] = kt.ska_backward_triton(go, x, w)
    xd, wd, god = x.double(), w.double(), go.double()
    ref = {"out": ska_reference(xd, wd)}
    ref["grad_x"], ref["grad_w"] = ska_backward_reference(god, xd, wd)
    res = {}
    for q in ("out", "grad_x", "grad_w"):
        t = got[q]
        want_dtype = w.dtype if q == "grad_w" else x.dtype
        fmt = torch.contiguous_format if q == "grad_w" else FMT(x)
        if t.dtype != want_dtype or not t.is_contiguous(memory_format=fmt) or t.shape != ref[q].shape:
            res[q] = f"bad result tensor: {t.dtype} {tuple(t.shape)} strides {t.stride()}, want {fmt}"
            continue
        try:
            torch.testing.assert_close(t.double(), ref[q], rtol=rtol, atol=atol)
            res[q] = None
        except AssertionError as e:
            res[q] = str(e)
    return res

torch.manual_seed(0)
cases = {}
def inputs(shape, g, dtype=torch.float32):
    b, c, h, wd = shape
    return (torch.randn(shape).to(dtype), torch.randn(b, g, 9, h, wd).to(dtype), torch.randn(shape).to(dtype))

cl = torch.channels_last
def case(name, shape, g, dtype=torch.float32, layout=None, family=None, meta=None):
    x, w, go = inputs(shape, g, dtype)
    if layout == "channels_last":
        x, go = x.to(memory_format=cl), go.to(memory_format=cl)
    elif layout == "channels_last_x":
        x = x.to(memory_format=cl)
    got = kt.kernel_family(x, w, go)
    assert family is None or got == family, (name, got, family)
    kt.INTERPRET_META[got] = meta or {}
    cases[name] = check(x, w, go)
    kt.INTERPRET_META[got] = {}

# dense fast path (contiguous NCHW, C/G a power of two): odd sizes, batch 1, tiles across group boundaries
case("dense_2x16x5x7_g2", (2, 16, 5, 7), 2, family="dense")
case("dense_vec4_2x16x5x7_g2", (2, 16, 5, 7), 2, family="dense", meta={"BLOCK_N": 64, "VEC": 4})
case("dense_1x24x4x9_g3", (1, 24, 4, 9), 3, family="dense")
case("dense_cpg4_odd_1x12x3x11_g3", (1, 12, 3, 11), 3, family="dense", meta={"BLOCK_N": 16, "VEC": 2})
case("dense_one_pixel_1x8x1x1_g1", (1, 8, 1, 1), 1, family="dense")
case("dense_float16_2x16x5x7_g2", (2, 16, 5, 7), 2, torch.float16, family="dense")
case("dense_bfloat16_1x32x7x7_g4", (1, 32, 7, 7), 4, torch.bfloat16, family="dense", meta={"BLOCK_N": 64, "VEC": 2})
case("dense_float64_1x16x3x4_g2", (1, 16, 3, 4), 2, torch.float64, family="dense")
# strided kernels: channels_last, C/G not a power of two, C/G > 16 (split backward), strided views
case("strided_channels_last_2x16x5x7_g2", (2, 16, 5, 7), 2, layout="channels_last", family="strided")
case("strided_channels_last_bf16_1x32x7x7_g4", (1, 32, 7, 7), 4, torch.bfloat16, layout="channels_last",
     family="strided")
case("strided_channels_last_x_1x24x4x9_g3", (1, 24, 4, 9), 3, layout="channels_last_x", family="strided")
case("strided_cpg6_1x12x4x5_g2", (1, 12, 4, 5), 2, family="strided")
case("strided_split_1x40x3x3_g2", (1, 40, 3, 3), 2, family="strided")  # C/G = 20 > BLOCK_R: split backward
case("strided_float16_channels_last_2x16x5x7_g2", (2, 16, 5, 7), 2, torch.float16, layout="channels_last",
     family="strided")
xs = torch.randn(2, 16, 5, 14)[..., ::2]                      # strided view of x
ws = torch.randn(2, 5, 7, 9, 2).permute(0, 4, 3, 1, 2)        # w with permuted strides
gos = torch.randn(1, 1, 1, 1).expand(2, 16, 5, 7)              # stride-0 grad_out, as from out.sum()
assert kt.kernel_family(xs, ws, gos) == "strided"
cases["strided_non_contiguous_2x16x5x7_g2"] = check(xs, ws, gos)
print("RESULTS " + json.dumps(cases))
'''

INTERP_CASES = ["dense_2x16x5x7_g2", "dense_vec4_2x16x5x7_g2", "dense_1x24x4x9_g3", "dense_cpg4_odd_1x12x3x11_g3",
                "dense_one_pixel_1x8x1x1_g1", "dense_float16_2x16x5x7_g2", "dense_bfloat16_1x32x7x7_g4",
                "dense_float64_1x16x3x4_g2", "strided_channels_last_2x16x5x7_g2",
                "strided_channels_last_bf16_1x32x7x7_g4", "strided_channels_last_x_1x24x4x9_g3",
                "strided_cpg6_1x12x4x5_g2", "strided_split_1x40x3x3_g2",
                "strided_float16_channels_last_2x16x5x7_g2", "strided_non_contiguous_2x16x5x7_g2"]


@pytest.fixture(scope="module")
def interpreter_results() -> dict:
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", _INTERP_WORKER], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    if proc.returncode or not lines:
        pytest.fail(f"interpreter run failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][len("RESULTS "):])


@pytest.mark.parametrize("case", INTERP_CASES)
def test_interpreter_kernels_match_reference(interpreter_results, case):
    res = interpreter_results[case]
    failed = {q: msg for q, msg in res.items() if msg}
    assert not failed, f"{case}: " + "; ".join(f"{q}: {m}" for q, m in failed.items())


def test_cpu_path_does_not_load_the_triton_kernels():
    if "zoo.ska.triton" in sys.modules:
        pytest.skip("another test in this process installed the Triton kernels")
    x = torch.randn(1, 16, 5, 5, requires_grad=True)
    w = torch.randn(1, 2, 9, 5, 5, requires_grad=True)
    ska(x, w).sum().backward()
    assert "zoo.ska.triton" not in sys.modules


def _gpu_bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_ska_bench", ROOT / "benchmarks" / "gpu_ska.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_byte_arithmetic_and_help(capsys):
    bench = _gpu_bench_module()
    shape, g = (2048, 128, 14, 14), 16
    nx, nw = 2048 * 128 * 14 * 14, 2048 * 16 * 9 * 14 * 14
    assert bench.ska_numels(shape, g) == (nx, nw)
    assert bench.forward_bytes(shape, g, 4) == (nx + nw + nx) * 4  # x, w read; out written
    assert bench.backward_bytes(shape, g, 2) == (3 * nx + 2 * nw) * 2  # grad_out, x, w read; grad_x, grad_w written
    assert bench.tbps(2 * 10**12, 1000.0) == pytest.approx(2.0)
    assert bench.tbps(10**9, None) is None
    assert bench.peak_tbps("NVIDIA H100 80GB HBM3") == 3.35 and bench.peak_tbps("NVIDIA H200") == 4.8
    shapes = {(r["model"], r["shape"], r["groups"]) for r in bench.bench_shapes(["lsnet_t", "lsnet_b"], 2048)}
    assert shapes == {("lsnet_t", (2048, 128, 14, 14), 16), ("lsnet_t", (2048, 256, 7, 7), 32),
                      ("lsnet_b", (2048, 128, 28, 28), 16), ("lsnet_b", (2048, 256, 14, 14), 32),
                      ("lsnet_b", (2048, 384, 7, 7), 48)}
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0 and "--official" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.parse_args(["--dtypes", "fp8"])


# --------------------------------------------------------------------------------------------------------------
# CUDA tests

cuda = pytest.mark.cuda

SHAPES = [((2, 16, 5, 7), 2), ((1, 24, 4, 9), 3), ((1, 8, 1, 1), 1), ((1, 40, 3, 3), 2), ((1, 128, 14, 14), 16),
          ((3, 256, 7, 7), 32), ((2, 384, 7, 7), 48), ((2, 128, 28, 28), 16), ((1, 64, 56, 56), 8)]
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (1e-3, 1e-3), torch.bfloat16: (8e-3, 8e-3)}


@pytest.fixture(scope="module")
def kt():
    import zoo.ska
    from zoo.ska import triton as module

    assert zoo.ska.use_triton()
    return module


@pytest.fixture
def calls(kt, monkeypatch):
    """Count launches of the two Triton kernels (the registered op implementations call these)."""
    counts = {"forward": 0, "backward": 0}
    fwd, bwd = kt.launch_forward, kt.launch_backward

    def counting_fwd(*a, **k):
        counts["forward"] += 1
        return fwd(*a, **k)

    def counting_bwd(*a, **k):
        counts["backward"] += 1
        return bwd(*a, **k)

    monkeypatch.setattr(kt, "launch_forward", counting_fwd)
    monkeypatch.setattr(kt, "launch_backward", counting_bwd)
    return counts


def _inputs(shape, g, dtype=torch.float32, device="cuda"):
    b, c, h, wd = shape
    return (torch.randn(shape, device=device).to(dtype), torch.randn(b, g, 9, h, wd, device=device).to(dtype),
            torch.randn(shape, device=device).to(dtype))


def _check(kt, x, w, go):
    """Kernel (forward, grad_x, grad_w) against the float64 reference on the same inputs."""
    rtol, atol = TOL[x.dtype]
    out = kt.ska_forward_triton(x, w)
    gx, gw = kt.ska_backward_triton(go, x, w)
    xd, wd, god = x.double(), w.double(), go.double()
    ref_gx, ref_gw = ska_backward_reference(god, xd, wd)
    fmt = out_format(x)  # the layout the op's fake implementation promises, for out and grad_x
    assert out.is_contiguous(memory_format=fmt)
    for got, want, dtype in ((out, ska_reference(xd, wd), x.dtype), (gx, ref_gx, x.dtype), (gw, ref_gw, w.dtype)):
        assert got.dtype == dtype and got.shape == want.shape
        torch.testing.assert_close(got.double(), want, rtol=rtol, atol=atol)
    assert gx.is_contiguous(memory_format=fmt) and gw.is_contiguous()


def _ids(v):
    return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)


@cuda
@pytest.mark.parametrize("shape,g", SHAPES, ids=_ids)
def test_kernels_match_reference_fp32(kt, shape, g):
    _check(kt, *_inputs(shape, g))


@cuda
@pytest.mark.parametrize("shape,g", [SHAPES[0], SHAPES[3], SHAPES[4], SHAPES[6]], ids=_ids)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_kernels_match_reference_half(kt, shape, g, dtype):
    _check(kt, *_inputs(shape, g, dtype))


@cuda
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_every_autotune_config_is_correct(kt, layout):
    """Whichever configuration the autotuner picks on a given GPU, it computes the same thing."""
    x, w, go = _inputs((2, 128, 14, 14), 16)
    if layout == "channels_last":
        x, go = x.to(memory_format=torch.channels_last), go.to(memory_format=torch.channels_last)
    xd, wd = x.double(), w.double()
    ref_out = ska_reference(xd, wd)
    ref_gx, ref_gw = ska_backward_reference(go.double(), xd, wd)
    if layout == "nchw":
        assert kt.kernel_family(x, w, go) == "dense"
        family = kt.dense_configs()
    else:
        family = kt.prune_strided(kt.strided_configs(), {"sxc": x.stride(1), "G": 16, "H": 14, "W": 14})
    assert len(family) > 1
    fmt = out_format(x)
    for config in family:
        out = torch.empty(x.shape, device="cuda").contiguous(memory_format=fmt)
        gx = torch.empty(x.shape, device="cuda").contiguous(memory_format=fmt)
        gw = torch.empty(w.shape, device="cuda")
        kt.launch_forward(x, w, out, 16, config=config)
        kt.launch_backward(go, x, w, gx, gw, 16, config=config)
        for got, want in ((out, ref_out), (gx, ref_gx), (gw, ref_gw)):
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5, msg=lambda m: f"{config}: {m}")


@cuda
@pytest.mark.parametrize("shape,g", [((4, 128, 14, 14), 16), ((4, 256, 7, 7), 32), ((2, 128, 28, 28), 16),
                                     ((2, 384, 7, 7), 48)], ids=_ids)
def test_lsnet_shapes_take_the_dense_path(kt, shape, g):
    x, w, go = _inputs(shape, g)
    assert kt.kernel_family(x, w) == "dense" and kt.kernel_family(x, w, go) == "dense"
    _check(kt, x, w, go)


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_channels_last_and_non_contiguous(kt, dtype):
    cl = torch.channels_last
    x, w, go = _inputs((2, 128, 14, 14), 16, dtype)
    _check(kt, x.to(memory_format=cl), w, go.to(memory_format=cl))
    _check(kt, x.to(memory_format=cl), w, go)
    x, w, go = _inputs((2, 384, 7, 7), 48, dtype)  # G not a power of two
    _check(kt, x.to(memory_format=cl), w, go)
    xs = torch.randn(2, 16, 5, 14, device="cuda").to(dtype)[..., ::2]
    ws = torch.randn(2, 5, 7, 9, 2, device="cuda").to(dtype).permute(0, 4, 3, 1, 2)
    gos = torch.randn(1, 1, 1, 1, device="cuda").to(dtype).expand(2, 16, 5, 7)
    _check(kt, xs, ws, gos)


@cuda
def test_installed_op_runs_the_kernels_under_autograd(kt, calls):
    x, w, go = _inputs((2, 64, 9, 11), 8)
    x.requires_grad_()
    w.requires_grad_()
    out = SKA()(x, w)
    out.backward(go)
    assert calls == {"forward": 1, "backward": 1}
    xd, wd = x.detach().double(), w.detach().double()
    ref_gx, ref_gw = ska_backward_reference(go.double(), xd, wd)
    torch.testing.assert_close(out.double(), ska_reference(xd, wd), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), ref_gx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w.grad.double(), ref_gw, rtol=1e-5, atol=1e-5)


@cuda
def test_torch_compile_keeps_one_node_and_runs_the_kernel(kt, calls):
    import torch._dynamo

    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def f(x, w):
        return SKA()(x, w) * 2

    x, w, go = _inputs((2, 32, 7, 9), 4)
    torch._dynamo.reset()
    torch.compile(f, backend=capture, fullgraph=True)(x, w)
    targets = [str(n.target) for gm in graphs for n in gm.graph.nodes if n.op == "call_function"]
    assert sum("zoo.ska" in t for t in targets) == 1, targets

    torch._dynamo.reset()
    calls.update(forward=0, backward=0)
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = torch.compile(f, fullgraph=True)(xg, wg)
    out.backward(go)
    assert calls["forward"] >= 1 and calls["backward"] >= 1, calls
    xd, wd = x.double(), w.double()
    ref_gx, ref_gw = ska_backward_reference(2 * go.double(), xd, wd)
    torch.testing.assert_close(out.double(), 2 * ska_reference(xd, wd), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xg.grad.double(), ref_gx, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wg.grad.double(), ref_gw, rtol=1e-5, atol=1e-5)

    # channels_last x: the kernel's output layout must be the one the fake implementation promised to inductor
    torch._dynamo.reset()
    xc = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        out_cl = torch.compile(f, fullgraph=True)(xc, w)
    torch.testing.assert_close(out_cl.double(), 2 * ska_reference(xd, wd), rtol=1e-5, atol=1e-5)
    torch._dynamo.reset()


@cuda
def test_lsconv_on_cuda_matches_reference_route(kt, calls):
    from zoo.lsnet import LSConv
    from zoo.ska import reference_ska

    m = LSConv(64).cuda().eval()
    x = torch.randn(2, 64, 14, 14, device="cuda")
    with torch.no_grad():
        got = m(x)
        with reference_ska():
            want = m(x)
    assert calls["forward"] == 1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
