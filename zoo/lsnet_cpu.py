"""LSNet's CPU inference form: the deploy (BN-fused) model rewritten for fast eager batch-1 CPU inference.

:func:`optimize_for_inference` returns a separate module computing the same function as
``zoo.reparameterize(model)`` (outputs within 1e-5 relative); the LSNet class, its state_dict and its
numerics are untouched. What it changes, measured with ``benchmarks/cpu_speed.py``:

* Activations stay channels-last (NHWC) end to end, so every 1x1 convolution is a plain GEMM over pixels.
  Eager PyTorch sends small-batch single-thread 1x1 convs to the THNN im2col path; here they run as
  oneDNN inner products with weights reordered once (``mkldnn._reorder_linear_weight``), about 2x faster
  at LSNet-T's shapes. Where oneDNN is missing the same GEMMs run through ``F.linear``.
* ReLUs after convolutions and the residual adds after the FFN / attention projections are fused into
  those GEMMs (oneDNN post-ops); the other convolutions (stem, depthwise) run on prepacked oneDNN weights.
* LSConv's BatchNorm after SKA is folded to one scale-and-shift applied together with the residual.
  (It cannot be folded into the SKA weights: one kernel is shared by 8 channels with different scales.)
* Attention: the 1/sqrt(key_dim) scale is folded into the query's depthwise conv, heads are read straight
  from the channels-last qkv tensor, and the relative-position bias is gathered once per grid size.
* SKA still goes through :func:`zoo.ska.ska` (the ``zoo::ska`` op), whose CPU kernel works on the
  channels-last layout directly.

The result is inference-only (no autograd, no state_dict loading, CPU and fp32 for the oneDNN path; it keeps
the plain weights next to the packed ones): build it from a trained model. oneDNN honours
``torch.backends.mkldnn.matmul.fp32_precision``; leave it at its default for fp32-exact results.

:func:`compile_for_inference` is the compiled alternative: ``torch.compile`` of the deploy form with inductor's
C++ backend and freezing (inductor then prepacks the convolutions for oneDNN itself), with SKA optionally
decomposed so inductor fuses GroupNorm -> SKA -> BN -> residual. (The packed module above cannot be compiled:
its opaque oneDNN weights do not trace.)
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .lsnet import LKP, Attention, Block, LSConv, LSNet, Residual, StagedBackbone
from .ska import ska, ska_decomposition

__all__ = ["optimize_for_inference", "compile_for_inference", "ska_decomposition", "LSNetCPU", "mkldnn_available"]

_CL = torch.channels_last


def mkldnn_available() -> bool:
    """Whether oneDNN (mkldnn) prepacked inner product / convolution ops can be used here."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        ops = torch.ops.mkldnn
        return all(hasattr(ops, name) for name in ("_linear_pointwise", "_reorder_linear_weight",
                                                    "_convolution_pointwise", "_reorder_convolution_weight"))
    except (AttributeError, RuntimeError):
        return False


def _nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B*H*W, C) rows; a view when x is channels-last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _nchw(rows: Tensor, b: int, h: int, w: int) -> Tensor:
    """(B*H*W, C) rows -> (B, C, H, W) channels-last view."""
    return rows.view(b, h, w, rows.shape[-1]).permute(0, 3, 1, 2)


class _Packed(nn.Module):
    """Holds a weight prepacked for oneDNN; repacked (not copied) on deepcopy/pickle, never in state_dict."""

    use_mkldnn: bool

    def _pack(self) -> None:
        raise NotImplementedError

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_packed"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._pack()


