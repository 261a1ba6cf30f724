"""SKA implementations side by side: the zoo op (nine shifted multiply-adds) against a straightforward
unfold-based version (what a plain-PyTorch port of the official kernel does), forward and backward.

Shapes are LSNet-T's LSConv inputs at 224 (stage 2: 128 x 14 x 14, stage 3: 256 x 7 x 7) and a stage-1
style map (64 x 28 x 28)."""
import pytest
import torch
import torch.nn.functional as F

from zoo.ska import ska, ska_reference

SHAPES = [(1, 64, 28, 28), (1, 128, 14, 14), (1, 256, 7, 7), (16, 128, 14, 14)]


def ska_unfold(x, w):
    """Straightforward SKA: materialise the (B, C, 9, H, W) neighbourhood, then weight and sum."""
    b, c, h, wd = x.shape
    g = w.shape[1]
    cols = F.unfold(x, 3, padding=1).view(b, c // g, g, 9, h, wd)
    return (cols * w[:, None]).sum(3).view(b, c, h, wd)


def _inputs(shape, grad=False):
    b, c, h, w = shape
    x = torch.randn(shape, requires_grad=grad)
    wt = torch.randn(b, c // 8, 9, h, w, requires_grad=grad)
    return x, wt


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", [ska, ska_reference, ska_unfold], ids=["zoo_op", "reference", "unfold"])
def test_ska_forward(benchmark, impl, shape):
    x, w = _inputs(shape)
    torch.testing.assert_close(impl(x, w), ska_unfold(x, w), rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        benchmark(impl, x, w)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("impl", [ska, ska_unfold], ids=["zoo_op", "unfold"])
def test_ska_forward_backward(benchmark, impl, shape):
    x, w = _inputs(shape, grad=True)
    g = torch.randn(shape)

    def step():
        x.grad = w.grad = None
        impl(x, w).backward(g)

    benchmark(step)
