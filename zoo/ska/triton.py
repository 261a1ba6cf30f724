"""Triton kernels for SKA (``zoo::ska`` / ``zoo::ska_backward``) on CUDA.

Importing this module imports Triton, so nothing on the CPU path imports it: :func:`zoo.ska.use_triton` imports it
and registers the two launchers as the CUDA implementations of the custom ops, only when running on a GPU. The models keep calling :func:`zoo.ska.ska`; nothing else changes.

Tiling. One program owns a flattened spatial tile of ``BLOCK_HW`` pixels of one image ``b`` for ``BLOCK_G``
consecutive weight groups, and walks the ``C/G`` channels that share each group (channel ``c = r*G + g``, the
official interleaved ``c mod G`` map) ``BLOCK_R`` at a time (``BLOCK_R = min(next_pow2(C/G), 16)``: all 8 of
LSNet's in one block). The tile is a ``[BLOCK_R, BLOCK_G, BLOCK_HW]`` block: each tap's per-pixel weight is
loaded once as ``[1, BLOCK_G, BLOCK_HW]`` and broadcast over the ``BLOCK_R`` channels that share it. x is read
with its one-pixel halo through masked loads (``other=0`` is the zero padding), so there is no padded copy; the
shifted re-reads of a tile hit L1/L2. For NCHW inputs ``BLOCK_G = 1`` (pixels are the contiguous axis); for
channels_last inputs the autotuner only offers ``BLOCK_G > 1``, so that a warp reads consecutive channels.
``UNROLL`` (1, 3 or 9) sets how many of the nine taps are unrolled: more loads in flight per thread against
more registers (48 / 72 / 166 registers for the fp32 forward on sm_90) and fewer resident programs.

Every tensor is addressed through its own strides, so NCHW, channels_last, sliced/strided views and expanded
(stride-0) ``grad_out`` work without copies. Outputs are allocated in the layouts the ops' fake implementations
promise, which ``torch.compile`` relies on: out as ``zoo.ska.out_format(x)`` (channels_last for a channels_last
x, else contiguous), grad_x and grad_w contiguous. Offsets within one sample are int32
(the batch offset is int64); a sample of 2**31 or more elements falls back to the PyTorch path.

Arithmetic is fp32 for fp32/fp16/bf16 inputs (loads are upcast, results are rounded once on store); fp64 inputs
are computed in fp64. The backward is one fused kernel: per tile it reads grad_out, x and w and writes grad_x
and grad_w; grad_w's sum over a group's ``C/G`` channels stays inside the program (no atomics). When ``C/G``
exceeds one block (``SPLIT_R``, never in LSNet) a slower variant carries nine grad_w accumulators across blocks.

The first call for a new (shape, dtype, layout) autotunes (a few short timing runs); do that before capturing a
CUDA graph. Under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by the tests on machines without a GPU)
the autotuner is skipped and one fixed configuration is launched (``INTERPRET_META`` overrides it).
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import TAPS, check_shapes, out_format, ska_backward_reference, ska_reference

__all__ = ["ska_forward_triton", "ska_backward_triton", "INTERPRET"]

# Triton's CPU interpreter (TRITON_INTERPRET=1 set before Triton is imported): @triton.jit then returns
# interpreted functions, and the launchers skip the autotuner.
INTERPRET = bool(triton.knobs.runtime.interpret)

# Channels per program row block: C/G is 8 in LSNet, so one block covers a whole group.
_MAX_BLOCK_R = 16


def _configs() -> list[triton.Config]:
    """A small search space: NCHW tiles (BLOCK_G = 1) and channels_last tiles (BLOCK_G > 1), with UNROLL = 1, 3
    or 9 of the nine taps unrolled (more loads in flight and more registers, against more programs resident)."""
    nchw = [(1, 64, 2, 1), (1, 128, 4, 1), (1, 256, 8, 1), (1, 64, 2, 3), (1, 128, 4, 3), (1, 64, 2, 9)]
    cl = [(16, 8, 4, 1), (32, 8, 8, 1), (8, 16, 4, 1), (16, 8, 4, 3)]
    return [triton.Config({"BLOCK_G": g, "BLOCK_HW": hw, "UNROLL": unroll}, num_warps=nw, num_stages=1)
            for g, hw, nw, unroll in nchw + cl]


def _prune(configs, named_args, **kwargs):
    """Keep the family that matches x's layout, and drop tiles much larger than the image or the group count."""
    channels_last = named_args["sxc"] == 1 and named_args["G"] > 1
    hw = named_args["H"] * named_args["W"]
    family = [c for c in configs if (c.kwargs["BLOCK_G"] > 1) == channels_last]
    small = [c for c in family if c.kwargs["BLOCK_HW"] <= max(triton.next_power_of_2(hw), 32)
             and c.kwargs["BLOCK_G"] <= max(triton.next_power_of_2(named_args["G"]), 8)]
    return small or family[:1]