class PointwiseConv(_Packed):
    """A 1x1 convolution (or Linear) as a GEMM over channels-last pixels.

    ``act`` is ``"none"`` or ``"relu"`` (fused). ``rows(x, residual)`` works on (M, C) row matrices and
    adds ``residual`` (M, C_out) inside the GEMM when given.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, act: str = "none", use_mkldnn: bool = True):
        super().__init__()
        if act not in ("none", "relu"):
            raise ValueError(f"unsupported activation {act!r}")
        weight = weight.detach().reshape(weight.shape[0], -1).clone()
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.act = act
        self.use_mkldnn = use_mkldnn and weight.dtype == torch.float32 and weight.device.type == "cpu"
        self._packed: Tensor | None = None
        self._pack()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d | nn.Linear, act: str = "none", use_mkldnn: bool = True) -> "PointwiseConv":
        if isinstance(conv, nn.Conv2d):
            ok = (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1
                  and conv.padding in ((0, 0), "valid") and conv.dilation == (1, 1))
            if not ok:
                raise ValueError(f"not a plain 1x1 convolution: {conv}")
        return cls(conv.weight, conv.bias, act, use_mkldnn)

    def _pack(self) -> None:
        self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight) if self.use_mkldnn else None

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1]}, {self.weight.shape[0]}, act={self.act}, "
                f"{'oneDNN packed' if self.use_mkldnn else 'F.linear'}")

    def rows(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        if residual is not None and self.act != "none":
            raise ValueError("a fused residual add is only supported without activation")
        if self._packed is not None and x.dtype == torch.float32:
            if residual is not None:
                return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self._packed, self.bias, "add")
            return torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, self.act, [], "")
        y = F.linear(x, self.weight, self.bias)
        if residual is not None:
            y = y.add_(residual)
        return y.relu_() if self.act == "relu" else y

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        b, _, h, w = x.shape
        res = None if residual is None else _nhwc(residual)
        return _nchw(self.rows(_nhwc(x), res), b, h, w)


class PackedConv(_Packed):
    """Any other Conv2d (stem, depthwise) on channels-last input with a prepacked oneDNN weight and an
    optional fused ReLU; output channels-last."""

    def __init__(self, conv: nn.Conv2d, act: str = "none", use_mkldnn: bool = True):
        super().__init__()
        if act not in ("none", "relu"):
            raise ValueError(f"unsupported activation {act!r}")
        if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            raise ValueError(f"only explicit zero padding is supported: {conv}")
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.stride, self.padding, self.dilation = list(conv.stride), list(conv.padding), list(conv.dilation)
        self.groups, self.act = conv.groups, act
        self.use_mkldnn = use_mkldnn and self.weight.dtype == torch.float32 and self.weight.device.type == "cpu"
        self._packed: Tensor | None = None
        self._pack()

    def _pack(self) -> None:
        self._packed = None
        if self.use_mkldnn:
            self._packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, self.padding, self.stride, self.dilation, self.groups)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return (f"{i * self.groups}, {o}, kernel=({kh}, {kw}), stride={tuple(self.stride)}, groups={self.groups}, "
                f"act={self.act}, {'oneDNN packed' if self.use_mkldnn else 'F.conv2d'}")

    def forward(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=_CL)
        if self._packed is not None and x.dtype == torch.float32:
            return torch.ops.mkldnn._convolution_pointwise(x, self._packed, self.bias, self.padding, self.stride,
                                                           self.dilation, self.groups, self.act, [], "")
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y.relu_() if self.act == "relu" else y


class FFNCPU(nn.Module):
    """x + pw2(relu(pw1(x))), the ReLU and the residual add fused into the two GEMMs."""

    def __init__(self, ffn: Residual, use_mkldnn: bool):
        super().__init__()
        self.pw1 = PointwiseConv.from_conv(ffn.m.pw1, "relu", use_mkldnn)
        self.pw2 = PointwiseConv.from_conv(ffn.m.pw2, "none", use_mkldnn)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        rows = _nhwc(x)
        return _nchw(self.pw2.rows(self.pw1.rows(rows), rows), b, h, w)


class SECPU(nn.Module):
    """timm SqueezeExcite (mean, 1x1, ReLU, 1x1, sigmoid gate) on pooled vectors."""

    def __init__(self, se: nn.Module):
        super().__init__()
        if getattr(se, "add_maxpool", False) or not isinstance(getattr(se, "bn", nn.Identity()), nn.Identity):
            raise ValueError("only the plain SqueezeExcite used by LSNet is supported")
        for name in ("fc1", "fc2"):
            conv = getattr(se, name)
            self.register_buffer(f"{name}_w", conv.weight.detach().flatten(1).clone())
            self.register_buffer(f"{name}_b", conv.bias.detach().clone())
        if not isinstance(se.act, nn.ReLU) or type(se.gate).__name__ != "Sigmoid":  # torch's or timm's
            raise ValueError("only ReLU / sigmoid SqueezeExcite is supported")

    def forward(self, x: Tensor) -> Tensor:
        s = F.linear(x.mean((2, 3)), self.fc1_w, self.fc1_b).relu_()
        gate = torch.sigmoid(F.linear(s, self.fc2_w, self.fc2_b))
        return x * gate[:, :, None, None]


class RepDWBlockCPU(nn.Module):
    """Even LSNet block in deploy form: fused RepVGGDW (a depthwise 3x3), SqueezeExcite, FFN."""

    def __init__(self, block: Block, use_mkldnn: bool):
        super().__init__()
        if not isinstance(block.mixer, nn.Conv2d):
            raise ValueError("RepVGGDW must be fused first (zoo.reparameterize)")
        self.mixer = PackedConv(block.mixer, "none", use_mkldnn)
        self.se = SECPU(block.se)
        self.ffn = FFNCPU(block.ffn, use_mkldnn)

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.se(self.mixer(x)))


class LSConvBlockCPU(nn.Module):
    """Odd block of stages 1-3: LSConv (LKP -> SKA -> BN, + x) then FFN.

    BN(SKA(x, w)) + x is computed as x + SKA(x, w) * scale + shift (per channel)."""

    def __init__(self, block: Block, use_mkldnn: bool):
        super().__init__()
        lsconv: LSConv = block.mixer
        lkp: LKP = lsconv.lkp
        for name in ("cv1", "cv2", "cv3"):
            if not isinstance(getattr(lkp, name), nn.Conv2d):
                raise ValueError("LKP must be fused first (zoo.reparameterize)")
        self.cv1 = PointwiseConv.from_conv(lkp.cv1, "relu", use_mkldnn)
        self.cv2 = PackedConv(lkp.cv2, "none", use_mkldnn)
        self.cv3 = PointwiseConv.from_conv(lkp.cv3, "relu", use_mkldnn)
        self.cv4 = PointwiseConv.from_conv(lkp.cv4, "none", use_mkldnn)
        norm = lkp.norm
        self.groups = norm.num_groups
        self.eps = norm.eps
        self.register_buffer("norm_weight", norm.weight.detach().clone())
        self.register_buffer("norm_bias", norm.bias.detach().clone())
        bn = lsconv.bn
        scale = bn.weight.detach() / (bn.running_var + bn.eps).sqrt()
        self.register_buffer("bn_scale", scale.view(-1, 1, 1).clone())
        self.register_buffer("bn_shift", (bn.bias.detach() - bn.running_mean * scale).view(-1, 1, 1).clone())
        self.ffn = FFNCPU(block.ffn, use_mkldnn)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        rows = _nhwc(x)
        t = _nchw(self.cv1.rows(rows), b, h, w)
        t = _nhwc(self.cv2(t))
        t = _nchw(self.cv4.rows(self.cv3.rows(t)), b, h, w)
        kernels = F.group_norm(t, self.groups, self.norm_weight, self.norm_bias, self.eps)
        y = ska(x, kernels.view(b, self.groups, -1, h, w))
        return self.ffn(torch.addcmul(x, y, self.bn_scale).add_(self.bn_shift))


class AttentionBlockCPU(nn.Module):
    """Odd block of the last stage: x + proj(relu(attention(x))), then FFN."""

    def __init__(self, block: Block, use_mkldnn: bool):
        super().__init__()
        att: Attention = block.mixer.m
        if not isinstance(att.qkv, nn.Conv2d):
            raise ValueError("Attention must be fused first (zoo.reparameterize)")
        self.num_heads, self.key_dim, self.d = att.num_heads, att.key_dim, att.d
        self.nh_kd, self.dh = att.nh_kd, att.dh
        self.qkv = PointwiseConv.from_conv(att.qkv, "none", use_mkldnn)
        dw = copy.deepcopy(att.dw)  # fold the softmax scale into the query's depthwise conv (exact: 2^-k)
        with torch.no_grad():
            dw.weight.mul_(att.scale)
            dw.bias.mul_(att.scale)
        self.dw = PackedConv(dw, "none", use_mkldnn)
        self.proj = PointwiseConv.from_conv(att.proj[1], "none", use_mkldnn)
        self.resolution = att.resolution
        self.register_buffer("attention_biases", att.attention_biases.detach().clone())
        self.register_buffer("native_bias", att.attention_bias(att.resolution, att.resolution).detach().clone())
        self._bias_cache: dict[tuple[int, int], Tensor] = {}
        self.ffn = FFNCPU(block.ffn, use_mkldnn)

    def bias(self, h: int, w: int) -> Tensor:
        if h == self.resolution and w == self.resolution:
            return self.native_bias
        if (h, w) not in self._bias_cache:
            with torch.no_grad():
                self._bias_cache[(h, w)] = Attention.attention_bias(self, h, w).detach()  # interpolated
        return self._bias_cache[(h, w)]

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        n, heads = h * w, self.num_heads
        rows = _nhwc(x)
        qkv = self.qkv.rows(rows).view(b, n, -1)
        q, k, v = qkv.split([self.nh_kd, self.nh_kd, self.dh], dim=2)
        q = self.dw(q.reshape(b, h, w, self.nh_kd).permute(0, 3, 1, 2))  # scaled query, channels-last
        q = q.permute(0, 2, 3, 1).reshape(b, n, heads, self.key_dim).transpose(1, 2)  # (B, heads, N, kd)
        k = k.reshape(b, n, heads, self.key_dim).permute(0, 2, 3, 1)  # (B, heads, kd, N)
        v = v.reshape(b, n, heads, self.d).transpose(1, 2)  # (B, heads, N, d)
        attn = torch.baddbmm(self.bias(h, w).expand(b, -1, -1, -1).reshape(b * heads, n, n),
                             q.reshape(b * heads, n, self.key_dim), k.reshape(b * heads, self.key_dim, n))
        out = torch.bmm(attn.softmax(dim=-1), v.reshape(b * heads, n, self.d))  # (B*heads, N, d)
        out = out.view(b, heads, n, self.d).transpose(1, 2).reshape(b * n, self.dh).relu_()
        return self.ffn(_nchw(self.proj.rows(out, rows), b, h, w))


class LSNetCPU(StagedBackbone):
    """The CPU inference form of an :class:`~zoo.lsnet.LSNet` (see the module docstring).

    Same call API as LSNet for inference: ``forward``, ``forward_features``, ``forward_stages``,
    ``forward_intermediates``, ``forward_head``. Feature maps come out channels-last (same shapes/values).
    """

    def __init__(self, model: LSNet, use_mkldnn: bool | None = None):
        super().__init__()
        use_mkldnn = mkldnn_available() if use_mkldnn is None else use_mkldnn
        self.use_mkldnn = use_mkldnn
        self.num_classes, self.num_features = model.num_classes, model.num_features
        self.drop_rate = model.drop_rate
        pe = list(model.patch_embed)
        stem = []
        for i, m in enumerate(pe):
            if isinstance(m, nn.Conv2d):
                act = "relu" if i + 1 < len(pe) and isinstance(pe[i + 1], nn.ReLU) else "none"
                stem.append(PackedConv(m, act, use_mkldnn))
            elif not isinstance(m, nn.ReLU):
                raise ValueError("patch_embed must be fused first (zoo.reparameterize)")
        self.patch_embed = nn.Sequential(*stem)
        self.blocks = nn.ModuleList()
        for stage in model.stages():
            mods = []
            for m in stage:
                mods.append(self._convert(m, use_mkldnn))
            self.blocks.append(nn.Sequential(*mods))
        head = model.head
        if model.distillation and not isinstance(head, nn.Identity):
            # eval-mode output is the mean of the two heads: one Linear with the averaged weights
            dist = model.head_dist
            head = nn.Linear(head.in_features, head.out_features)
            with torch.no_grad():
                head.weight.copy_((model.head.weight + dist.weight) / 2)
                head.bias.copy_((model.head.bias + dist.bias) / 2)
        if not isinstance(head, nn.Linear | nn.Identity):
            raise ValueError("the head must be fused first (zoo.reparameterize)")
        self.head = copy.deepcopy(head)

    @staticmethod
    def _convert(m: nn.Module, use_mkldnn: bool) -> nn.Module:
        if isinstance(m, Block):
            if isinstance(m.mixer, LSConv):
                return LSConvBlockCPU(m, use_mkldnn)
            if isinstance(m.mixer, Residual) and isinstance(m.mixer.m, Attention):
                return AttentionBlockCPU(m, use_mkldnn)
            return RepDWBlockCPU(m, use_mkldnn)
        if isinstance(m, nn.Conv2d):  # stage transition: depthwise 3x3 stride 2, then 1x1
            if m.kernel_size == (1, 1) and m.groups == 1 and m.stride == (1, 1):
                return PointwiseConv.from_conv(m, "none", use_mkldnn)
            return PackedConv(m, "none", use_mkldnn)
        raise ValueError(f"cannot convert {type(m).__name__}; fuse the model first (zoo.reparameterize)")

    def stages(self) -> list[nn.Sequential]:
        return list(self.blocks)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def compile_for_inference(model: nn.Module, *, mode: str | None = None, decompose_ska: bool = True,
                          freezing: bool = True, cpp_wrapper: bool = False,
                          form: str = "deploy") -> "CompiledInference":
    """``torch.compile`` of the deploy form for CPU inference with inductor's C++ backend (no Triton).

    ``freezing`` folds the weights into the graph so inductor prepacks them for oneDNN and fuses the
    pointwise ops around the convolutions; ``decompose_ska`` lets inductor see SKA as aten ops (only
    inside this compiled graph; eager calls, counters and exports still see ``zoo::ska``) so that
    GroupNorm -> SKA -> BN -> residual becomes fused C++ loops. ``mode`` "max-autotune..." turns on
    inductor's GEMM autotuning. ``form="nhwc"`` compiles the portable channels-last form of
    :func:`optimize_for_inference` (1x1 convs as ``F.linear``) instead of the deploy form (1x1 ``Conv2d``).
    Call the result under ``torch.inference_mode()``; the first call compiles.

    Inductor options are applied around every call, tracing included: freezing only takes effect when it is
    set while dynamo traces (``torch.compile(options={"freezing": True})`` alone leaves the weights as graph
    inputs, so nothing is prepacked).
    """
    import torch._inductor.config as inductor_config
    from torch._inductor.compile_fx import compile_fx
    from torch._inductor.decomposition import select_decomp_table

    if inductor_config.cpu_backend != "cpp":
        raise RuntimeError(f"inductor CPU backend is {inductor_config.cpu_backend!r}, expected 'cpp'")
    if form == "deploy":
        target = _deploy_form(model)
    elif form == "nhwc":
        target = optimize_for_inference(model, use_mkldnn=False)
    else:
        raise ValueError(f"form must be 'deploy' or 'nhwc', got {form!r}")
    patches = {"freezing": freezing, "cpp_wrapper": cpp_wrapper}
    if mode is not None and "max-autotune" in mode:
        patches.update(max_autotune=True, max_autotune_gemm=True)

    def backend(gm, example_inputs):
        decomps = dict(select_decomp_table())
        if decompose_ska:
            decomps[torch.ops.zoo.ska.default] = ska_decomposition
        return compile_fx(gm, example_inputs, decompositions=decomps)

    return CompiledInference(torch.compile(target, backend=backend), patches)


class CompiledInference:
    """A compiled model called with its inductor options in force (see :func:`compile_for_inference`)."""

    def __init__(self, compiled, patches: dict):
        self.compiled, self.patches = compiled, patches

    def __call__(self, *args, **kwargs):
        import torch._inductor.config as inductor_config

        with inductor_config.patch(self.patches):
            return self.compiled(*args, **kwargs)


def _deploy_form(model: nn.Module) -> nn.Module:
    from .registry import reparameterize

    return reparameterize(model).to("cpu").eval()  # a copy: the argument is left as it is


def optimize_for_inference(model: nn.Module, device: str | torch.device = "cpu", *,
                           use_mkldnn: bool | None = None) -> LSNetCPU:
    """The fast CPU inference form of an LSNet (trained or deploy form; the argument is not modified).

    Returns an eval-mode :class:`LSNetCPU` whose outputs match ``zoo.reparameterize(model)`` within 1e-5
    relative. ``use_mkldnn=False`` forces the portable path (``F.linear``/``F.conv2d`` on channels-last).
    Run it under ``torch.inference_mode()`` (or ``no_grad``); it is not meant for training.
    """
    if torch.device(device).type != "cpu":
        raise ValueError(f"optimize_for_inference targets the CPU; got device={device!s}")
    if not isinstance(model, LSNet):
        raise TypeError(f"expected an LSNet, got {type(model).__name__}")
    fused = _deploy_form(model)
    with torch.no_grad():
        return LSNetCPU(fused, use_mkldnn).eval()
