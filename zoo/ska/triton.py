"""Triton kernels for SKA (``zoo::ska`` / ``zoo::ska_backward``) on CUDA.

Importing this module imports Triton, so nothing on the CPU path imports it: :func:`zoo.ska.use_triton` imports it
and registers :func:`ska_forward_triton` / :func:`ska_backward_triton` as the CUDA implementations of the custom
ops. The models keep calling :func:`zoo.ska.ska`; nothing else changes.

Two kernel families, chosen per call by :func:`kernel_family`:

* **dense** (the fast path: contiguous NCHW x, w and grad_out, C/G a power of two <= 16, as in every LSNet
  layer). One program covers ``BLOCK_N`` consecutive positions of the flattened ``n = (g, h, w)`` index of one
  image and all C/G channels sharing each position's kernel (channel ``c = r*G + g`` is at ``r*G*H*W + n``).
  G, C/G, H and W are ``constexpr`` (LSNet has a handful of shapes), so the pixel decode is a multiply by a
  constant and every tap is a constant offset from one pointer; the border masks come from four compares made
  once per program. The tile is ``[BLOCK_N, C/G]`` with n the fastest axis and every thread holding all C/G
  channels of its positions: the weight of a tap is loaded once per position and broadcast in registers, and
  the backward's grad_w (a sum over those channels) is a register sum. x, w and out offsets all go through
  ``(n // HW, n % HW)`` so that they share one contiguity and the compiler picks one layout for all of them:
  no layout conversion, no shared memory, no barrier, no shuffle and no loop in either kernel (budgeted by
  ``tests/test_ska_sass.py`` on the sm_90 binaries).
* **strided** (everything else: channels_last, sliced or expanded views, other C/G). Every tensor is addressed
  through its own strides. One program owns ``BLOCK_HW`` flattened pixels of one image for ``BLOCK_G`` groups
  and walks the C/G channels ``BLOCK_R`` at a time; NCHW tiles use ``BLOCK_G = 1``, channels_last tiles
  ``BLOCK_G > 1`` so that a warp reads consecutive channels. When C/G exceeds one block (``SPLIT_R``, never in
  LSNet) the backward carries nine grad_w accumulators across blocks.

Outputs are allocated in the layouts the ops' fake implementations promise, which ``torch.compile`` relies on:
out and grad_x as :func:`zoo.ska.reference.out_format` of x (channels_last for a channels_last x, else
contiguous), grad_w contiguous. Offsets within one sample are int32 (the batch offset is int64); a sample of
2**31 or more elements falls back to the PyTorch path. Arithmetic is fp32 for fp32/fp16/bf16 inputs (loads are
upcast, results rounded once on store), fp64 for fp64. grad_w's channel sum stays inside a program (no atomics):
results are deterministic for a given configuration.

Autotuning is small on purpose (two dense configurations, three strided ones per layout, keyed on the shape
and the layout): the first call for a new (shape, dtype, layout) times them; do that before capturing a CUDA
graph. Under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by the tests on machines without a GPU) the
autotuner is skipped and one fixed configuration is launched (``INTERPRET_META`` overrides it per family).
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import TAPS, check_shapes, out_format, ska_backward_reference, ska_reference

__all__ = ["ska_forward_triton", "ska_backward_triton", "launch_forward", "launch_backward", "kernel_family",
           "dense_configs", "strided_configs", "prune_strided", "autotuned", "INTERPRET", "INTERPRET_META"]

# Triton's CPU interpreter (TRITON_INTERPRET=1 set before Triton is imported): @triton.jit then returns
# interpreted functions, and the launchers skip the autotuner.
INTERPRET = bool(triton.knobs.runtime.interpret)

# Channels per program row block of the strided kernels: C/G is 8 in LSNet, so one block covers a whole group.
_MAX_BLOCK_R = 16
# The dense kernels hold all C/G channels of a position in each thread: up to this many.
_MAX_DENSE_CPG = 16
# Which axis of the dense kernels' [positions, channels] tile holds the positions. Where the compiler cannot
# prove positions contiguous (odd H*W) both axes look alike to its coalescing pass, and Triton 3.6 then makes
# axis 0 the fastest-varying one while later versions make the last axis fastest; positions must be that axis,
# or the channels are split across threads (shuffles and shared-memory layout conversions in every tap).
DENSE_N_AXIS = 0 if tuple(int(p) for p in triton.__version__.split(".")[:2]) < (3, 7) else 1


def dense_configs() -> list[triton.Config]:
    """The dense kernels' search space: VEC positions per thread (BLOCK_N = 32 * num_warps * VEC). Larger VEC
    means more loads in flight per thread against more registers (sm_90, fp32: forward 32/80, backward
    40/160 registers for VEC 1/4); the instruction count per output barely moves."""
    return [triton.Config({"BLOCK_N": 32 * nw * vec, "VEC": vec}, num_warps=nw, num_stages=1)
            for vec, nw in ((2, 4), (4, 4))]


def strided_configs() -> list[triton.Config]:
    """The strided kernels' search space: NCHW tiles (BLOCK_G = 1) and channels_last tiles (BLOCK_G > 1)."""
    nchw = [(1, 64, 2), (1, 128, 4), (1, 256, 8)]
    cl = [(16, 8, 4), (32, 8, 8), (8, 16, 4)]
    return [triton.Config({"BLOCK_G": g, "BLOCK_HW": hw}, num_warps=nw, num_stages=1) for g, hw, nw in nchw + cl]


