"""Checkpoint loading for every zoo model: one reader for .pth/.pt/.bin/.safetensors, strict key matching.

The official LSNet training code saves ``{'model': state_dict, ...}``; its timm-hub copies are bare
state_dicts (``pytorch_model.bin``); DDP checkpoints carry a ``module.`` prefix. All of them load here
with ``weights_only=True`` (no pickled code runs), an optional sha256 check, and an error that names the
missing, unexpected and mis-shaped keys when the file does not fit the model.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import ZooError

__all__ = ["read_state_dict", "load_checkpoint", "sha256_of", "diff_keys", "WRAPPER_KEYS"]

WRAPPER_KEYS = ("model", "state_dict")
_LIST_LIMIT = 6


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    """Peel ``{'model': ...}`` / ``{'state_dict': ...}`` and a ``module.`` prefix."""
    while isinstance(obj, Mapping):
        inner = next((obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise ZooError(f"{path}: no state_dict found (expected a dict of tensors, or one under 'model'/'state_dict')")
    tensors = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ZooError(f"{path}: the checkpoint holds no tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in tensors.items()}


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, Tensor]:
    """Read a state_dict from .pth/.pt/.bin (torch, weights only) or .safetensors, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            raise ZooError(f"{path}: sha256 mismatch (expected {sha256}, got {actual})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            obj = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated or foreign files surface many exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ZooError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {reason})") from None
    return _unwrap(obj, path)


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


def _classifier_names(model: nn.Module) -> list[str]:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    names = cfg.get("classifier") or ()
    return [names] if isinstance(names, str) else list(names)


def _drop_mismatched_classifier(model: nn.Module, model_sd: Mapping[str, Tensor],
                                ckpt: dict[str, Tensor]) -> list[str]:
    """Like timm with a different ``num_classes``: keep the model's fresh classifier, drop the file's."""
    dropped = []
    for name in _classifier_names(model):
        for suffix in (".weight", ".bias"):
            key = name + suffix
            if key in ckpt and key in model_sd and ckpt[key].shape != model_sd[key].shape:
                del ckpt[key]
                dropped.append(key)
    return dropped


def load_checkpoint(model: nn.Module, path: str | Path, sha256: str | None = None,
                    model_name: str | None = None) -> dict:
    """Load ``path`` into ``model`` strictly; return a small report (path, sha256, dropped keys)."""
    ckpt = read_state_dict(path, sha256)
    model_sd = model.state_dict()
    dropped = _drop_mismatched_classifier(model, model_sd, ckpt)
    for key in dropped:  # the model keeps its own freshly initialised classifier
        ckpt[key] = model_sd[key]
    missing, unexpected, misshaped = diff_keys(model_sd, ckpt)
    if missing or unexpected or misshaped:
        target = model_name or type(model).__name__
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_listing(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_listing(unexpected)})")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped ("
                         + _listing([f"{k}: file {a} vs model {b}" for k, a, b in misshaped]) + ")")
        hint = ""
        if any(k.startswith("head_dist.") for k in unexpected):
            hint = "; this is a distilled checkpoint: use the model's _distill variant"
        elif any(k.startswith("head_dist.") for k in missing):
            hint = "; this checkpoint is not distilled: use the variant without _distill"
        raise ZooError(f"{path} does not fit {target}: " + "; ".join(parts) + hint)
    model.load_state_dict(ckpt, strict=True)
    return {"path": str(path), "sha256": sha256_of(path), "dropped_classifier": dropped}
