"""lsbench's model zoo: LSNet written here (checkpoint-compatible with the official code) and the timm
baselines it is compared with, each with its published figures as cited data. The SKA operator lives in
``zoo.ska`` (``zoo.ska.ska`` is its single dispatch point).

``import zoo`` is cheap: the registry (cards and cited figures) loads without torch or timm, and every other
name is imported on first use. LSNet (``lsnet_{t,s,b}[_distill]``, pretrained configs included) is registered
with timm as soon as ``zoo.lsnet`` is imported, which any zoo model build does; ``import zoo.lsnet`` (or
``import zoo`` after ``import timm``) does it up front, so that ``timm.create_model("lsnet_t",
features_only=True)``, ``timm.list_pretrained("lsnet*")`` and the rest of timm's model API work as for timm's
own models.
"""
from __future__ import annotations

import importlib
import sys

from .errors import ZooError

# public name -> the submodule that owns it
_OWNERS = {
    "LSNet": "lsnet", "LKP": "lsnet", "LSConv": "lsnet", "LSNET_CONFIGS": "lsnet",
    "SKA": "ska",
    "checkpoint_filter_fn": "checkpoint", "load_checkpoint": "checkpoint", "read_state_dict": "checkpoint",
    "Figure": "registry", "ModelCard": "registry", "copy_model": "registry", "create_model": "registry",
    "get_card": "registry", "list_models": "registry", "reparameterize": "registry",
}
_SUBMODULES = ("checkpoint", "errors", "lsnet", "lsnet_cpu", "registry", "ska")

__all__ = ["LSNet", "LKP", "LSConv", "SKA", "LSNET_CONFIGS", "create_model", "list_models", "get_card",
           "reparameterize", "copy_model", "load_checkpoint", "read_state_dict", "checkpoint_filter_fn", "ModelCard",
           "Figure", "ZooError"]


def __getattr__(name: str):
    if name in _OWNERS:
        value = getattr(importlib.import_module(f".{_OWNERS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_SUBMODULES))


if "timm" in sys.modules:  # timm is loaded already: registering LSNet with it costs nothing more
    importlib.import_module(".lsnet", __name__)