def prune_strided(configs, named_args, **kwargs):
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


# Overrides of the interpreter's configuration, per family ("dense", "strided"); the tests use them.
INTERPRET_META: dict = {"dense": {}, "strided": {}}


def _interpret_meta(family: str, x: Tensor, g: int) -> dict:
    """The one configuration launched under the interpreter (no autotuning there: it is slow)."""
    h, w = x.shape[2:]
    if family == "dense":
        meta = {"BLOCK_N": 32, "VEC": 1}
    else:
        channels_last = x.stride(1) == 1 and g > 1
        meta = {"BLOCK_G": min(triton.next_power_of_2(g), 4) if channels_last else 1,
                "BLOCK_HW": min(triton.next_power_of_2(h * w), 32)}
    return {**meta, **INTERPRET_META[family]}


# --------------------------------------------------------------------------------------------------------------
# dense kernels (contiguous NCHW)


@triton.jit
def _dense_positions(BLOCK_N: tl.constexpr, VEC: tl.constexpr, G: tl.constexpr, H: tl.constexpr,
                     W: tl.constexpr):
    """This program's flat positions n = (g, h, w): x/out offsets within a channel row, w offsets of tap 0,
    pixel row and column, and the in-range mask."""
    HW: tl.constexpr = H * W
    n = tl.max_contiguous(tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N), VEC)
    g = n // HW
    hw = n % HW  # not n - g*HW, which folds back into n, whose contiguity w's offsets lack (a layout conversion)
    hh = hw // W
    ww = hw % W
    return g * HW + hw, g * (9 * HW) + hw, hh, ww, n < G * HW


@triton.jit
def _inside(ok, hh, ww, DI: tl.constexpr, DJ: tl.constexpr, H: tl.constexpr, W: tl.constexpr):
    """ok where pixel (hh + DI, ww + DJ) is inside the image: only the compares the tap needs."""
    if DI < 0:
        ok = ok & (hh > 0)
    if DI > 0:
        ok = ok & (hh < H - 1)
    if DJ < 0:
        ok = ok & (ww > 0)
    if DJ > 0:
        ok = ok & (ww < W - 1)
    return ok


@triton.jit
def _along_n(v, N_AXIS: tl.constexpr):
    """A per-position vector as a column of the [position, channel] tile (the tile's axes: see N_AXIS)."""
    if N_AXIS == 0:
        return v[:, None]
    else:
        return v[None, :]