def _bench(kernel_call, quantiles):
    """Autotuning timer: shorter than Triton's default (25 ms warm-up, 100 ms of reps) to keep first calls cheap."""
    import triton.testing

    return triton.testing.do_bench(kernel_call, warmup=5, rep=25, quantiles=quantiles)


def _tuned(fn):
    return triton.autotune(configs=_configs(), key=["B", "G", "CPG", "H", "W", "sxc"],
                           prune_configs_by={"early_config_prune": _prune}, do_bench=_bench)(fn)


# Overrides of the interpreter's configuration (tests set UNROLL to run both tap-loop variants).
INTERPRET_META: dict = {}


def _interpret_meta(x: Tensor, g: int, h: int, w: int) -> dict:
    """The one configuration launched under the interpreter (no autotuning there: it is slow)."""
    channels_last = x.stride(1) == 1 and g > 1
    meta = {"BLOCK_G": min(triton.next_power_of_2(g), 4) if channels_last else 1,
            "BLOCK_HW": min(triton.next_power_of_2(h * w), 32), "UNROLL": 1}
    return {**meta, **INTERPRET_META}


# --------------------------------------------------------------------------------------------------------------
# kernels


@triton.jit
def _tile(pid, G, H, W, BLOCK_G: tl.constexpr, BLOCK_HW: tl.constexpr):
    """Decode a program id into (b, 3-D group index, 3-D pixel rows/cols, masks)."""
    n_tiles = tl.cdiv(H * W, BLOCK_HW)
    n_gblocks = tl.cdiv(G, BLOCK_G)
    tile = pid % n_tiles
    rest = pid // n_tiles
    gb = rest % n_gblocks
    b = rest // n_gblocks
    hw = tile * BLOCK_HW + tl.arange(0, BLOCK_HW)
    hw_ok = hw < H * W
    hh = (hw // W)[None, None, :]
    ww = (hw % W)[None, None, :]
    g = gb * BLOCK_G + tl.arange(0, BLOCK_G)
    g_ok = (g < G)[None, :, None]
    return b.to(tl.int64), g[None, :, None], hh, ww, g_ok & hw_ok[None, None, :]


@triton.jit
def _shifted(base, off, hh, ww, DI, DJ, H, W, sh, sw, m, ACC: tl.constexpr):
    """Load base[off + (hh+DI)*sh + (ww+DJ)*sw] where that pixel is inside the image (zero padding elsewhere)."""
    hs = hh + DI
    ws = ww + DJ
    ok = m & (hs >= 0) & (hs < H) & (ws >= 0) & (ws < W)
    return tl.load(base + (off + hs * sh + ws * sw), mask=ok, other=0.0).to(ACC)


@triton.jit
def _fwd_tap(acc, k, x_b, xoff, w_base, hh, ww, H, W, sxh, sxw, swk, m, m_gh, ACC: tl.constexpr):
    """acc += x shifted by tap k * w_k (w_k is loaded once and shared by the BLOCK_R channel rows)."""
    wk = tl.load(w_base + k * swk, mask=m_gh, other=0.0).to(ACC)
    return acc + _shifted(x_b, xoff, hh, ww, k // 3 - 1, k % 3 - 1, H, W, sxh, sxw, m, ACC) * wk


@triton.jit
def _gx_tap(gx, k, go_b, goff, w_b, hh, ww, H, W, sgh, sgw, swk, swh, sww, m, m_gh, ACC: tl.constexpr):
    """grad_x += grad_out * w_k, both read at the pixel shifted back by tap k."""
    di = k // 3 - 1
    dj = k % 3 - 1
    wk = _shifted(w_b, k * swk, hh, ww, -di, -dj, H, W, swh, sww, m_gh, ACC)
    return gx + _shifted(go_b, goff, hh, ww, -di, -dj, H, W, sgh, sgw, m, ACC) * wk


@triton.jit
def _bwd_tap(gx, go, k, go_b, goff, x_b, xoff, w_b, dw, hh, ww, H, W, sgh, sgw, sxh, sxw, swk, swh, sww, sdwk,
             m, m_gh, ACC: tl.constexpr):
    """One tap of the single-block backward: returns grad_x's running sum, and stores grad_w's tap k, which is
    complete because all the group's channels are in this block."""
    gx = _gx_tap(gx, k, go_b, goff, w_b, hh, ww, H, W, sgh, sgw, swk, swh, sww, m, m_gh, ACC)
    xv = _shifted(x_b, xoff, hh, ww, k // 3 - 1, k % 3 - 1, H, W, sxh, sxw, m, ACC)
    tl.store(dw + k * sdwk, tl.sum(go * xv, axis=0, keep_dims=True).to(dw.dtype.element_ty), mask=m_gh)
    return gx


@triton.jit
def _ska_fwd_kernel(x_ptr, w_ptr, out_ptr,
                    B, G, CPG, H, W,
                    sxb, sxc, sxh, sxw,
                    swb, swg, swk, swh, sww,
                    sob, soc, soh, sow,
                    ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_HW: tl.constexpr,
                    UNROLL: tl.constexpr):
    b, g, hh, ww, m_gh = _tile(tl.program_id(0), G, H, W, BLOCK_G, BLOCK_HW)
    w_base = w_ptr + b * swb + g * swg + hh * swh + ww * sww  # [1, BG, HW]
    x_b = x_ptr + b * sxb
    o_b = out_ptr + b * sob
    for r0 in range(0, CPG, BLOCK_R):
        r = (r0 + tl.arange(0, BLOCK_R))[:, None, None]
        c = r * G + g  # [BR, BG, 1]: channel c = r*G + g uses kernel group g
        m = m_gh & (r < CPG)
        xoff = c * sxc
        acc = tl.zeros((BLOCK_R, BLOCK_G, BLOCK_HW), dtype=ACC)
        # UNROLL taps are unrolled (their loads in flight together); the rest is a real loop (fewer registers)
        if UNROLL == 9:
            for k in tl.static_range(9):
                acc = _fwd_tap(acc, k, x_b, xoff, w_base, hh, ww, H, W, sxh, sxw, swk, m, m_gh, ACC)
        elif UNROLL == 3:
            for i in tl.range(0, 3, loop_unroll_factor=1):
                for j in tl.static_range(3):
                    acc = _fwd_tap(acc, 3 * i + j, x_b, xoff, w_base, hh, ww, H, W, sxh, sxw, swk, m, m_gh, ACC)
        else:
            for k in tl.range(0, 9, loop_unroll_factor=1):
                acc = _fwd_tap(acc, k, x_b, xoff, w_base, hh, ww, H, W, sxh, sxw, swk, m, m_gh, ACC)
        tl.store(o_b + (c * soc + hh * soh + ww * sow), acc.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, DI: tl.constexpr, DJ: tl.constexpr):
    """sum over the channel rows of grad_out * x shifted by (DI, DJ): one tap of grad_w, [1, BLOCK_G, BLOCK_HW]."""
    xv = _shifted(x_b, xoff, hh, ww, DI, DJ, H, W, sxh, sxw, m, go.dtype)
    return tl.sum(go * xv, axis=0, keep_dims=True)


@triton.jit
def _ska_bwd_kernel(go_ptr, x_ptr, w_ptr, gx_ptr, gw_ptr,
                    B, G, CPG, H, W,
                    sgb, sgc, sgh, sgw,
                    sxb, sxc, sxh, sxw,
                    swb, swg, swk, swh, sww,
                    sdxb, sdxc, sdxh, sdxw,
                    sdwb, sdwg, sdwk, sdwh, sdww,
                    ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_HW: tl.constexpr,
                    UNROLL: tl.constexpr, SPLIT_R: tl.constexpr):
    """grad_x[c, h, w] = sum_k grad_out[c, h - di, w - dj] * w_k[h - di, w - dj]
    grad_w[k, h, w]    = sum over the group's channels c of grad_out[c, h, w] * x[c, h + di, w + dj]
    with (di, dj) = (k // 3 - 1, k % 3 - 1)."""
    b, g, hh, ww, m_gh = _tile(tl.program_id(0), G, H, W, BLOCK_G, BLOCK_HW)
    w_b = w_ptr + b * swb + g * swg
    go_b = go_ptr + b * sgb
    x_b = x_ptr + b * sxb
    gx_b = gx_ptr + b * sdxb
    dw = gw_ptr + b * sdwb + g * sdwg + hh * sdwh + ww * sdww
    ty = gw_ptr.dtype.element_ty
    if not SPLIT_R:
        # the whole group's C/G channels are one block: grad_w's tap k is complete inside the tap loop
        r = tl.arange(0, BLOCK_R)[:, None, None]
        c = r * G + g
        m = m_gh & (r < CPG)
        goff = c * sgc
        xoff = c * sxc
        go = tl.load(go_b + (goff + hh * sgh + ww * sgw), mask=m, other=0.0).to(ACC)
        gx = tl.zeros((BLOCK_R, BLOCK_G, BLOCK_HW), dtype=ACC)
        if UNROLL == 9:
            for k in tl.static_range(9):
                gx = _bwd_tap(gx, go, k, go_b, goff, x_b, xoff, w_b, dw, hh, ww, H, W, sgh, sgw, sxh, sxw,
                              swk, swh, sww, sdwk, m, m_gh, ACC)
        elif UNROLL == 3:
            for i in tl.range(0, 3, loop_unroll_factor=1):
                for j in tl.static_range(3):
                    gx = _bwd_tap(gx, go, 3 * i + j, go_b, goff, x_b, xoff, w_b, dw, hh, ww, H, W, sgh, sgw, sxh,
                                  sxw, swk, swh, sww, sdwk, m, m_gh, ACC)
        else:
            for k in tl.range(0, 9, loop_unroll_factor=1):
                gx = _bwd_tap(gx, go, k, go_b, goff, x_b, xoff, w_b, dw, hh, ww, H, W, sgh, sgw, sxh, sxw,
                              swk, swh, sww, sdwk, m, m_gh, ACC)
        tl.store(gx_b + (c * sdxc + hh * sdxh + ww * sdxw), gx.to(gx_ptr.dtype.element_ty), mask=m)
    else:
        # C/G > BLOCK_R: loop over channel blocks, one grad_w accumulator per tap carried across the loop
        a0 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a1 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a2 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a3 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a4 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a5 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a6 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a7 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        a8 = tl.zeros((1, BLOCK_G, BLOCK_HW), dtype=ACC)
        for r0 in range(0, CPG, BLOCK_R):
            r = (r0 + tl.arange(0, BLOCK_R))[:, None, None]
            c = r * G + g
            m = m_gh & (r < CPG)
            goff = c * sgc
            gx = tl.zeros((BLOCK_R, BLOCK_G, BLOCK_HW), dtype=ACC)
            for k in tl.static_range(9):
                gx = _gx_tap(gx, k, go_b, goff, w_b, hh, ww, H, W, sgh, sgw, swk, swh, sww, m, m_gh, ACC)
            tl.store(gx_b + (c * sdxc + hh * sdxh + ww * sdxw), gx.to(gx_ptr.dtype.element_ty), mask=m)
            go = tl.load(go_b + (goff + hh * sgh + ww * sgw), mask=m, other=0.0).to(ACC)
            xoff = c * sxc
            a0 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, -1, -1)
            a1 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, -1, 0)
            a2 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, -1, 1)
            a3 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 0, -1)
            a4 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 0, 0)
            a5 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 0, 1)
            a6 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 1, -1)
            a7 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 1, 0)
            a8 += _x_tap_dot(x_b, xoff, m, go, hh, ww, H, W, sxh, sxw, 1, 1)
        tl.store(dw, a0.to(ty), mask=m_gh)
        tl.store(dw + sdwk, a1.to(ty), mask=m_gh)
        tl.store(dw + 2 * sdwk, a2.to(ty), mask=m_gh)
        tl.store(dw + 3 * sdwk, a3.to(ty), mask=m_gh)
        tl.store(dw + 4 * sdwk, a4.to(ty), mask=m_gh)
        tl.store(dw + 5 * sdwk, a5.to(ty), mask=m_gh)
        tl.store(dw + 6 * sdwk, a6.to(ty), mask=m_gh)
        tl.store(dw + 7 * sdwk, a7.to(ty), mask=m_gh)
        tl.store(dw + 8 * sdwk, a8.to(ty), mask=m_gh)


