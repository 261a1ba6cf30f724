"""LSNet: "See Large, Focus Small" (Wang et al., CVPR 2025), written for lsbench.

The module tree and parameter names follow the official implementation (THU-MIG/lsnet) so that its
checkpoints load unchanged; the parts carry the paper's names: LKP (large-kernel perception), SKA
(small-kernel aggregation) and LSConv (their composition). Differences from the official code are
additions: any input size (the stage-4 relative-position bias is interpolated when the grid differs
from the one it was trained for), timm's feature/head API, and per-stage feature maps.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from timm.layers import SqueezeExcite, trunc_normal_
from timm.models import register_model
from torch import Tensor, nn

from .ska import SKA

__all__ = ["ConvBN", "BNLinear", "Residual", "FFN", "RepVGGDW", "LKP", "LSConv", "Attention", "Block",
           "StagedBackbone", "LSNet", "LSNetConfig", "LSNET_CONFIGS", "lsnet_t", "lsnet_s", "lsnet_b"]


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d; ``fuse()`` folds them into one biased conv."""

    def __init__(self, in_ch: int, out_ch: int, ks: int = 1, stride: int = 1, pad: int = 0,
                 dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.c = nn.Conv2d(in_ch, out_ch, ks, stride, pad, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
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

    def __init__(self, in_features: int, out_features: int, bias: bool = True, std: float = 0.02):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.l = nn.Linear(in_features, out_features, bias=bias)
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

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pw1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden, dim, bn_weight_init=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw2(self.act(self.pw1(x)))


class RepVGGDW(nn.Module):
    """Depthwise 3x3 + depthwise 1x1 + identity; ``fuse()`` turns the three branches into one 3x3 conv."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1 = ConvBN(dim, dim, 1, 1, 0, groups=dim)
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

    def __init__(self, dim: int, lks: int = 7, sks: int = 3, groups: int = 8):
        super().__init__()
        half = dim // 2
        self.cv1 = ConvBN(dim, half)
        self.act = nn.ReLU()
        self.cv2 = ConvBN(half, half, ks=lks, pad=(lks - 1) // 2, groups=half)
        self.cv3 = ConvBN(half, half)
        self.cv4 = nn.Conv2d(half, sks ** 2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks ** 2 * dim // groups)
        self.sks, self.groups, self.dim = sks, groups, dim

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        w = self.norm(self.cv4(x))
        b, _, h, wd = w.shape
        return w.view(b, self.dim // self.groups, self.sks ** 2, h, wd)


class LSConv(nn.Module):
    """LS convolution: see large (LKP predicts kernels), focus small (SKA applies them), BN, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.lkp = LKP(dim, lks=7, sks=3, groups=8)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.ska(x, self.lkp(x))) + x


def _offset_index(rows: int, cols: int, device=None) -> Tensor:
    """(N, N) index of the relative offset (|dy|, |dx|) as dy*cols + dx, N = rows*cols.

    On a square grid this equals the official first-seen numbering of offsets (row-major pairs)."""
    ys, xs = torch.meshgrid(torch.arange(rows, device=device), torch.arange(cols, device=device), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    return (ys[:, None] - ys[None, :]).abs() * cols + (xs[:, None] - xs[None, :]).abs()


class Attention(nn.Module):
    """Multi-head self-attention with a depthwise-conv query and a relative-position bias (LeViT style).

    The bias table is stored for a ``resolution`` x ``resolution`` grid as in the official checkpoints; on
    another grid it is resized (bicubic, over the |dy|, |dx| offset plane) at run time, weights untouched.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4, resolution: int = 14):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = self.d * num_heads
        self.resolution = resolution
        self.qkv = ConvBN(dim, self.dh + self.nh_kd * 2)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.dh, dim, bn_weight_init=0))
        self.dw = ConvBN(self.nh_kd, self.nh_kd, 3, 1, 1, groups=self.nh_kd)
        points = list(itertools.product(range(resolution), range(resolution)))
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                idxs.append(offsets.setdefault(off, len(offsets)))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.tensor(idxs, dtype=torch.long).view(len(points), -1))

    def attention_bias(self, rows: int, cols: int) -> Tensor:
        """(heads, N, N) bias for a rows x cols grid."""
        r = self.resolution
        if rows == r and cols == r:
            return self.attention_biases[:, self.attention_bias_idxs]
        table = self.attention_biases.view(1, self.num_heads, r, r)  # indexed by (|dy|, |dx|)
        table = F.interpolate(table, size=(rows, cols), mode="bicubic", align_corners=False)[0]
        return table.flatten(1)[:, _offset_index(rows, cols, table.device)]

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        n = h * w
        q, k, v = self.qkv(x).split([self.nh_kd, self.nh_kd, self.dh], dim=1)
        q = self.dw(q)
        q = q.reshape(b, self.num_heads, -1, n)
        k = k.reshape(b, self.num_heads, -1, n)
        v = v.reshape(b, self.num_heads, -1, n)
        attn = (q.transpose(-2, -1) @ k) * self.scale + self.attention_bias(h, w)
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(b, -1, h, w)
        return self.proj(x)


class Block(nn.Module):
    """One LSNet block: token mixer (RepVGGDW + SE on even blocks; LSConv, or attention in the last stage,
    on odd blocks), then a residual FFN."""

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: int = 14, stage: int = -1, depth: int = -1):
        super().__init__()
        if depth % 2 == 0:
            self.mixer = RepVGGDW(dim)
            self.se = SqueezeExcite(dim, 0.25)
        else:
            self.se = nn.Identity()
            if stage == 3:
                self.mixer = Residual(Attention(dim, key_dim, num_heads, attn_ratio, resolution=resolution))
            else:
                self.mixer = LSConv(dim)
        self.ffn = Residual(FFN(dim, int(dim * 2)))

    def forward(self, x: Tensor) -> Tensor:
        return self.ffn(self.se(self.mixer(x)))


class StagedBackbone(nn.Module):
    """The feature API shared by LSNet and its inference forms: a ``patch_embed`` stem, then ``stages()``."""

    def stages(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """Feature maps after each of the four stages (strides 8, 16, 32, 64), for dense tasks."""
        x = self.patch_embed(x)
        feats = []
        for stage in self.stages():
            x = stage(x)
            feats.append(x)
        return feats

    def forward_intermediates(self, x: Tensor, indices=None, intermediates_only: bool = False):
        """timm-style: (final features, [selected stage outputs]); indices default to all four stages."""
        feats = self.forward_stages(x)
        keep = range(len(feats)) if indices is None else indices
        picked = [feats[i] for i in keep]
        return picked if intermediates_only else (feats[-1], picked)

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for stage in self.stages():
            x = stage(x)
        return x


class LSNet(StagedBackbone):
    """LSNet backbone + classifier. Keyword names match the official constructor.

    ``patch_size`` defaults to 8, the stem's real stride, which the official factories pass; it only sets
    the grid the stage-4 bias table is stored for (28 -> 14 -> 7 -> 4 at 224 input).
    """

    def __init__(self, img_size: int = 224, patch_size: int = 8, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim=(64, 128, 192, 256), key_dim=(16, 16, 16, 16), depth=(1, 2, 3, 4),
                 num_heads=(4, 4, 4, 4), distillation: bool = False, drop_rate: float = 0.0, **kwargs):
        super().__init__()
        if kwargs:
            unknown = ", ".join(sorted(kwargs))
            raise TypeError(f"LSNet got unexpected keyword arguments: {unknown}")
        embed_dim, key_dim, depth, num_heads = map(list, (embed_dim, key_dim, depth, num_heads))
        self.num_classes = num_classes
        self.num_features = self.head_hidden_size = embed_dim[-1]
        self.embed_dim = embed_dim
        self.drop_rate = drop_rate
        self.distillation = distillation
        self.grad_checkpointing = False
        self.patch_embed = nn.Sequential(
            ConvBN(in_chans, embed_dim[0] // 4, 3, 2, 1), nn.ReLU(),
            ConvBN(embed_dim[0] // 4, embed_dim[0] // 2, 3, 2, 1), nn.ReLU(),
            ConvBN(embed_dim[0] // 2, embed_dim[0], 3, 2, 1),
        )
        resolution = img_size // patch_size
        attn_ratio = [embed_dim[i] / (key_dim[i] * num_heads[i]) for i in range(len(embed_dim))]
        self.blocks1, self.blocks2, self.blocks3, self.blocks4 = (nn.Sequential() for _ in range(4))
        stages = [self.blocks1, self.blocks2, self.blocks3, self.blocks4]
        self.feature_info = []
        reduction = 8
        for i, (ed, kd, dpth, nh, ar) in enumerate(zip(embed_dim, key_dim, depth, num_heads, attn_ratio)):
            for d in range(dpth):
                stages[i].append(Block(ed, kd, nh, ar, resolution, stage=i, depth=d))
            self.feature_info.append(dict(num_chs=ed, reduction=reduction, module=f"blocks{i + 1}"))
            if i != len(depth) - 1:
                stages[i + 1].append(ConvBN(ed, ed, ks=3, stride=2, pad=1, groups=ed))
                stages[i + 1].append(ConvBN(ed, embed_dim[i + 1], ks=1, stride=1, pad=0))
                resolution = (resolution - 1) // 2 + 1
                reduction *= 2
        self.head = BNLinear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()
        if distillation:
            self.head_dist = BNLinear(embed_dim[-1], num_classes) if num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {k for k in self.state_dict() if "attention_biases" in k}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head(s) for ``num_classes`` outputs (0 removes them), as timm models do."""
        self.num_classes = num_classes
        dim = self.num_features
        self.head = BNLinear(dim, num_classes) if num_classes > 0 else nn.Identity()
        if self.distillation:
            self.head_dist = BNLinear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def stages(self) -> list[nn.Sequential]:
        return [self.blocks1, self.blocks2, self.blocks3, self.blocks4]

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.drop_rate > 0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        if pre_logits:
            return x
        if not self.distillation:
            return self.head(x)
        out, out_dist = self.head(x), self.head_dist(x)
        if self.training and not torch.jit.is_scripting():
            return out, out_dist
        return (out + out_dist) / 2

    def forward(self, x: Tensor):
        return self.forward_head(self.forward_features(x))


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


def _pretrained_cfg(variant: str, distill: bool) -> dict:
    hub = f"jameslahm/{variant}{'_distill' if distill else ''}"
    return dict(url="", hf_hub_id=hub, num_classes=1000, input_size=(3, 224, 224), pool_size=(4, 4),
                crop_pct=0.875, interpolation="bicubic", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                first_conv="patch_embed.0.c", classifier=("head.l", "head_dist.l") if distill else "head.l",
                license="mit", paper_ids="arXiv:2503.23135")


def _create(variant: str, distill: bool, pretrained: bool, kwargs: dict) -> LSNet:
    checkpoint = kwargs.pop("checkpoint_path", None) or kwargs.pop("checkpoint", None)
    for timm_only in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(timm_only, None)
    if pretrained and checkpoint is None:
        from .errors import ZooError
        raise ZooError(f"{variant}: no weights can be downloaded here; pass checkpoint=PATH to load "
                       f"the official file (lsnet_*.pth / pytorch_model.bin / .safetensors)")
    kwargs.setdefault("distillation", distill)
    model = LSNet(**{**LSNET_CONFIGS[variant].as_kwargs(), **kwargs})
    model.pretrained_cfg = model.default_cfg = _pretrained_cfg(variant, model.distillation)
    if checkpoint is not None:
        from .checkpoint import load_checkpoint
        load_checkpoint(model, checkpoint)
    return model


@register_model
def lsnet_t(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_t", False, pretrained, kwargs)


@register_model
def lsnet_s(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_s", False, pretrained, kwargs)


@register_model
def lsnet_b(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_b", False, pretrained, kwargs)


@register_model
def lsnet_t_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_t", True, pretrained, kwargs)


@register_model
def lsnet_s_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_s", True, pretrained, kwargs)


@register_model
def lsnet_b_distill(pretrained: bool = False, **kwargs) -> LSNet:
    return _create("lsnet_b", True, pretrained, kwargs)
