"""Checkpoint loading for every zoo model: one reader for .pth/.pt/.bin/.safetensors, strict key matching.

The official LSNet training code saves ``{'model': state_dict, 'model_ema': ..., 'args': Namespace, ...}``;
its timm-hub copies are bare state_dicts (``pytorch_model.bin``); DDP / compiled models add ``module.`` /
``_orig_mod.`` prefixes. :func:`checkpoint_filter_fn` turns any of these into the model's state_dict; it is
the one filter both for timm's pretrained loading (``pretrained_filter_fn``) and for :func:`load_checkpoint`.
Files are read with ``weights_only=True`` (no pickled code runs; ``argparse.Namespace`` is allowed for the
official ``args`` entry), with an optional sha256 check, and a one-line error that names the missing,
unexpected and mis-shaped keys when the file does not fit the model.
"""
from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ZooError

__all__ = ["read_state_dict", "read_checkpoint", "load_checkpoint", "checkpoint_filter_fn", "sha256_of", "diff_keys",
           "WRAPPER_KEYS"]

# 'model' first: the official evaluation reads checkpoint['model'] (its accuracy is the published one), not
# 'model_ema', which timm's generic reader would prefer
WRAPPER_KEYS = ("model", "state_dict")
PREFIXES = ("module.", "_orig_mod.")
_LIST_LIMIT = 6


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _unwrap(obj: object) -> Mapping:
    """Peel ``{'model': ...}`` / ``{'state_dict': ...}`` wrappers (outermost first)."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    return obj


def _strip(key: str) -> str:
    while key.startswith(PREFIXES):
        key = next(key[len(p):] for p in PREFIXES if key.startswith(p))
    return key


def checkpoint_filter_fn(state_dict: Mapping, model: nn.Module | None = None) -> dict[str, Tensor]:
    """Any official layout -> the model's state_dict: wrappers peeled, DDP/compile prefixes stripped,
    non-tensor entries dropped. A distilled checkpoint (``head_dist.*``) for a model without the second
    head, or the reverse, is refused with the variant to use (the heads cannot be mapped onto each other)."""
    obj = _unwrap(state_dict)
    if not isinstance(obj, Mapping) or not obj:
        raise ZooError("no state_dict found (expected a dict of tensors, or one under 'model'/'state_dict')")
    tensors = {_strip(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ZooError("the checkpoint holds no tensors")
    distilled = getattr(model, "distillation", None)  # LSNet's flag; other models have none
    if distilled is not None:
        file_distilled = any(k.startswith("head_dist.") for k in tensors)
        if file_distilled and not distilled:
            raise ZooError("this is a distilled checkpoint: use the model's _distill variant "
                           "(the file has head_dist.*)")
        if distilled and not file_distilled and getattr(model, "num_classes", 0) > 0:
            raise ZooError("this checkpoint is not distilled: use the variant without _distill "
                           "(the file has no head_dist.*)")
    return tensors


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, Tensor]:
    """Read a state_dict from .pth/.pt/.bin (torch, weights only) or .safetensors, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            raise ZooError(f"{path}: sha256 mismatch (expected {sha256}, got {actual})")
    obj = read_checkpoint(path)  # its errors name the path already
    try:
        return checkpoint_filter_fn(obj, None)
    except ZooError as exc:
        raise ZooError(f"{path}: {exc}") from None


def read_checkpoint(path: Path) -> object:
    """The raw object in a checkpoint file (weights only), read on the CPU."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path), device="cpu")
        with torch.serialization.safe_globals([argparse.Namespace]):  # the official checkpoints' 'args'
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or foreign files surface many exception types
        raise ZooError(f"{path}: cannot read checkpoint ({refusal_reason(exc)})") from None


# torch names the global a pickle asked for in a line like
# "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL)\s+([\w.]+)", re.IGNORECASE)


def refusal_reason(exc: Exception) -> str:
    """Why a file could not be read, in one line, never suggesting ``weights_only=False``: a pickle that
    asks for a Python global (code to run on load) is named as such, with the global; anything else is the
    first line of the error that is not torch's advice to turn the safety off."""
    text = str(exc)
    found = _GLOBAL.search(text)
    if found:
        return (f"the file asks to run code on load (it names the Python global {found.group(1)}); only weights "
                f"are loaded here, so it was refused")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    advice = ("weights_only", "weights only load failed", "please file an issue", "check the documentation")
    useful = [ln for ln in lines if not any(a in ln.lower() for a in advice)]
    reason = useful[0] if useful else "no message"
    # random bytes, truncated zips and foreign pickles surface as many exception types (UnpicklingError,
    # IndexError, EOFError, RuntimeError, ...): all mean the same to the user
    return f"not a PyTorch checkpoint or a corrupt one: {type(exc).__name__}: {reason}"