@triton.jit
def _along_c(v, N_AXIS: tl.constexpr):
    """A per-channel vector as a row of the tile."""
    if N_AXIS == 0:
        return v[None, :]
    else:
        return v[:, None]


@triton.jit
def _dense_tile(BLOCK_N: tl.constexpr, VEC: tl.constexpr, G: tl.constexpr, CPG: tl.constexpr, H: tl.constexpr,
                W: tl.constexpr, N_AXIS: tl.constexpr):
    """Offsets of this program's [position, channel] tile in x/out (batch offset included), of tap 0 in w, the
    pixel rows/columns, and the in-range mask of the positions."""
    GHW: tl.constexpr = G * H * W
    xn, wn, hh, ww, n_ok = _dense_positions(BLOCK_N, VEC, G, H, W)
    b = tl.program_id(1).to(tl.int64)
    tile = b * (CPG * GHW) + _along_n(xn, N_AXIS) + _along_c(tl.arange(0, CPG) * GHW, N_AXIS)
    return tile, b * (9 * GHW) + wn, hh, ww, n_ok


@triton.jit
def _dense_fwd_tap(acc, x_t, w_t, n_ok, hh, ww, K: tl.constexpr, DI: tl.constexpr, DJ: tl.constexpr,
                   H: tl.constexpr, W: tl.constexpr, ACC: tl.constexpr, N_AXIS: tl.constexpr):
    """acc += x shifted by tap K * w_K: w_K is one value per position, broadcast over the channels in registers."""
    wk = tl.load(w_t + K * H * W, mask=n_ok, other=0.0).to(ACC)
    ok = _inside(n_ok, hh, ww, DI, DJ, H, W)
    xv = tl.load(x_t + (DI * W + DJ), mask=_along_n(ok, N_AXIS), other=0.0).to(ACC)
    return acc + xv * _along_n(wk, N_AXIS)


