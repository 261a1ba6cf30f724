"""SKA in plain PyTorch: the definition every kernel is checked against.

    out[b, c, h, w] = sum_{i, j in 0..2} xpad[b, c, h+i, w+j] * w[b, c mod G, 3i+j, h, w]

x is (B, C, H, W); w is (B, G, 9, H, W) with G = C/8 in LSNet; channels c, c+G, c+2G, ... share one
kernel (the official channel map is interleaved, not contiguous). Zero padding 1, stride 1.

This module owns the shape rules (:func:`check_shapes`), the tap order (:func:`taps`), the channel
grouping (:func:`grouped`), the output layout (:func:`out_format`), the differentiable forward and the
closed-form backward, the functional decomposition compilers fuse, the export form mobile backends delegate
(:func:`ska_export`), and the cost (:func:`ska_macs`).
It imports nothing but torch, so every other SKA module (the op, the CPU form, the Triton kernels) can
depend on it without a circle.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

KERNEL_SIZE = 3
TAPS = KERNEL_SIZE * KERNEL_SIZE

__all__ = ["KERNEL_SIZE", "TAPS", "check_shapes", "taps", "grouped", "out_format", "ska_reference",
           "ska_backward_reference", "ska_decomposition", "ska_export", "ska_macs"]


def check_shapes(x: Tensor, w: Tensor) -> int:
    """Validate shapes and return G, the number of weight groups."""
    if x.dim() != 4 or w.dim() != 5:
        raise ValueError(f"SKA expects x (B,C,H,W) and w (B,G,9,H,W); got {tuple(x.shape)} and {tuple(w.shape)}")
    b, c, h, wd = x.shape
    g = w.shape[1]
    if w.shape[0] != b or w.shape[2] != TAPS or tuple(w.shape[3:]) != (h, wd):
        raise ValueError(f"SKA weight shape {tuple(w.shape)} does not match input {tuple(x.shape)}")
    if c % g:
        raise ValueError(f"SKA needs C ({c}) divisible by the weight groups G ({g})")
    return g


def taps() -> Iterator[tuple[int, int, int]]:
    """(k, i, j) for the nine taps in weight order: k = 3i + j, row offset i, column offset j (in xpad)."""
    for k in range(TAPS):
        i, j = divmod(k, KERNEL_SIZE)
        yield k, i, j


def grouped(t: Tensor, g: int) -> Tensor:
    """View (B, C, ...) as (B, C/G, G, ...): channel c = r*G + g, so g = c mod G."""
    return t.view(t.shape[0], t.shape[1] // g, g, *t.shape[2:])


def out_format(x: Tensor) -> torch.memory_format:
    """The op's output layout: channels-last for a channels-last x, else contiguous (every implementation,
    eager, fake and Triton, allocates its output this way)."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def ska_reference(x: Tensor, w: Tensor) -> Tensor:
    """SKA as nine shifted multiply-accumulates: differentiable, any device, no 9x unfold.

    Peak extra memory is one padded copy of x plus one output-sized temporary, instead of the
    (B, C, 9, H, W) tensor an unfold-based version materialises.
    """
    g = check_shapes(x, w)
    b, c, h, wd = x.shape
    xp = grouped(F.pad(x, (1, 1, 1, 1)), g)
    grad_needed = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
    out: Tensor | None = None
    for k, i, j in taps():
        xs, wk = xp[..., i:i + h, j:j + wd], w[:, :, k].unsqueeze(1)
        if out is None:
            out = xs * wk
        elif grad_needed:
            out = out + xs * wk
        else:
            out.addcmul_(xs, wk)
    return out.reshape(b, c, h, wd)


def ska_backward_reference(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients of SKA w.r.t. x and w, in closed form (the adjoint of the nine shifts)."""
    g = check_shapes(x, w)
    b, c, h, wd = x.shape
    go = grouped(grad_out.contiguous(), g)
    xp = grouped(F.pad(x, (1, 1, 1, 1)), g)
    grad_xp = torch.zeros_like(xp)
    grad_w = torch.empty_like(w)
    for k, i, j in taps():
        grad_xp[..., i:i + h, j:j + wd].addcmul_(go, w[:, :, k].unsqueeze(1))
        grad_w[:, :, k] = (go * xp[..., i:i + h, j:j + wd]).sum(dim=1)
    grad_x = grad_xp.view(b, c, h + 2, wd + 2)[..., 1:h + 1, 1:wd + 1]
    return grad_x.contiguous(), grad_w


def ska_decomposition(x: Tensor, w: Tensor) -> Tensor:
    """SKA in functional aten ops (no in-place), for compilers that should fuse it with its neighbours."""
    g = check_shapes(x, w)
    b, c, h, wd = x.shape
    xp = grouped(F.pad(x, (1, 1, 1, 1)), g)
    out = None
    for k, i, j in taps():
        term = xp[..., i:i + h, j:j + wd] * w[:, None, :, k]
        out = term if out is None else out + term
    return out.reshape(b, c, h, wd)


def ska_export(x: Tensor, w: Tensor) -> Tensor:
    """SKA for mobile exporters, in ops XNNPACK delegates: zero pad, stride-1 slices, static 4-D reshapes,
    broadcast multiply and add (no select, unsqueeze or expand, which ExecuTorch leaves on portable kernels).

    The same nine taps in the same order as :func:`ska_reference`; channels are viewed as (C/G, G) so one
    (1, G) tap weight broadcasts over the C/G channels that share it, all in 4-D (B, C/G, G, H*W).
    """
    g = check_shapes(x, w)
    b, c, h, wd = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    w4 = w.reshape(b, g, TAPS, h * wd)
    out = None
    for k, i, j in taps():
        xs = xp[:, :, i:i + h, j:j + wd].reshape(b, c // g, g, h * wd)
        term = xs * w4[:, :, k:k + 1].reshape(b, 1, g, h * wd)
        out = term if out is None else out + term
    return out.reshape(b, c, h, wd)


def ska_macs(x_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one SKA call: 9 per output element."""
    b, c, h, w = x_shape
    return TAPS * b * c * h * w
