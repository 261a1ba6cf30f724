"""SKA, small-kernel aggregation: LSNet's per-pixel dynamic 3x3 convolution.

    out[b, c, h, w] = sum_{i, j in 0..2} xpad[b, c, h+i, w+j] * w[b, c mod G, 3i+j, h, w]

x is (B, C, H, W); w is (B, G, 9, H, W) with G = C/8 in LSNet; channels c, c+G, c+2G, ... share one
kernel (the official channel map is interleaved, not contiguous). Zero padding 1, stride 1.

There is one dispatch point, :func:`ska`. It calls the ``zoo::ska`` torch custom op, so that FLOP
counters, ``torch.compile`` and tracing see SKA as one operator with a known cost. The op's
implementation is pure PyTorch: on the CPU the same nine multiply-adds laid out for long contiguous
loops (flattened padded rows for NCHW, or directly on channels-last input, whose output stays
channels-last); elsewhere :func:`ska_reference`. A GPU kernel (Triton) can be
registered for CUDA through :func:`register_cuda_kernel` without touching the models. Exporters
that cannot carry a custom op (ONNX, ExecuTorch) run under :func:`reference_ska`, which routes
:func:`ska` to the decomposition directly.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KERNEL_SIZE = 3
TAPS = KERNEL_SIZE * KERNEL_SIZE

__all__ = ["SKA", "ska", "ska_reference", "ska_backward_reference", "reference_ska", "register_cuda_kernel",
           "use_triton", "ska_macs"]


def _check_shapes(x: Tensor, w: Tensor) -> int:
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


def _taps() -> Iterator[tuple[int, int, int]]:
    for k in range(TAPS):
        i, j = divmod(k, KERNEL_SIZE)
        yield k, i, j


def _grouped(t: Tensor, g: int) -> Tensor:
    """View (B, C, ...) as (B, C/G, G, ...): channel c = r*G + g, so g = c mod G."""
    return t.view(t.shape[0], t.shape[1] // g, g, *t.shape[2:])


def ska_reference(x: Tensor, w: Tensor) -> Tensor:
    """SKA as nine shifted multiply-accumulates: differentiable, any device, no 9x unfold.

    Peak extra memory is one padded copy of x plus one output-sized temporary, instead of the
    (B, C, 9, H, W) tensor an unfold-based version materialises.
    """
    g = _check_shapes(x, w)
    b, c, h, wd = x.shape
    xp = _grouped(F.pad(x, (1, 1, 1, 1)), g)
    grad_needed = torch.is_grad_enabled() and (x.requires_grad or w.requires_grad)
    out: Tensor | None = None
    for k, i, j in _taps():
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
    g = _check_shapes(x, w)
    b, c, h, wd = x.shape
    go = _grouped(grad_out.contiguous(), g)
    xp = _grouped(F.pad(x, (1, 1, 1, 1)), g)
    grad_xp = torch.zeros_like(xp)
    grad_w = torch.empty_like(w)
    for k, i, j in _taps():
        grad_xp[..., i:i + h, j:j + wd].addcmul_(go, w[:, :, k].unsqueeze(1))
        grad_w[:, :, k] = (go * xp[..., i:i + h, j:j + wd]).sum(dim=1)
    grad_x = grad_xp.view(b, c, h + 2, wd + 2)[..., 1:h + 1, 1:wd + 1]
    return grad_x.contiguous(), grad_w


def _out_format(x: Tensor) -> torch.memory_format:
    """The op's output layout: channels-last for a channels-last x, else contiguous (eager and fake agree)."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _ska_flat(x: Tensor, w: Tensor, g: int) -> Tensor:
    """Forward SKA (no autograd) on NCHW: the same nine multiply-adds as :func:`ska_reference`, in the same
    order, but each tap is one contiguous slice of the padded map flattened to (H+3)*(W+2), so every
    multiply-add runs over long contiguous rows (two junk columns per row are computed and dropped)."""
    b, c, h, wd = x.shape
    w2 = wd + 2
    n = h * w2
    xp = F.pad(x.contiguous(), (1, 1, 1, 2)).view(b, c // g, g, -1)  # one extra zero row for the last taps
    taps = F.pad(w.contiguous(), (0, 2)).view(b, 1, g, TAPS, n).unbind(3)
    out = xp.narrow(3, 0, n) * taps[0]  # operators, not torch.mul: ptflops patches the functions
    for k, i, j in _taps():
        if k:
            out.addcmul_(xp.narrow(3, i * w2 + j, n), taps[k])
    return out.view(b, c, h, w2).narrow(3, 0, wd).contiguous()


def _ska_nhwc(x: Tensor, w: Tensor, g: int) -> Tensor:
    """Forward SKA (no autograd) on a channels-last x; the result is channels-last. Same taps, same order."""
    b, c, h, wd = x.shape
    xp = F.pad(x, (1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
    rows = xp.permute(0, 2, 3, 1).view(b, h + 2, wd + 2, c // g, g)
    rows = rows.unfold(1, KERNEL_SIZE, 1).unfold(2, KERNEL_SIZE, 1)  # (B, H, W, C/G, G, 3, 3) windows
    taps = w.permute(0, 3, 4, 2, 1).contiguous().view(b, h, wd, TAPS, 1, g).unbind(3)  # (B, H, W, 1, G) each
    shifted = [xs for row in rows.unbind(-2) for xs in row.unbind(-1)]  # tap k = 3i + j: (B, H, W, C/G, G)
    out = shifted[0] * taps[0]
    for k in range(1, TAPS):
        out.addcmul_(shifted[k], taps[k])
    return out.view(b, h, wd, c).permute(0, 3, 1, 2)


@torch.library.custom_op("zoo::ska", mutates_args=())
def _ska_op(x: Tensor, w: Tensor) -> Tensor:
    with torch.no_grad():
        return ska_reference(x, w).contiguous(memory_format=_out_format(x))


@_ska_op.register_kernel("cpu")
def _ska_cpu(x: Tensor, w: Tensor) -> Tensor:
    g = _check_shapes(x, w)
    with torch.no_grad():
        if _out_format(x) is torch.channels_last:
            return _ska_nhwc(x, w, g)
        return _ska_flat(x, w, g)


@_ska_op.register_fake
def _ska_fake(x: Tensor, w: Tensor) -> Tensor:
    _check_shapes(x, w)
    return x.new_empty(x.shape).contiguous(memory_format=_out_format(x))


@torch.library.custom_op("zoo::ska_backward", mutates_args=())
def _ska_backward_op(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    return ska_backward_reference(grad_out, x, w)


@_ska_backward_op.register_fake
def _ska_backward_fake(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    return x.new_empty(x.shape), w.new_empty(w.shape)


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
    """Install the Triton kernels (zoo.ska_triton) as zoo::ska's CUDA implementation.

    Imported only here, on request: the CPU path never imports Triton. Returns False where Triton or CUDA
    is unavailable, so callers can fall back to the PyTorch path."""
    if not torch.cuda.is_available():
        return False
    try:
        from . import ska_triton
    except ImportError:
        return False
    ska_triton.install()
    return True


def ska_macs(x_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one SKA call: 9 per output element."""
    b, c, h, w = x_shape
    return TAPS * b * c * h * w


class SKA(nn.Module):
    """Small-kernel aggregation module, called as ``SKA()(x, w)`` like the official one."""

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return ska(x, w)