@triton.jit
def _ska_dense_fwd_kernel(x_ptr, w_ptr, out_ptr, G: tl.constexpr, CPG: tl.constexpr, H: tl.constexpr,
                          W: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr, VEC: tl.constexpr,
                          N_AXIS: tl.constexpr = DENSE_N_AXIS):
    tile, w_off, hh, ww, n_ok = _dense_tile(BLOCK_N, VEC, G, CPG, H, W, N_AXIS)
    x_t = x_ptr + tile
    w_t = w_ptr + w_off
    acc = _along_n(tl.zeros((BLOCK_N,), dtype=ACC), N_AXIS) + _along_c(tl.zeros((CPG,), dtype=ACC), N_AXIS)
    for k in tl.static_range(9):
        acc = _dense_fwd_tap(acc, x_t, w_t, n_ok, hh, ww, k, k // 3 - 1, k % 3 - 1, H, W, ACC, N_AXIS)
    tl.store(out_ptr + tile, acc.to(out_ptr.dtype.element_ty), mask=_along_n(n_ok, N_AXIS))


@triton.jit
def _dense_bwd_tap(gx, go, go_ptr, x_ptr, w_ptr, gw_ptr, tile, w_off, n_ok, hh, ww, K: tl.constexpr,
                   DI: tl.constexpr, DJ: tl.constexpr, H: tl.constexpr, W: tl.constexpr, ACC: tl.constexpr,
                   N_AXIS: tl.constexpr):
    """Tap K of the backward: stores grad_w[K] = sum over the channels of grad_out * x shifted by +d (complete:
    every channel of the group is in this thread), and returns grad_x + grad_out * w_K, both shifted by -d."""
    OFF: tl.constexpr = DI * W + DJ
    fwd_ok = _along_n(_inside(n_ok, hh, ww, DI, DJ, H, W), N_AXIS)
    xs = tl.load(x_ptr + tile + OFF, mask=fwd_ok, other=0.0).to(ACC)
    tl.store(gw_ptr + w_off + K * H * W, tl.sum(go * xs, axis=1 - N_AXIS).to(gw_ptr.dtype.element_ty), mask=n_ok)
    back = _inside(n_ok, hh, ww, -DI, -DJ, H, W)
    ws = tl.load(w_ptr + w_off + (K * H * W - OFF), mask=back, other=0.0).to(ACC)
    gs = tl.load(go_ptr + tile - OFF, mask=_along_n(back, N_AXIS), other=0.0).to(ACC)
    return gx + gs * _along_n(ws, N_AXIS)


@triton.jit
def _ska_dense_bwd_kernel(go_ptr, x_ptr, w_ptr, gx_ptr, gw_ptr, G: tl.constexpr, CPG: tl.constexpr,
                          H: tl.constexpr, W: tl.constexpr, ACC: tl.constexpr, BLOCK_N: tl.constexpr,
                          VEC: tl.constexpr, N_AXIS: tl.constexpr = DENSE_N_AXIS):
    """grad_x[c, p] = sum_k grad_out[c, p - d_k] * w_k[p - d_k];  grad_w[k, p] = sum_r grad_out[r, p] * x[r, p + d_k]
    with d_k = (k // 3 - 1, k % 3 - 1), over the flattened positions p of one image."""
    tile, w_off, hh, ww, n_ok = _dense_tile(BLOCK_N, VEC, G, CPG, H, W, N_AXIS)
    go = tl.load(go_ptr + tile, mask=_along_n(n_ok, N_AXIS), other=0.0).to(ACC)
    gx = go * 0.0
    for k in tl.static_range(9):
        gx = _dense_bwd_tap(gx, go, go_ptr, x_ptr, w_ptr, gw_ptr, tile, w_off, n_ok, hh, ww, k, k // 3 - 1,
                            k % 3 - 1, H, W, ACC, N_AXIS)
    tl.store(gx_ptr + tile, gx.to(gx_ptr.dtype.element_ty), mask=_along_n(n_ok, N_AXIS))


# --------------------------------------------------------------------------------------------------------------
# strided kernels (any strides)


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
                    ACC: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_HW: tl.constexpr):
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
        for k in tl.range(0, 9, loop_unroll_factor=1):  # a real loop: unrolling it costs registers, not time
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
                    SPLIT_R: tl.constexpr):
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


_BWD_KEY = ["B", "G", "CPG", "H", "W", "sxc", "sgc"]  # grad_out's layout matters too (channels_last or not)
_ska_dense_fwd_tuned = triton.autotune(configs=dense_configs(), key=["G", "CPG", "H", "W"], do_bench=_bench)(
    _ska_dense_fwd_kernel)
_ska_dense_bwd_tuned = triton.autotune(configs=dense_configs(), key=["G", "CPG", "H", "W"], do_bench=_bench)(
    _ska_dense_bwd_kernel)
_ska_fwd_tuned = triton.autotune(configs=strided_configs(), key=["B", "G", "CPG", "H", "W", "sxc"],
                                 prune_configs_by={"early_config_prune": prune_strided}, do_bench=_bench)(
    _ska_fwd_kernel)
_ska_bwd_tuned = triton.autotune(configs=strided_configs(), key=_BWD_KEY,
                                 prune_configs_by={"early_config_prune": prune_strided}, do_bench=_bench)(
    _ska_bwd_kernel)


# --------------------------------------------------------------------------------------------------------------
# launchers and op implementations


def _acc_dtype(*ts: Tensor):
    return tl.float64 if any(t.dtype == torch.float64 for t in ts) else tl.float32


def _block_r(cpg: int) -> int:
    return min(triton.next_power_of_2(cpg), _MAX_BLOCK_R)


def kernel_family(x: Tensor, w: Tensor, grad_out: Tensor | None = None) -> str:
    """"dense" where the fast path applies (contiguous NCHW x, w and grad_out; C/G a power of two up to
    16), else "strided"."""
    cpg = x.shape[1] // w.shape[1]
    dense = (x.is_contiguous() and w.is_contiguous() and (grad_out is None or grad_out.is_contiguous())
             and cpg == triton.next_power_of_2(cpg) and cpg <= _MAX_DENSE_CPG)
    return "dense" if dense else "strided"


