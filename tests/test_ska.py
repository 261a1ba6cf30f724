"""SKA against the official rule (float64 loop reference from the official code's definition)."""
import pytest
import torch
import torch.nn.functional as F

from zoo.ska import SKA, reference_ska, ska, ska_macs, ska_reference


def _loop_ska(x, w):
    """Independent reference: the defining sum written with unfold (small sizes only)."""
    b, c, h, wd = x.shape
    g = w.shape[1]
    cols = F.unfold(x, 3, padding=1).view(b, c, 9, h, wd)
    kernel = w[:, torch.arange(c) % g]  # channel c uses kernel group c mod G
    return (cols * kernel).sum(2)


def test_matches_conformance_case(data_dir):
    case = torch.load(data_dir / "ska_case.pt", weights_only=True)
    x = case["x"].clone().requires_grad_()
    w = case["w"].clone().requires_grad_()
    out = SKA()(x, w)
    out.backward(case["grad_out"])
    torch.testing.assert_close(out, case["out"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, case["grad_x"], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(w.grad, case["grad_w"], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,groups", [((1, 8, 7, 5), 1), ((3, 24, 4, 9), 3), ((2, 16, 1, 1), 2)])
def test_odd_shapes_match_unfold_reference(shape, groups):
    x = torch.randn(*shape, dtype=torch.float64)
    w = torch.randn(shape[0], groups, 9, *shape[2:], dtype=torch.float64)
    torch.testing.assert_close(ska(x, w), _loop_ska(x, w))


def test_gradcheck_through_custom_op():
    x = torch.randn(2, 8, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 9, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ska, (x, w))


def test_channels_last_and_non_contiguous_inputs():
    x = torch.randn(2, 16, 6, 6).to(memory_format=torch.channels_last)
    w = torch.randn(2, 2, 9, 6, 6)
    expected = _loop_ska(x.contiguous(), w)
    torch.testing.assert_close(ska(x, w), expected, rtol=1e-5, atol=1e-5)
    wide = torch.randn(2, 16, 6, 12)[..., ::2]  # strided view
    torch.testing.assert_close(ska(wide, w), _loop_ska(wide.contiguous(), w), rtol=1e-5, atol=1e-5)


def test_reference_route_is_op_free_and_equal():
    x, w = torch.randn(1, 16, 5, 5), torch.randn(1, 2, 9, 5, 5)
    with reference_ska():
        graph = torch.jit.trace(lambda a, b: ska(a, b), (x, w)).graph
    assert "zoo::ska" not in str(graph)
    torch.testing.assert_close(ska(x, w), ska_reference(x, w))


def test_fake_tensor_shape_for_compile_and_export():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        out = torch.ops.zoo.ska(torch.empty(2, 16, 5, 7), torch.empty(2, 2, 9, 5, 7))
    assert out.shape == (2, 16, 5, 7)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="divisible"):
        ska(torch.randn(1, 10, 4, 4), torch.randn(1, 3, 9, 4, 4))
    with pytest.raises(ValueError, match="does not match"):
        ska(torch.randn(1, 8, 4, 4), torch.randn(1, 1, 9, 4, 5))


def test_macs_formula():
    assert ska_macs((2, 16, 5, 6)) == 9 * 2 * 16 * 5 * 6