def diff_keys(model_sd: Mapping[str, Tensor], ckpt: Mapping[str, Tensor]) -> tuple[list, list, list]:
    """(missing, unexpected, mis-shaped as (key, ckpt shape, model shape))."""
    missing = [k for k in model_sd if k not in ckpt]
    unexpected = [k for k in ckpt if k not in model_sd]
    misshaped = [(k, tuple(ckpt[k].shape), tuple(v.shape)) for k, v in model_sd.items()
                 if k in ckpt and tuple(ckpt[k].shape) != tuple(v.shape)]
    return missing, unexpected, misshaped


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_LIST_LIMIT])
    return shown + (f", ... (+{len(items) - _LIST_LIMIT} more)" if len(items) > _LIST_LIMIT else "")


def _cfg_names(model: nn.Module, key: str) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    names = cfg.get(key) or ()
    return [names] if isinstance(names, str) else list(names)


def _adapt_classifier(model: nn.Module, model_sd: Mapping[str, Tensor], ckpt: dict[str, Tensor]) -> list[str]:
    """Like timm with another ``num_classes``: the file's classifier is dropped where the model's differs
    (the model keeps its fresh one); with no classifier at all (``num_classes=0``) the file's whole head
    module (e.g. LSNet's BN + Linear ``head.*``) goes. Returns the dropped keys."""
    dropped = []
    for name in _cfg_names(model, "classifier"):
        keys = [name + ".weight", name + ".bias"]
        parent = name.rpartition(".")[0]
        if parent and not any(k.startswith(parent + ".") for k in model_sd):
            keys = [k for k in ckpt if k.startswith(parent + ".")]
        for key in keys:
            if key in ckpt and (key not in model_sd or ckpt[key].shape != model_sd[key].shape):
                del ckpt[key]
                dropped.append(key)
                if key in model_sd:
                    ckpt[key] = model_sd[key]
    return dropped


def _adapt_first_conv(model: nn.Module, model_sd: Mapping[str, Tensor], ckpt: dict[str, Tensor]) -> list[str]:
    """Like timm with another ``in_chans``: the first conv's RGB filters summed (1 channel) or tiled."""
    from timm.models import adapt_input_conv

    adapted = []
    for name in _cfg_names(model, "first_conv"):
        key = name + ".weight"
        if key in ckpt and key in model_sd and ckpt[key].dim() == 4:
            ours, theirs = model_sd[key].shape, ckpt[key].shape
            if ours[1] != theirs[1] and (ours[0], *ours[2:]) == (theirs[0], *theirs[2:]):
                ckpt[key] = adapt_input_conv(ours[1], ckpt[key])
                adapted.append(key)
    return adapted


def load_checkpoint(model: nn.Module, path: str | Path, sha256: str | None = None,
                    model_name: str | None = None) -> dict:
    """Load ``path`` into ``model`` strictly; return a small report (path, sha256, adapted keys).

    Only a different class count (classifier dropped) or input channel count (first conv adapted) is
    tolerated, as in timm; any other difference is a one-line error naming the keys."""
    path = Path(path)
    target = model_name or type(model).__name__
    ckpt_sd = read_state_dict(path, sha256)
    try:
        ckpt = checkpoint_filter_fn(ckpt_sd, model)
    except ZooError as exc:
        raise ZooError(f"{path} does not fit {target}: {exc}") from None
    model_sd = model.state_dict()
    dropped = _adapt_classifier(model, model_sd, ckpt)
    adapted = _adapt_first_conv(model, model_sd, ckpt)
    missing, unexpected, misshaped = diff_keys(model_sd, ckpt)
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped ("
                         + _listing([f"{k}: file {a} vs model {b}" for k, a, b in misshaped]) + ")")
        raise ZooError(f"{path} does not fit {target}: " + "; ".join(parts))
    model.load_state_dict(ckpt, strict=True)
    return {"path": str(path), "sha256": sha256_of(path), "dropped_classifier": dropped,
            "adapted_first_conv": adapted}