def _launch(family: str, kernels: tuple, x: Tensor, g: int, tensors: tuple[Tensor, ...],
            config: triton.Config | None, **constexprs) -> None:
    """Launch one kernel of ``family`` (``kernels`` = (autotuned, plain)), autotuned unless ``config`` is given
    or the interpreter runs."""
    tuned, plain = kernels
    b, c, h, w = x.shape
    if family == "dense":
        args = tensors
        constexprs.update(G=g, CPG=c // g, H=h, W=w)

        def grid(meta):
            return (triton.cdiv(g * h * w, meta["BLOCK_N"]), b)
    else:
        args = (*tensors, b, g, c // g, h, w, *(s for t in tensors for s in t.stride()))

        def grid(meta):
            return (b * triton.cdiv(g, meta["BLOCK_G"]) * triton.cdiv(h * w, meta["BLOCK_HW"]),)

    with contextlib.ExitStack() as stack:
        if x.device.type == "cuda" and x.device.index != torch.cuda.current_device():
            stack.enter_context(torch.cuda.device(x.device))  # Triton launches on the current device
        if INTERPRET or config is not None:  # one fixed configuration, no autotuning
            meta = _interpret_meta(family, x, g) if config is None else config.all_kwargs()
            plain[grid(meta)](*args, **constexprs, **meta)
        else:
            tuned[grid](*args, **constexprs)


def launch_forward(x: Tensor, w: Tensor, out: Tensor, g: int, config: triton.Config | None = None) -> str:
    """Run the forward kernel into ``out``; returns the family used. ``config`` skips autotuning."""
    family = kernel_family(x, w)
    if family == "dense":
        _launch(family, (_ska_dense_fwd_tuned, _ska_dense_fwd_kernel), x, g, (x, w, out), config,
                ACC=_acc_dtype(x, w))
    else:
        _launch(family, (_ska_fwd_tuned, _ska_fwd_kernel), x, g, (x, w, out), config, ACC=_acc_dtype(x, w),
                BLOCK_R=_block_r(x.shape[1] // g))
    return family


def launch_backward(grad_out: Tensor, x: Tensor, w: Tensor, grad_x: Tensor, grad_w: Tensor, g: int,
                    config: triton.Config | None = None) -> str:
    """Run the backward kernel into ``grad_x`` and ``grad_w``; returns the family used."""
    family = kernel_family(x, w, grad_out)
    acc = _acc_dtype(grad_out, x, w)
    tensors = (grad_out, x, w, grad_x, grad_w)
    if family == "dense":
        if not grad_x.is_contiguous():
            raise ValueError("the dense backward writes a contiguous grad_x")
        _launch(family, (_ska_dense_bwd_tuned, _ska_dense_bwd_kernel), x, g, tensors, config, ACC=acc)
    else:
        cpg = x.shape[1] // g
        _launch(family, (_ska_bwd_tuned, _ska_bwd_kernel), x, g, tensors, config, ACC=acc,
                BLOCK_R=_block_r(cpg), SPLIT_R=cpg > _block_r(cpg))
    return family


def autotuned() -> dict:
    """What the autotuners chose so far: {kernel name: {key: config}} (for benchmark records)."""
    tuners = {"dense_forward": _ska_dense_fwd_tuned, "dense_backward": _ska_dense_bwd_tuned,
              "strided_forward": _ska_fwd_tuned, "strided_backward": _ska_bwd_tuned}
    return {name: {str(k): str(v) for k, v in t.cache.items()} for name, t in tuners.items()}


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
        launch_forward(x, w, out, g)
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
        launch_backward(grad_out, x, w, grad_x, grad_w, g)
    return grad_x, grad_w


assert TAPS == 9  # the kernels hard-code the 3x3 taps
