"""The ``zoo::ska`` torch custom op and :func:`ska`, the single SKA dispatch point every model calls.

The op makes FLOP counters, ``torch.compile`` and tracing see SKA as one operator with a known cost. Its
implementation is pure PyTorch: on the CPU the nine multiply-adds of :mod:`zoo.ska.reference` laid out for long
contiguous loops (flattened padded rows for NCHW, or directly on channels-last input, whose output stays
channels-last); elsewhere :func:`~zoo.ska.reference.ska_reference`. A GPU kernel is registered for CUDA through
:func:`register_cuda_kernel`; :func:`use_triton` does that with the Triton kernels of :mod:`zoo.ska.triton`,
imported only then, so the CPU path never imports Triton. Exporters that cannot carry a custom op (ONNX,
ExecuTorch) run under :func:`reference_ska`, which routes :func:`ska` to the decomposition directly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .reference import KERNEL_SIZE, TAPS, check_shapes, out_format, ska_backward_reference, ska_reference, taps

__all__ = ["SKA", "ska", "reference_ska", "register_cuda_kernel", "use_triton"]


def _ska_flat(x: Tensor, w: Tensor, g: int) -> Tensor:
    """Forward SKA (no autograd) on NCHW: the same nine multiply-adds as :func:`ska_reference`, in the same
    order, but each tap is one contiguous slice of the padded map flattened to (H+3)*(W+2), so every
    multiply-add runs over long contiguous rows (two junk columns per row are computed and dropped)."""
    b, c, h, wd = x.shape
    w2 = wd + 2
    n = h * w2
    xp = F.pad(x.contiguous(), (1, 1, 1, 2)).view(b, c // g, g, -1)  # one extra zero row for the last taps
    w_taps = F.pad(w.contiguous(), (0, 2)).view(b, 1, g, TAPS, n).unbind(3)
    out = xp.narrow(3, 0, n) * w_taps[0]  # operators, not torch.mul: ptflops patches the functions
    for k, i, j in taps():
        if k:
            out.addcmul_(xp.narrow(3, i * w2 + j, n), w_taps[k])
    return out.view(b, c, h, w2).narrow(3, 0, wd).contiguous()


def _ska_nhwc(x: Tensor, w: Tensor, g: int) -> Tensor:
    """Forward SKA (no autograd) on a channels-last x; the result is channels-last. Same taps, same order."""
    b, c, h, wd = x.shape
    xp = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
    rows = xp.permute(0, 2, 3, 1).view(b, h + 2, wd + 2, c // g, g)
    rows = rows.unfold(1, KERNEL_SIZE, 1).unfold(2, KERNEL_SIZE, 1)  # (B, H, W, C/G, G, 3, 3) windows
    w_taps = w.permute(0, 3, 4, 2, 1).contiguous().view(b, h, wd, TAPS, 1, g).unbind(3)  # (B, H, W, 1, G) each
    shifted = [xs for row in rows.unbind(-2) for xs in row.unbind(-1)]  # tap k = 3i + j: (B, H, W, C/G, G)
    out = shifted[0] * w_taps[0]
    for k in range(1, TAPS):
        out.addcmul_(shifted[k], w_taps[k])
    return out.view(b, h, wd, c).permute(0, 3, 1, 2)


@torch.library.custom_op("zoo::ska", mutates_args=())
def _ska_op(x: Tensor, w: Tensor) -> Tensor:
    with torch.no_grad():
        return ska_reference(x, w).contiguous(memory_format=out_format(x))


@_ska_op.register_kernel("cpu")
def _ska_cpu(x: Tensor, w: Tensor) -> Tensor:
    g = check_shapes(x, w)
    with torch.no_grad():
        if out_format(x) is torch.channels_last:
            return _ska_nhwc(x, w, g)
        return _ska_flat(x, w, g)


@_ska_op.register_fake
def _ska_fake(x: Tensor, w: Tensor) -> Tensor:
    check_shapes(x, w)
    return x.new_empty(x.shape).contiguous(memory_format=out_format(x))


@torch.library.custom_op("zoo::ska_backward", mutates_args=())
def _ska_backward_op(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    grad_x, grad_w = ska_backward_reference(grad_out, x, w)
    return grad_x.contiguous(memory_format=out_format(x)), grad_w


@_ska_backward_op.register_fake
def _ska_backward_fake(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """grad_x in x's layout (as the forward's output), grad_w contiguous: what every implementation returns."""
    return x.new_empty(x.shape).contiguous(memory_format=out_format(x)), w.new_empty(w.shape)


def _setup_context(ctx, inputs, output) -> None:
    x, w = inputs
    ctx.save_for_backward(x, w)


def _backward(ctx, grad_out: Tensor):
    x, w = ctx.saved_tensors
    grad_x, grad_w = torch.ops.zoo.ska_backward(grad_out, x, w)
    return grad_x, grad_w


_ska_op.register_autograd(_backward, setup_context=_setup_context)

_use_reference = False


@contextlib.contextmanager
def reference_ska() -> Iterator[None]:
    """Route :func:`ska` to the plain PyTorch decomposition (for exporters that need stock ops)."""
    global _use_reference
    previous, _use_reference = _use_reference, True
    try:
        yield
    finally:
        _use_reference = previous


def ska(x: Tensor, w: Tensor) -> Tensor:
    """The single SKA dispatch point used by every model."""
    if _use_reference or torch.jit.is_scripting():
        return ska_reference(x, w)
    return torch.ops.zoo.ska(x, w)


def register_cuda_kernel(forward: Callable[[Tensor, Tensor], Tensor],
                         backward: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]] | None = None) -> None:
    """Install a GPU implementation of the ``zoo::ska`` ops for CUDA tensors (e.g. a Triton kernel)."""
    _ska_op.register_kernel("cuda")(forward)
    if backward is not None:
        _ska_backward_op.register_kernel("cuda")(backward)


def use_triton() -> bool:
    """Register the Triton kernels (:mod:`zoo.ska.triton`) as ``zoo::ska``'s CUDA implementation.

    Imported only here, on request: the CPU path never imports Triton. Idempotent. Returns False where
    Triton or CUDA is unavailable, so callers can fall back to the PyTorch path."""
    global _triton_registered
    if not torch.cuda.is_available():
        return False
    try:
        from . import triton as kernels
    except ImportError:
        return False
    if not _triton_registered:
        register_cuda_kernel(kernels.ska_forward_triton, kernels.ska_backward_triton)
        _triton_registered = True
    return True


_triton_registered = False


class SKA(nn.Module):
    """Small-kernel aggregation module, called as ``SKA()(x, w)`` like the official one."""

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return ska(x, w)
