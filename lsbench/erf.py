"""Effective receptive field (ERF), measured as in RepLKNet (Ding et al. 2022, after Luo et al. 2016).

Method, for one model and one layer:

1. N images resized to S x S (default 50 images at 1024 x 1024), ImageNet mean/std normalisation.
2. Forward to the layer (``"final"``: ``model.forward_features``, the last feature map before
   pooling; an int ``i``: the output of stage ``i``, 0-based, see :func:`stage_outputs`).
3. Score = sum over channels of ReLU(feature map at the centre pixel ``(h//2, w//2)``).
4. Gradient of the score w.r.t. the input image, ReLU, summed over RGB; averaged over the images
   (images whose gradient holds a NaN are skipped, as in RepLKNet).
5. ``log10(x + 1)`` then division by the max: the normalised map in [0, 1].

The high-contribution area ratio for a threshold t is (2i+1)^2 / (H W) for the smallest i >= 1
whose centred (2i+1) x (2i+1) square holds more than t of the normalised map's total
(RepLKNet's ``analyze_erf.py``; thresholds 0.2, 0.3, 0.5, 0.99).

The model is measured with the weights it is given (random initialisation unless a checkpoint is
loaded) and in eval mode (BatchNorm uses its running statistics, so the images of a batch are
independent and batching does not change the map). By default the gradients are taken through its
deploy form (:func:`zoo.reparameterize`: eval-mode BatchNorm and re-parameterizable branches folded into
the convolutions): the same function in exact arithmetic, so the same ERF, for about two thirds of the
time. In float32 the two forms round differently; both stay as close to a float64 computation of the
unfused model as each other (``benchmarks/erf_speed.py`` measures it, ``tests/test_erf.py`` checks it).
The stem runs in channels-last memory format (:func:`channels_last_stem`): at 1024 px its few-channel maps
are the largest tensors, and in the default layout oneDNN reorders them in every backward pass.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor, nn

from zoo.checkpoint import sha256_of

from lsbench.errors import LsbenchError
from lsbench.progress import progress_bar

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "DEFAULT_THRESHOLDS", "SKIMAGE_IMAGES", "IMAGE_EXTENSIONS",
    "load_images", "stage_outputs", "erf_maps", "final_stage", "normalize_map", "high_contribution_square",
    "area_ratios", "weights_label", "erf_analysis", "layer_name", "skimage_image", "STEM_NAMES", "find_stem",
    "channels_last_stem",
]

IMAGENET_MEAN = IMAGENET_DEFAULT_MEAN
IMAGENET_STD = IMAGENET_DEFAULT_STD
DEFAULT_THRESHOLDS = (0.2, 0.3, 0.5, 0.99)

#: Natural RGB photographs shipped inside scikit-image (no download needed), in the order used.
#: (``cat`` is the same file as ``chelsea``; the other RGB files in skimage.data are synthetic or
#: tiny and are left out.)
SKIMAGE_IMAGES = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "motorcycle_left", "motorcycle_right",
)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


# --------------------------------------------------------------------------------------------------
# images
# --------------------------------------------------------------------------------------------------

def skimage_image(name: str) -> np.ndarray:
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _disp = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage.data, name)()


def _to_tensor(img: np.ndarray) -> Tensor:
    """HWC uint8 RGB -> CHW float in [0, 1]."""
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def _random_view(img: Tensor, rng: np.random.Generator) -> Tensor:
    """A deterministic random crop (30-100% of the area, aspect 3/4-4/3) and horizontal flip."""
    _, h, w = img.shape
    for _ in range(10):
        area = h * w * rng.uniform(0.3, 1.0)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ch, cw = int(round(math.sqrt(area / aspect))), int(round(math.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            break
    else:
        ch, cw = h, w
    top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = img[:, top:top + ch, left:left + cw]
    if rng.random() < 0.5:
        img = img.flip(-1)
    return img


def _resize_normalize(img: Tensor, size: int) -> Tensor:
    out = F.interpolate(img[None], size=(size, size), mode="bicubic", align_corners=False, antialias=True)[0]
    out = out.clamp_(0.0, 1.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (out - mean) / std


def _read_image(path: Path) -> Tensor:
    from PIL import Image

    with Image.open(path) as im:
        return _to_tensor(np.array(im.convert("RGB")))


def load_images(directory: str | Path | None = None, num_images: int | None = 50, size: int = 1024,
                seed: int = 0) -> Tensor:
    """Images for the ERF, as a ``(N, 3, size, size)`` float tensor, ImageNet-normalised.

    ``directory=None``: the natural RGB photographs shipped with scikit-image
    (:data:`SKIMAGE_IMAGES`, 9 of them). ``directory`` given: the image files in it (recursively;
    extensions :data:`IMAGE_EXTENSIONS`); unreadable files are reported with a warning and skipped.
    If there are more files than ``num_images``, a seeded random subset is used;
    ``num_images=None`` takes them all.

    If ``num_images`` exceeds the number of source images, the sources are cycled: the first pass
    uses each image whole, later passes use deterministic random crops and flips (seeded by
    ``seed``), so all N images differ. Every image is resized to ``size x size`` (bicubic, aspect
    ratio not kept, as in RepLKNet). Memory: 12 MB per image at 1024.
    """
    if num_images is not None and num_images < 1:
        raise LsbenchError(f"num_images must be at least 1, got {num_images}")
    if size < 8:
        raise LsbenchError(f"image size must be at least 8 pixels, got {size}")
    rng = np.random.default_rng(seed)
    sources: list[Tensor] = []
    if directory is None:
        names = SKIMAGE_IMAGES if num_images is None else SKIMAGE_IMAGES[:num_images]
        sources = [_to_tensor(skimage_image(n)) for n in names]
    else:
        root = Path(directory)
        if not root.is_dir():
            raise LsbenchError(f"image directory {root} does not exist or is not a directory")
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise LsbenchError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
        order = files if num_images is None or len(files) <= num_images else \
            [files[i] for i in rng.permutation(len(files))]
        chosen: list[tuple[Path, Tensor]] = []
        for p in order:
            if num_images is not None and len(chosen) == num_images:
                break
            try:
                chosen.append((p, _read_image(p)))
            except Exception as e:  # noqa: BLE001 - any decoding failure means "unreadable"
                warnings.warn(f"skipping unreadable image {p}: {type(e).__name__}: {e}", stacklevel=2)
        if not chosen:
            raise LsbenchError(f"none of the {len(files)} image files in {root} could be read")
        chosen.sort(key=lambda t: t[0])
        sources = [t for _, t in chosen]
    n = len(sources) if num_images is None else num_images
    if n > len(sources):
        warnings.warn(f"ERF: {n} images requested but only {len(sources)} available; cycling through them "
                      f"with deterministic random crops and flips (seed {seed})", stacklevel=2)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = sources[i % len(sources)]
        if i >= len(sources):
            img = _random_view(img, rng)
        out[i] = _resize_normalize(img, size)
    return out


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------

def _hooked_stage_outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """Stage outputs via forward hooks on the modules named in timm's ``feature_info``."""
    info = model.feature_info
    names = info.module_name() if hasattr(info, "module_name") else [d["module"] for d in info]
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing or not names:
        raise AttributeError(f"feature_info names unknown modules {missing}")
    outs: dict[str, Tensor] = {}
    handles = []
    for n in names:
        mod = modules[n]
        handles.append(mod.register_forward_hook(lambda _m, _i, o, n=n: outs.__setitem__(n, o)))
    try:
        model.forward_features(x)
    finally:
        for h in handles:
            h.remove()
    return [outs[n] for n in names]


