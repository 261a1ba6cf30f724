"""LSNet: "See Large, Focus Small" (Wang et al., CVPR 2025), written for lsbench as a timm model.

The module tree and parameter names follow the official implementation (THU-MIG/lsnet) so that its
checkpoints load unchanged; the parts carry the paper's names: LKP (large-kernel perception), SKA
(small-kernel aggregation) and LSConv (their composition). Differences from the official code are
additions: any input size (the stage-4 relative-position bias is interpolated when the grid differs
from the one it was trained for) and timm's model contract: ``device``/``dtype``/``in_chans``/``global_pool``
keywords, pretrained configs, ``features_only``, ``forward_intermediates`` and pruning, gradient
checkpointing, FX tracing, TorchScript and ``torch.export``.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import SqueezeExcite, get_device_dtype, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, register_notrace_function
from torch import Tensor, nn

from .checkpoint import checkpoint_filter_fn, load_checkpoint
from .ska import SKA
from .ska.reference import ska_export

__all__ = ["ConvBN", "BNLinear", "Residual", "FFN", "RepVGGDW", "LKP", "LSConv", "Attention", "Block",
           "StagedBackbone", "LSNet", "LSNetConfig", "LSNET_CONFIGS", "default_cfgs", "attention_bias_for_grid",
           "resized_attention_bias", "take_indices", "group_norm_export", "LSConvExport", "AttentionExport",
           "LSNetExport", "export_form", "lsnet_t", "lsnet_s", "lsnet_b"]

GLOBAL_POOLS = ("", "avg")


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d; ``fuse()`` folds them into one biased conv."""

    def __init__(self, in_ch: int, out_ch: int, ks: int = 1, stride: int = 1, pad: int = 0,
                 dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.c = nn.Conv2d(in_ch, out_ch, ks, stride, pad, dilation, groups, bias=False, **dd)
        self.bn = nn.BatchNorm2d(out_ch, **dd)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.constant_(self.bn.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        c, bn = self.c, self.bn
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, c.dilation,
                          c.groups, bias=True, device=c.weight.device, dtype=c.weight.dtype)
        fused.weight.copy_(c.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


class BNLinear(nn.Sequential):
    """BatchNorm1d then Linear (the classifier head); ``fuse()`` folds the BN into the Linear."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.02,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.bn = nn.BatchNorm1d(in_features, **dd)
        self.l = nn.Linear(in_features, out_features, bias=bias, **dd)
        trunc_normal_(self.l.weight, std=std)
        if bias:
            nn.init.constant_(self.l.bias, 0)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        bn, lin = self.bn, self.l
        scale = bn.weight / (bn.running_var + bn.eps).sqrt()
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(lin.in_features, lin.out_features, device=lin.weight.device, dtype=lin.weight.dtype)
        fused.weight.copy_(lin.weight * scale[None, :])
        bias = lin.weight @ shift
        fused.bias.copy_(bias if lin.bias is None else bias + lin.bias)
        return fused


class Residual(nn.Module):
    """x + m(x)."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: Tensor) -> Tensor:
        return x + self.m(x)


class FFN(nn.Module):
    """Pointwise feed-forward: 1x1 Conv-BN expand, ReLU, 1x1 Conv-BN project (zero-init BN)."""

    def __init__(self, dim: int, hidden: int, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.pw1 = ConvBN(dim, hidden, **dd)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden, dim, bn_weight_init=0, **dd)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """Depthwise 3x3 + depthwise 1x1 + identity; ``fuse()`` turns the three branches into one 3x3 conv."""

    def __init__(self, dim: int, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.conv = ConvBN(dim, dim, 3, 1, 1, groups=dim, **dd)
        self.conv1 = ConvBN(dim, dim, 1, 1, 0, groups=dim, **dd)
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv, conv1 = self.conv.fuse(), self.conv1.fuse()
        centre = F.pad(conv1.weight, [1, 1, 1, 1])
        identity = F.pad(torch.ones_like(conv1.weight), [1, 1, 1, 1])
        conv.weight.add_(centre + identity)
        conv.bias.add_(conv1.bias)
        return conv


class LKP(nn.Module):
    """Large-kernel perception: a cheap 7x7 depthwise view of the neighbourhood that predicts, per pixel
    and per channel group, the 3x3 aggregation kernel SKA applies. Returns w of shape (B, C/groups, sks², H, W).
    """

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        half = dim // 2
        taps = sks * sks  # an int (``sks ** 2`` is a float in TorchScript)
        self.cv1 = ConvBN(dim, half, **dd)
        self.act = nn.ReLU()
        self.cv2 = ConvBN(half, half, ks=lks, pad=(lks - 1) // 2, groups=half, **dd)
        self.cv3 = ConvBN(half, half, **dd)
        self.cv4 = nn.Conv2d(half, taps * dim // groups, kernel_size=1, **dd)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=taps * dim // groups, **dd)
        self.sks, self.taps, self.groups, self.dim = sks, taps, groups, dim

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, wd = w.shape
        return w.view(b, self.dim // self.groups, self.taps, h, wd)


class LSConv(nn.Module):
    """LS convolution: see large (LKP predicts kernels), focus small (SKA applies them), BN, residual.

    TorchScript cannot compile the SKA module's Python dispatch, so scripted code calls the ``zoo::ska`` op
    that the dispatch itself calls (the SKA submodule is hidden from the script compiler)."""

    __jit_ignored_attributes__ = ["ska"]

    def __init__(self, dim: int, device=None, dtype=None):
        super().__init__()
        self.lkp = LKP(dim, lks=7, sks=3, groups=8, device=device, dtype=dtype)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        w = self.lkp(x)
        if torch.jit.is_scripting():
            y = torch.ops.zoo.ska(x, w)
        else:
            y = self.ska(x, w)
        return self.bn(y) + x


def offset_index(rows: int, cols: int, device: Optional[torch.device] = None) -> Tensor:
    """(N, N) index of the relative offset (|dy|, |dx|) as dy*cols + dx, N = rows*cols.

    On a square grid this equals the official first-seen numbering of offsets (row-major pairs)."""
    ys, xs = torch.meshgrid([torch.arange(rows, device=device), torch.arange(cols, device=device)], indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None, :]).abs() * cols + (xs[:, None] - xs[None, :]).abs()





def resized_attention_bias(biases: Tensor, resolution: int, rows: int, cols: int) -> Tensor:
    """(heads, N, N) bias for a rows x cols grid from a table stored for resolution x resolution:
    the (|dy|, |dx|) offset plane resized bicubically, then gathered per point pair."""
    table = biases.view(1, biases.shape[0], resolution, resolution)
    table = F.interpolate(table, size=(rows, cols), mode="bicubic", align_corners=False)[0]
    return table.flatten(1)[:, offset_index(rows, cols, table.device)]


@register_notrace_function
def attention_bias_for_grid(biases: Tensor, idxs: Tensor, resolution: int, rows: int, cols: int) -> Tensor:
    """The attention bias for the grid actually seen: the stored table on the native grid, else resized.

    It branches on the feature map's size, so timm's FX tracer keeps it as one leaf call."""
    if rows == resolution and cols == resolution:
        return biases[:, idxs]
    return resized_attention_bias(biases, resolution, rows, cols)


class Attention(nn.Module):
    """Multi-head self-attention with a depthwise-conv query and a relative-position bias (LeViT style).

    The bias table is stored for a ``resolution`` x ``resolution`` grid as in the official checkpoints; on
    another grid it is resized (bicubic, over the |dy|, |dx| offset plane) at run time, weights untouched.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4, resolution: int = 14,
                 device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.resolution = resolution
        self.qkv = ConvBN(dim, self.dh + self.nh_kd * 2, **dd)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.dh, dim, bn_weight_init=0, **dd))
        self.dw = ConvBN(self.nh_kd, self.nh_kd, 3, 1, 1, groups=self.nh_kd, **dd)
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets), **dd))
        self.register_buffer("attention_bias_idxs",
                             torch.tensor(idxs, dtype=torch.long, device=device).view(len(points), -1))

    def attention_bias(self, rows: int, cols: int) -> Tensor:
        """(heads, N, N) bias for a rows x cols grid."""
        if rows == self.resolution and cols == self.resolution:
            return self.attention_biases[:, self.attention_bias_idxs]
        return resized_attention_bias(self.attention_biases, self.resolution, rows, cols)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)
        q = q.reshape(b, self.num_heads, -1, n)
        k = k.reshape(b, self.num_heads, -1, n)
        v = v.reshape(b, self.num_heads, -1, n)
        bias = attention_bias_for_grid(self.attention_biases, self.attention_bias_idxs, self.resolution, h, w)
        attn = (q.transpose(-2, -1) @ k) * self.scale + bias
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(b, -1, h, w)
        return self.proj(x)


class Block(nn.Module):
    """One LSNet block: token mixer (RepVGGDW + SE on even blocks; LSConv, or attention in the last stage,
    on odd blocks), then a residual FFN."""

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: int = 14, stage: int = -1, depth: int = -1, device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if depth % 2 == 0:
            self.mixer = RepVGGDW(dim, **dd)
            self.se = SqueezeExcite(dim, 0.25, **dd)
        else:
            self.se = nn.Identity()
            if stage == 3:
                self.mixer = Residual(Attention(dim, key_dim, num_heads, attn_ratio, resolution=resolution, **dd))
            else:
                self.mixer = LSConv(dim, **dd)
        self.ffn = Residual(FFN(dim, int(dim * 2), **dd))

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.se(self.mixer(x)))


def take_indices(num_stages: int, indices: Union[int, Sequence[int], None]) -> tuple[list[int], int]:
    """timm's feature-index rule: None -> every stage, an int n -> the last n, a sequence -> those (negative
    counts from the end). Returns (sorted-as-given non-negative indices, largest index)."""
    if indices is None:
        picked = list(range(num_stages))
    elif isinstance(indices, int):
        if not 0 < indices <= num_stages:
            raise ValueError(f"indices={indices}: take the last n of {num_stages} stages, 1 <= n <= {num_stages}")
        picked = list(range(num_stages - indices, num_stages))
    else:
        picked = []
        for i in indices:
            if not -num_stages <= i < num_stages:
                raise ValueError(f"feature index {i} out of range for {num_stages} stages")
            picked.append(i % num_stages)
    return picked, max(picked)


class StagedBackbone(nn.Module):
    """The feature API shared by LSNet and its inference forms: a ``patch_embed`` stem, then ``stages()``.

    Subclasses may override ``run_stage`` (LSNet checkpoints it when gradient checkpointing is on)."""

    def stages(self) -> list[nn.Module]:
        raise NotImplementedError

    def run_stage(self, stage: nn.Module, x: Tensor) -> Tensor:
        return stage(x)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Feature maps after each of the four stages (strides 8, 16, 32, 64), for dense tasks."""
        return self.forward_intermediates(x, intermediates_only=True)

    def forward_intermediates(self, x: Tensor, indices: Union[int, list[int], None] = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        """timm's intermediate-feature API: ``(final features, [stage outputs])``, or only the list.

        ``indices``: None = all four stages, n = the last n, a list = those stages. ``stop_early`` (and
        ``intermediates_only``) skip the stages after the last one taken. LSNet has no final norm, so
        ``norm`` changes nothing; only NCHW output exists."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        stages = self.stages()
        picked, last = take_indices(len(stages), indices)
        if not (stop_early or intermediates_only):
            last = len(stages) - 1
        x = self.patch_embed(x)
        intermediates = []
        for i, stage in enumerate(stages[:last + 1]):
            x = self.run_stage(stage, x)
            if i in picked:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for stage in self.stages():
            x = self.run_stage(stage, x)
        return x


class LSNet(StagedBackbone):
    """LSNet backbone + classifier. Keyword names match the official constructor, plus timm's
    ``global_pool`` ('avg' or '' for none), ``drop_rate`` (dropout before the head) and ``device``/``dtype``.

    ``patch_size`` defaults to 8, the stem's real stride, which the official factories pass; it only sets
    the grid the stage-4 bias table is stored for (28 -> 14 -> 7 -> 4 at 224 input). The stages stay the
    official attributes ``blocks1``..``blocks4`` (checkpoint keys); ``stages()`` lists them.
    """

    def __init__(self, img_size: int = 224, patch_size: int = 8, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim=(64, 128, 192, 256), key_dim=(16, 16, 16, 16), depth=(1, 2, 3, 4),
                 num_heads=(4, 4, 4, 4), distillation: bool = False, drop_rate: float = 0.0,
                 global_pool: str = "avg", device=None, dtype=None):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"LSNet global_pool must be 'avg' or '' (none), got {global_pool!r}")
        embed_dim, key_dim, depth, num_heads = map(list, (embed_dim, key_dim, depth, num_heads))
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = embed_dim[-1]
        self.embed_dim = embed_dim
        self.drop_rate = drop_rate
        self.distillation = distillation
        self.distilled_training = True  # the official training loop expects (head, head_dist) in train mode
        self.grad_checkpointing = False
        self.patch_embed = nn.Sequential(
            ConvBN(in_chans, embed_dim[0] // 4, 3, 2, 1, **dd), nn.ReLU(),
            ConvBN(embed_dim[0] // 4, embed_dim[0] // 2, 3, 2, 1, **dd), nn.ReLU(),
            ConvBN(embed_dim[0] // 2, embed_dim[0], 3, 2, 1, **dd),
        )
        resolution = img_size // patch_size
        attn_ratio = [embed_dim[i] / (key_dim[i] * num_heads[i]) for i in range(len(embed_dim))]
        self.blocks1, self.blocks2, self.blocks3, self.blocks4 = (nn.Sequential() for _ in range(4))
        stages = [self.blocks1, self.blocks2, self.blocks3, self.blocks4]
        self.feature_info = []
        reduction = 8
        for i, (ed, kd, dpth, nh, ar) in enumerate(zip(embed_dim, key_dim, depth, num_heads, attn_ratio)):
            for d in range(dpth):
                stages[i].append(Block(ed, kd, nh, ar, resolution, stage=i, depth=d, **dd))
            self.feature_info.append(dict(num_chs=ed, reduction=reduction, module=f"blocks{i + 1}"))
            if i != len(depth) - 1:
                stages[i + 1].append(ConvBN(ed, ed, ks=3, stride=2, pad=1, groups=ed, **dd))
                stages[i + 1].append(ConvBN(ed, embed_dim[i + 1], ks=1, stride=1, pad=0, **dd))
                resolution = (resolution - 1) // 2 + 1
                reduction *= 2
        self.head_drop = nn.Dropout(drop_rate)
        self.head = BNLinear(embed_dim[-1], num_classes, **dd) if num_classes > 0 else nn.Identity()
        if distillation:
            self.head_dist = BNLinear(embed_dim[-1], num_classes, **dd) if num_classes > 0 else nn.Identity()

    # --- timm's model API -------------------------------------------------------------------------------
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        """Parameter groups for layer-wise LR decay: the stem, then each stage (coarse) or block."""
        return dict(stem=r"^patch_embed", blocks=r"^blocks(\d+)" if coarse else [(r"^blocks(\d+)\.(\d+)", None)])

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if name.endswith("attention_biases")}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each stage in backward (torch.utils.checkpoint) instead of storing its activations."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def set_distilled_training(self, enable: bool = True) -> None:
        """Whether a distilled model returns (head, head_dist) in train mode (official behaviour) or their mean."""
        self.distilled_training = enable

    @torch.jit.ignore
    def get_classifier(self) -> Union[nn.Module, tuple[nn.Module, nn.Module]]:
        return (self.head, self.head_dist) if self.distillation else self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None, device=None, dtype=None) -> None:
        """Replace the head(s) for ``num_classes`` outputs (0 removes them); ``global_pool`` None keeps the
        pooling, '' turns it off. New heads are created on the model's device and dtype, in its train mode."""
        dd = get_device_dtype(self, device=device, dtype=dtype)
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ValueError(f"LSNet global_pool must be 'avg' or '' (none), got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.head = BNLinear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)
        if self.distillation:
            self.head_dist = BNLinear(self.num_features, num_classes, **dd) if num_classes > 0 else nn.Identity()
            self.head_dist.train(self.training)

    def stages(self) -> list[nn.Sequential]:
        return [self.blocks1, self.blocks2, self.blocks3, self.blocks4]

    def run_stage(self, stage: nn.Module, x: Tensor) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(stage, x, use_reentrant=False)
        return stage(x)

    @torch.jit.ignore
    def prune_intermediate_layers(self, indices: Union[int, list[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the stages after the last index taken (they become empty); with them, or with
        ``prune_head``, the classifier and pooling go. Returns the indices for ``forward_intermediates``."""
        picked, last = take_indices(4, indices)
        for i in range(last + 1, 4):
            setattr(self, f"blocks{i + 1}", nn.Sequential())
        if last < 3:  # the features now end at the last kept stage
            self.num_features = self.head_hidden_size = self.feature_info[last]["num_chs"]
        if prune_head or last < 3:
            self.reset_classifier(0, "")
        return picked

    def forward_features(self, x: Tensor) -> Tensor:
        if torch.jit.is_scripting():  # TorchScript cannot loop over a Python list of modules
            x = self.patch_embed(x)
            return self.blocks4(self.blocks3(self.blocks2(self.blocks1(x))))
        return super().forward_features(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False):
        if self.global_pool == "avg":
            x = x.mean((2, 3))
        x = self.head_drop(x)
        if pre_logits:
            return x
        if hasattr(self, "head_dist"):  # a distilled model: two heads, averaged except when distill-training
            out, out_dist = self.head(x), self.head_dist(x)
            if self.training and self.distilled_training and not torch.jit.is_scripting():
                return out, out_dist
            return (out + out_dist) / 2
        return self.head(x)

    def forward(self, x):  # unannotated: FX writes a string annotation into its code, which TorchScript rejects
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def export_form(self, input_size: Sequence[int]) -> "LSNetExport":
        """A copy of this (eval, usually reparameterized) model for mobile exporters: see :func:`export_form`."""
        return export_form(self, input_size)

    @torch.jit.ignore
    def load_pretrained(self, checkpoint_path: str, prefix: str = "") -> None:
        """timm's ``custom_load`` hook for a pretrained *file*: the zoo loader, which takes the official
        training checkpoint's ``model`` weights (timm's generic reader would prefer its ``model_ema``), loads
        strictly, and adapts the classifier and first conv to ``num_classes`` / ``in_chans`` as timm does."""
        load_checkpoint(self, checkpoint_path)


# --- export forms: the same function in ops mobile backends (ExecuTorch's XNNPACK) delegate ----------------
# Only exporters use these (lsbench.export via LSNet.export_form); training, eager inference, the custom SKA op
# and the state_dict layout are untouched. Each is checked against the eager modules within 1e-5.

def group_norm_export(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm(x)`` as XNNPACK delegates it: the per-group statistics as means over the two innermost dims of a
    4-D view (B, groups, C/groups*H, W) (XNNPACK's mean is a global average pool over H, W), then subtract,
    multiply by ``rsqrt(var + eps)`` and the per-channel affine. Biased variance, as GroupNorm's."""
    b, c, h, w = x.shape
    g = norm.num_groups
    v = x.reshape(b, g, (c // g) * h, w)
    d = v - v.mean((2, 3), keepdim=True)
    y = (d * torch.rsqrt((d * d).mean((2, 3), keepdim=True) + norm.eps)).reshape(b, c, h, w)
    if norm.affine:
        y = y * norm.weight.reshape(1, c, 1, 1) + norm.bias.reshape(1, c, 1, 1)
    return y


class LSConvExport(nn.Module):
    """LSConv (LKP -> SKA -> BN -> residual) with LKP's GroupNorm as :func:`group_norm_export` and SKA as
    :func:`~zoo.ska.reference.ska_export`; shares the LSConv's (fused or not) submodules."""

    def __init__(self, lsconv: LSConv):
        super().__init__()
        self.lkp, self.bn = lsconv.lkp, lsconv.bn

    def forward(self, x: Tensor) -> Tensor:
        lkp = self.lkp
        t = lkp.act(lkp.cv3(lkp.cv2(lkp.act(lkp.cv1(x)))))
        w = group_norm_export(lkp.cv4(t), lkp.norm)
        b, _, h, wd = w.shape
        return self.bn(ska_export(x, w.reshape(b, lkp.dim // lkp.groups, lkp.taps, h, wd))) + x


class AttentionExport(nn.Module):
    """Attention for one fixed grid: the relative-position bias gathered (or resized) once, at conversion, into
    a non-persistent buffer (no index op at run time, nothing added to a state_dict); q/k/v taken by slicing and
    the products as 3-D ``bmm`` (a 4-D matmul lowers to expand copies ExecuTorch leaves on portable kernels)."""

    def __init__(self, attn: Attention, rows: int, cols: int):
        super().__init__()
        self.qkv, self.proj, self.dw = attn.qkv, attn.proj, attn.dw
        self.num_heads, self.scale, self.nh_kd, self.dh = attn.num_heads, attn.scale, attn.nh_kd, attn.dh
        self.grid = (rows, cols)
        with torch.no_grad():
            bias = attn.attention_bias(rows, cols).detach().clone()
        self.register_buffer("attention_bias", bias, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        if (h, w) != self.grid:
            raise ValueError(f"this export form of Attention was built for a {self.grid} grid, got {(h, w)}")
        n, heads, nk = h * w, self.num_heads, self.nh_kd
        qkv = self.qkv(x)
        q = self.dw(qkv[:, :nk]).reshape(b * heads, -1, n)
        k = qkv[:, nk:2 * nk].reshape(b * heads, -1, n)
        v = qkv[:, 2 * nk:].reshape(b * heads, -1, n)
        attn = (torch.bmm(q.transpose(1, 2), k).reshape(b, heads, n, n) * self.scale + self.attention_bias)
        attn = attn.softmax(dim=-1).reshape(b * heads, n, n)
        return self.proj(torch.bmm(v, attn.transpose(1, 2)).reshape(b, self.dh, h, w))


class LSNetExport(nn.Module):
    """An LSNet whose LSConv / Attention mixers are their export forms, with the global pool as a keep-dim
    mean (XNNPACK's mean needs keepdim) then a reshape. Built by :func:`export_form`; inference only."""

    def __init__(self, model: LSNet):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor):
        m = self.model
        x = m.forward_features(x)
        if m.global_pool == "avg":
            x = x.mean((2, 3), keepdim=True).reshape(x.shape[0], -1)
        pool, m.global_pool = m.global_pool, ""
        try:
            return m.forward_head(x)
        finally:
            m.global_pool = pool


def export_form(model: LSNet, input_size: Sequence[int]) -> LSNetExport:
    """A copy of an eval-mode ``model`` (reparameterized or not) in the export forms above, for a fixed input
    size (B, C, H, W): the attention bias is taken for the grid each Attention sees at that size, found by one
    forward pass. The model itself is not changed."""
    import copy

    if model.training:
        raise ValueError("export_form needs an eval-mode model")
    m = copy.deepcopy(model)
    grids: dict[nn.Module, tuple[int, int]] = {}

    def record(mod: nn.Module, args: tuple) -> None:
        grids[mod] = tuple(args[0].shape[-2:])

    hooks = [mod.register_forward_pre_hook(record) for mod in m.modules() if isinstance(mod, Attention)]
    p = next(m.parameters())
    try:
        with torch.no_grad():
            m(torch.zeros(tuple(input_size), device=p.device, dtype=p.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    for parent in list(m.modules()):
        for name, child in parent.named_children():
            if isinstance(child, LSConv):
                setattr(parent, name, LSConvExport(child))
            elif isinstance(child, Attention) and child in grids:
                setattr(parent, name, AttentionExport(child, *grids[child]))
    return LSNetExport(m).eval()


@dataclass(frozen=True)
class LSNetConfig:
    """One LSNet variant, in the official constructor's keywords (lsnet-facts.md §1)."""

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    key_dim: tuple[int, ...] = (16, 16, 16, 16)
    img_size: int = 224
    patch_size: int = 8
    kwargs: dict = field(default_factory=dict)

    def as_kwargs(self) -> dict:
        return dict(embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads, key_dim=self.key_dim,
                    img_size=self.img_size, patch_size=self.patch_size, **self.kwargs)


LSNET_CONFIGS = {
    "lsnet_t": LSNetConfig(embed_dim=(64, 128, 256, 384), depth=(0, 2, 8, 10), num_heads=(3, 3, 3, 4)),
    "lsnet_s": LSNetConfig(embed_dim=(96, 192, 320, 448), depth=(1, 2, 8, 10), num_heads=(3, 3, 3, 4)),
    "lsnet_b": LSNetConfig(embed_dim=(128, 256, 384, 512), depth=(4, 6, 8, 10), num_heads=(3, 3, 3, 4)),
}


def _cfg(hub_id: str, distill: bool) -> dict:
    """The official weights and evaluation preprocessing (THU-MIG/lsnet cbe737c).

    The official eval transform resizes to 256 and centre-crops 224 (data/datasets.py), i.e. crop_pct 0.875;
    the official timm cfg says 0.9 and names the classifier ``head.linear``, which its model does not have
    (the BN_Linear head holds ``head.l``): the values here follow the code that produced the published accuracy.
    ``custom_load`` sends pretrained *files* through :meth:`LSNet.load_pretrained` (the zoo loader); hub
    weights and ``state_dict`` overlays go through timm's loader with :func:`checkpoint_filter_fn`."""
    return dict(hf_hub_id=hub_id, num_classes=1000, input_size=(3, 224, 224), pool_size=(4, 4), crop_pct=0.875,
                interpolation="bicubic", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
                first_conv="patch_embed.0.c", classifier=("head.l", "head_dist.l") if distill else "head.l",
                custom_load=True, paper_ids="arXiv:2503.23135", paper_name="LSNet: See Large, Focus Small",
                origin_url="https://github.com/THU-MIG/lsnet")


default_cfgs = generate_default_cfgs({
    f"{variant}{suffix}.in1k": _cfg(f"jameslahm/{variant}{suffix}", distill=bool(suffix))
    for variant in LSNET_CONFIGS for suffix in ("", "_distill")
})


def _create_lsnet(variant: str, pretrained: bool = False, **kwargs) -> LSNet:
    arch = variant.removesuffix("_distill")
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if overlay.get("file"):
        # timm resets custom_load for a user's file and would read it generically: the EMA copy instead of
        # the evaluated 'model' weights, and a refusal of the official 'args' entry under weights_only.
        # LSNet files are official checkpoints, so they keep the zoo loader unless custom_load is given.
        kwargs["pretrained_cfg_overlay"] = {"custom_load": True, **overlay}
    kwargs.setdefault("distillation", variant != arch)
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    # blocks1..4 are the taps; flattening them would hide the stage modules FeatureListNet looks for
    return build_model_with_cfg(LSNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
                                feature_cfg=dict(flatten_sequential=False, out_indices=out_indices),
                                **{**LSNET_CONFIGS[arch].as_kwargs(), **kwargs})


@register_model
def lsnet_t(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_t", pretrained, **kwargs)


@register_model
def lsnet_s(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_s", pretrained, **kwargs)


@register_model
def lsnet_b(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_b", pretrained, **kwargs)


@register_model
def lsnet_t_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_t_distill", pretrained, **kwargs)


@register_model
def lsnet_s_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_s_distill", pretrained, **kwargs)


@register_model
def lsnet_b_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create_lsnet("lsnet_b_distill", pretrained, **kwargs)