_ska_fwd_tuned = _tuned(_ska_fwd_kernel)
_ska_bwd_tuned = _tuned(_ska_bwd_kernel)


# --------------------------------------------------------------------------------------------------------------
# launchers and op implementations


def _acc_dtype(*ts: Tensor):
    return tl.float64 if any(t.dtype == torch.float64 for t in ts) else tl.float32


def _block_r(cpg: int) -> int:
    return min(triton.next_power_of_2(cpg), _MAX_BLOCK_R)


def _launch(tuned, plain, x: Tensor, g: int, tensors: tuple[Tensor, ...], config: triton.Config | None,
            **constexprs) -> None:
    b, c, h, w = x.shape
    scalars = (b, g, c // g, h, w)
    strides = [s for t in tensors for s in t.stride()]

    def grid(meta):
        return (b * triton.cdiv(g, meta["BLOCK_G"]) * triton.cdiv(h * w, meta["BLOCK_HW"]),)

    with contextlib.ExitStack() as stack:
        if x.device.type == "cuda" and x.device.index != torch.cuda.current_device():
            stack.enter_context(torch.cuda.device(x.device))  # Triton launches on the current device
        if INTERPRET or config is not None:  # one fixed configuration, no autotuning
            meta = _interpret_meta(x, g, h, w) if config is None else config.all_kwargs()
            plain[grid(meta)](*tensors, *scalars, *strides, **constexprs, **meta)
        else:
            tuned[grid](*tensors, *scalars, *strides, **constexprs)


def _launch_forward(x: Tensor, w: Tensor, out: Tensor, g: int, config: triton.Config | None = None) -> None:
    _launch(_ska_fwd_tuned, _ska_fwd_kernel, x, g, (x, w, out), config, ACC=_acc_dtype(x, w),
            BLOCK_R=_block_r(x.shape[1] // g))


def _launch_backward(grad_out: Tensor, x: Tensor, w: Tensor, grad_x: Tensor, grad_w: Tensor, g: int,
                     config: triton.Config | None = None) -> None:
    cpg = x.shape[1] // g
    _launch(_ska_bwd_tuned, _ska_bwd_kernel, x, g, (grad_out, x, w, grad_x, grad_w), config,
            ACC=_acc_dtype(grad_out, x, w), BLOCK_R=_block_r(cpg), SPLIT_R=cpg > _block_r(cpg))


def _check_inputs(*ts: Tensor) -> None:
    dev = ts[0].device
    if any(t.device != dev for t in ts):
        raise ValueError(f"SKA tensors are on different devices: {[str(t.device) for t in ts]}")
    if not INTERPRET and dev.type != "cuda":
        raise ValueError(f"the Triton SKA kernels need CUDA tensors, got {dev}")


def _fits_int32(*ts: Tensor) -> bool:
    """The kernels index within one sample in int32 (the batch offset is int64): true when that is safe."""
    return all(sum((n - 1) * abs(s) for n, s in zip(t.shape[1:], t.stride()[1:])) < 2**31 for t in ts)


def ska_forward_triton(x: Tensor, w: Tensor) -> Tensor:
    """``zoo::ska`` on CUDA: out = SKA(x, w) in x's dtype and in the op's output layout (contiguous, or
    channels_last for a channels_last x, as ``zoo.ska``'s fake implementation says)."""
    g = check_shapes(x, w)
    _check_inputs(x, w)
    fmt = out_format(x)
    if not _fits_int32(x, w):  # a single sample of 2**31 elements: not worth a kernel variant
        with torch.no_grad():
            return ska_reference(x, w).to(x.dtype).contiguous(memory_format=fmt)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=fmt)
    if out.numel():
        _launch_forward(x, w, out, g)
    return out


def ska_backward_triton(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """``zoo::ska_backward`` on CUDA: (grad_x in x's layout as the op's fake says, grad_w contiguous), in x's and
    w's dtypes."""
    g = check_shapes(x, w)
    if grad_out.shape != x.shape:
        raise ValueError(f"SKA grad_out shape {tuple(grad_out.shape)} does not match input {tuple(x.shape)}")
    _check_inputs(grad_out, x, w)
    if not _fits_int32(grad_out, x, w):
        grad_x, grad_w = ska_backward_reference(grad_out, x, w)
        return grad_x.to(x.dtype).contiguous(memory_format=out_format(x)), grad_w.to(w.dtype).contiguous()
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=out_format(x))
    grad_w = torch.empty(w.shape, dtype=w.dtype, device=w.device)
    if grad_x.numel():
        _launch_backward(grad_out, x, w, grad_x, grad_w, g)
    return grad_x, grad_w


assert TAPS == 9  # the kernels hard-code the 3x3 taps