def stage_outputs(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The output of every stage of ``model`` for input ``x``, as a list of NCHW tensors.

    Tries, in order: ``model.forward_stages(x)`` (zoo models), timm's
    ``model.forward_intermediates(x, intermediates_only=True)``, forward hooks on the modules
    listed in timm's ``model.feature_info``. Raises :class:`LsbenchError` if none works.
    """
    attempts: list[tuple[str, Callable[[], Sequence[Tensor]]]] = []
    if hasattr(model, "forward_stages"):
        attempts.append(("forward_stages", lambda: model.forward_stages(x)))
    if hasattr(model, "forward_intermediates"):
        attempts.append(("forward_intermediates", lambda: model.forward_intermediates(x, intermediates_only=True)))
    if hasattr(model, "feature_info") and hasattr(model, "forward_features"):
        attempts.append(("feature_info hooks", lambda: _hooked_stage_outputs(model, x)))
    errors = []
    for how, fn in attempts:
        try:
            outs = list(fn())
        except (TypeError, AttributeError, NotImplementedError, KeyError, AssertionError) as e:
            errors.append(f"{how}: {type(e).__name__}: {e}")
            continue
        if outs and all(isinstance(o, Tensor) and o.dim() == 4 for o in outs):
            return outs
        errors.append(f"{how}: did not return a list of 4-D feature maps")
    detail = "; ".join(errors) if errors else "it has no forward_stages, forward_intermediates or feature_info"
    raise LsbenchError(f"cannot get per-stage feature maps from {type(model).__name__} ({detail})")


def layer_name(layer: str | int) -> str:
    """Label of a layer in tables and plots: ``"final"`` or ``"stage<i>"`` (0-based)."""
    return "final" if layer == "final" else f"stage{int(layer)}"


def _check_layers(layers: Iterable[str | int]) -> list[str | int]:
    out = []
    for layer in layers:
        if layer != "final" and not (isinstance(layer, int) and not isinstance(layer, bool)):
            raise LsbenchError(f"ERF layer must be 'final' or a stage index, got {layer!r}")
        out.append(layer)
    if not out:
        raise LsbenchError("no ERF layer requested")
    return out


def _centre_score(feat: Tensor) -> Tensor:
    if feat.dim() != 4:
        raise LsbenchError(f"ERF needs a 4-D (N, C, H, W) feature map, got shape {tuple(feat.shape)}")
    h, w = feat.shape[-2:]
    return F.relu(feat[:, :, h // 2, w // 2]).sum()


@contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def normalize_map(raw: np.ndarray) -> np.ndarray:
    """RepLKNet's normalisation: ``log10(x + 1)`` divided by its max (an all-zero map stays zero)."""
    m = np.log10(np.asarray(raw, dtype=np.float64) + 1.0)
    peak = m.max()
    return m / peak if peak > 0 else m


@contextmanager
def _frozen(model: nn.Module):
    """Parameters need no gradient for an ERF (only d score / d input): autograd then skips every weight
    gradient and keeps less of the graph. Each parameter's own flag is restored."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _stage_features(model: nn.Module, outs: Sequence[Tensor], stages: Sequence[int]) -> dict[str | int, Tensor]:
    """The requested stage outputs, by index, from one :func:`stage_outputs` call."""
    feats: dict[str | int, Tensor] = {}
    for i in stages:
        if not -len(outs) <= i < len(outs):
            raise LsbenchError(f"stage {i} requested but {type(model).__name__} has {len(outs)} stages "
                               f"(0..{len(outs) - 1})")
        feats[i] = outs[i]
    return feats


def final_stage(model: nn.Module, x: Tensor, layers: Sequence[str | int],
                outs: Sequence[Tensor] | None = None) -> str | int | None:
    """The requested stage layer whose map IS the final map, or None.

    That is the last stage (index ``n-1`` or ``-1``) when ``forward_features`` returns exactly the last
    stage output (same shape and values on ``x``, e.g. LSNet): the final map then needs no forward or
    backward pass of its own. ``outs``: the stage outputs for ``x`` if they are at hand (they are then not
    computed again).
    """
    if "final" not in layers:
        return None
    with torch.no_grad(), _eval_mode(model):
        if outs is None:
            try:
                outs = stage_outputs(model, x)
            except LsbenchError:
                return None
        last = [layer for layer in layers if layer != "final" and layer in (len(outs) - 1, -1)]
        if not last:
            return None
        final = model.forward_features(x)
    same = final.shape == outs[-1].shape and torch.equal(final, outs[-1])
    return last[0] if same else None


#: Attribute names under which models keep their stem (zoo and timm conventions), in the order tried.
STEM_NAMES = ("patch_embed", "stem", "conv_stem")


def find_stem(model: nn.Module) -> nn.Module | None:
    """The module that turns the image into the first feature map, or None if the model names none."""
    for name in STEM_NAMES:
        stem = getattr(model, name, None)
        if isinstance(stem, nn.Module) and any(isinstance(m, nn.Conv2d) for m in stem.modules()):
            return stem
    return None


def _to_channels_last(_module, args):
    return tuple(a.contiguous(memory_format=torch.channels_last) if isinstance(a, Tensor) and a.dim() == 4 else a
                 for a in args)


def _to_contiguous(_module, _args, out):
    return out.contiguous() if isinstance(out, Tensor) else out


@contextmanager
def channels_last_stem(model: nn.Module):
    """Run ``model``'s stem (:func:`find_stem`) in channels-last memory format, everything after it as before.

    Why: at ERF resolutions the stem's few-channel maps are the largest tensors, and oneDNN reorders them to
    and from its blocked layout in every convolution backward; in channels-last it uses them as they are. On
    lsnet_b at 1024 px the stem's forward plus its four backward passes take half the time. The stem computes
    the same function (its gradients are bit-identical; the forward may round differently in the last bit).
    The stem's weights and the model's hooks are restored on exit."""
    stem = find_stem(model)
    if stem is None:
        yield
        return
    weights = [(p, p.data) for p in stem.parameters() if p.dim() == 4]  # restored as they were, layout included
    for p, data in weights:
        p.data = data.contiguous(memory_format=torch.channels_last)
    handles = [stem.register_forward_pre_hook(_to_channels_last), stem.register_forward_hook(_to_contiguous)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for p, data in weights:
            p.data = data


def _deploy_form(model: nn.Module) -> nn.Module:
    """A re-parameterized copy in the model's own mode (the folding needs eval-mode statistics, so it is taken
    in eval mode; erf_maps runs in eval mode anyway)."""
    from zoo import reparameterize

    fused = reparameterize(model)
    fused.train(model.training)
    return fused


def erf_maps(model: nn.Module, images: Tensor, layers: Sequence[str | int] = ("final",), *, batch_size: int = 1,
             device: str | torch.device = "cpu", normalize: bool = True, progress: bool = True,
             description: str = "ERF", fuse: bool = True, stem_channels_last: bool = True
             ) -> dict[str | int, np.ndarray]:
    """ERF maps of several layers of ``model``, one ``(H, W)`` array per layer.

    ``layers``: ``"final"`` (``forward_features``) and/or 0-based stage indices (:func:`stage_outputs`).
    ``normalize=False`` returns the raw averaged gradient map instead of the normalised one.
    The model runs in eval mode on ``device`` with its weights as given; its mode is restored.

    Each map is computed once: one forward per batch of images serves every layer (a backward pass from
    one stage's score reaches only the part of the graph below that stage, so it gives the same gradient
    as a forward of its own), one backward per distinct layer, and ``"final"`` shares the last stage's
    map when ``forward_features`` is that stage (:func:`final_stage`, checked on the first batch against
    its own stage outputs). Images are independent in eval mode, so ``batch_size`` images go through each
    pass together.

    ``fuse`` (default): differentiate a re-parameterized copy (:func:`zoo.reparameterize`; ``model`` itself is
    not changed), which skips every BatchNorm and the extra RepVGG branches in the forward and backward
    passes; ``fuse=False`` differentiates ``model`` as it is. ``stem_channels_last`` (default): the stem runs in
    channels-last memory format (:func:`channels_last_stem`), the same function, for less time.
    """
    layers = _check_layers(layers)
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        raise LsbenchError(f"ERF images must be a non-empty (N, 3, H, W) tensor, got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise LsbenchError(f"batch_size must be at least 1, got {batch_size}")
    device = torch.device(device)
    n, _, h, w = images.shape
    model = _deploy_form(model) if fuse else model
    model = model.to(device)
    sums = {layer: torch.zeros(h, w, dtype=torch.float64) for layer in layers}
    counts = dict.fromkeys(layers, 0)
    stages = [layer for layer in layers if layer != "final"]
    alias: str | int | None = None
    distinct: list[str | int] | None = None  # the layers with a backward of their own, fixed on the first batch
    layout = channels_last_stem(model) if stem_channels_last else nullcontext()
    with _eval_mode(model), _frozen(model), layout, torch.enable_grad(), progress_bar(progress) as bar:
        task = bar.add_task(description, total=n)
        for start in range(0, n, batch_size):
            x = images[start:start + batch_size].to(device).detach().requires_grad_(True)
            outs = stage_outputs(model, x) if stages else []
            feats = _stage_features(model, outs, stages)
            if distinct is None:
                alias = final_stage(model, x, layers, outs)
                distinct = [layer for layer in layers if not (alias is not None and layer == "final")]
            if "final" in distinct:
                feats["final"] = model.forward_features(x)
            del outs
            for k, layer in enumerate(distinct):
                (grad,) = torch.autograd.grad(_centre_score(feats[layer]), x, retain_graph=k < len(distinct) - 1,
                                              allow_unused=True)
                if grad is None:
                    grad = torch.zeros_like(x)
                per_image = F.relu(grad).sum(1).double().cpu()  # (B, H, W)
                ok = ~torch.isnan(per_image).flatten(1).any(1)
                sums[layer] += per_image[ok].sum(0)
                counts[layer] += int(ok.sum())
            del feats
            bar.advance(task, x.shape[0])
    if alias is not None:
        sums["final"], counts["final"] = sums[alias], counts[alias]
    out = {}
    for layer in layers:
        if counts[layer] == 0:
            raise LsbenchError(f"ERF of layer {layer_name(layer)}: every image gave a NaN gradient")
        if counts[layer] < n:
            warnings.warn(f"ERF of layer {layer_name(layer)}: {n - counts[layer]} of {n} images gave NaN gradients "
                          "and were skipped", stacklevel=2)
        raw = (sums[layer] / counts[layer]).numpy()
        out[layer] = normalize_map(raw) if normalize else raw
    return out


# --------------------------------------------------------------------------------------------------
# area ratio
# --------------------------------------------------------------------------------------------------

def high_contribution_square(erf: np.ndarray, threshold: float) -> tuple[int, float]:
    """``(side, ratio)``: the smallest centred square of side 2i+1 (i >= 1) holding more than
    ``threshold`` of the map's total, and side^2 / (H W) (capped at 1 once the square covers the map).

    Same as RepLKNet's ``get_rectangle``, except that the search continues until the square covers
    the whole map (RepLKNet stops at i = h//2 - 1 and returns None). NaN for an all-zero map.
    """
    data = np.asarray(erf, dtype=np.float64)
    if data.ndim != 2:
        raise LsbenchError(f"ERF map must be 2-D, got shape {data.shape}")
    if not 0 < threshold < 1:
        raise LsbenchError(f"area-ratio threshold must be in (0, 1), got {threshold}")
    if (data < 0).any():
        raise LsbenchError("ERF map must be non-negative")
    h, w = data.shape
    total = data.sum()
    if not total > 0:
        return 0, float("nan")
    ch, cw = h // 2, w // 2
    for i in range(1, max(h, w)):
        area = data[max(ch - i, 0):ch + i + 1, max(cw - i, 0):cw + i + 1].sum()
        if area / total > threshold:
            side = 2 * i + 1
            return side, min(side * side / (h * w), 1.0)
    raise AssertionError("unreachable: the full map holds all of the total")


def area_ratios(erf: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[float, float]:
    """High-contribution area ratio for each threshold, ``{t: side^2 / (H W)}``, of a normalised map."""
    return {float(t): high_contribution_square(erf, t)[1] for t in thresholds}


# --------------------------------------------------------------------------------------------------
# analysis of several models
# --------------------------------------------------------------------------------------------------

def weights_label(checkpoint: str | Path | None) -> tuple[str, str | None]:
    """``("random init", None)`` or ``("<path> (sha256 <first 12 hex>)", <full sha256>)``."""
    if checkpoint is None:
        return "random init", None
    p = Path(checkpoint)
    if not p.is_file():
        raise LsbenchError(f"checkpoint {p} does not exist")
    digest = sha256_of(p)
    return f"{p} (sha256 {digest[:12]})", digest


def _create_model(name: str, checkpoint: str | Path | None) -> nn.Module:
    from zoo import create_model

    return create_model(name) if checkpoint is None else create_model(name, checkpoint=str(checkpoint))


def erf_analysis(models: Sequence[str], images: Tensor, weights: dict[str, str | Path | None] | None = None,
                 stages: bool = True, seed: int = 0, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                 batch_size: int = 1, device: str | torch.device = "cpu", progress: bool = True,
                 fuse: bool = True):
    """ERF of each model (final features and, with ``stages``, every stage output).

    ``weights`` maps a model name to a checkpoint path, or None / absent for random init
    (``torch.manual_seed(seed)`` is called before each model is created, so random-init results
    are reproducible). ``fuse``: through the deploy form, as in :func:`erf_maps`. Returns ``(maps, table)``: ``maps[model][layer]`` is the normalised map,
    layer being ``"final"`` or ``"stage<i>"``; ``table`` is a tidy DataFrame with one row per
    (model, layer, threshold) and columns model, layer, threshold, side, ratio, weights, sha256,
    size, num_images.
    """
    import pandas as pd

    weights = dict(weights or {})
    unknown = set(weights) - set(models)
    if unknown:
        raise LsbenchError(f"weights given for models not analysed: {', '.join(sorted(unknown))}")
    if images.dim() != 4:
        raise LsbenchError(f"ERF images must be a (N, 3, H, W) tensor, got shape {tuple(images.shape)}")
    n, _, h, w = images.shape
    size = h if h == w else f"{h}x{w}"
    maps: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for name in models:
        ckpt = weights.get(name)
        label, digest = weights_label(ckpt)
        torch.manual_seed(seed)
        model = _create_model(name, ckpt)
        if fuse:
            model = _deploy_form(model)  # once, before the probe, so the probe runs the cheaper form too
        layers: list[str | int] = ["final"]
        if stages:
            with torch.no_grad(), _eval_mode(model):
                probe = stage_outputs(model.to(device), images[:1].to(device))
            layers += list(range(len(probe)))
        result = erf_maps(model, images, layers, batch_size=batch_size, device=device, progress=progress,
                          description=f"ERF {name}", fuse=False)
        maps[name] = {}
        for layer in layers:
            m = result[layer]
            maps[name][layer_name(layer)] = m
            for t in thresholds:
                side, ratio = high_contribution_square(m, t)
                rows.append(dict(model=name, layer=layer_name(layer), threshold=float(t), side=side, ratio=ratio,
                                 weights=label, sha256=digest, size=size, num_images=n))
        del model
    return maps, pd.DataFrame(rows, columns=["model", "layer", "threshold", "side", "ratio", "weights", "sha256",
                                              "size", "num_images"])
