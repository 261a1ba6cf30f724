"""The registry of benchmarked models: what each is, where it comes from, and what was published about it.

Every model lsbench compares has a :class:`ModelCard` built from ``published.toml`` (cited data, no numbers
in code). ``create_model`` builds zoo models (LSNet) and timm baselines alike; any other timm name works as
an ad-hoc model with an empty card. Unknown names fail with one line suggesting close names.

A card whose ``source`` is ``"reported"`` (EdgeViT, AFFNet: no code in timm or the zoo) holds published
figures only: it is listed with ``list_models(include_reported=True)``, its points are always drawn hollow
(reported), and ``create_model`` refuses it with one line.
"""
from __future__ import annotations

import copy
import difflib
import functools
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import ZooError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["Figure", "ModelCard", "list_models", "get_card", "create_model", "reparameterize", "citation",
           "protocol_description", "REPARAM_METHOD", "copy_model"]

SOURCES = ("zoo", "timm", "reported")
REPARAM_METHOD = "timm.utils.reparameterize_model (fuse()/reparameterize() of each module, eval + no_grad)"


@dataclass(frozen=True)
class Figure:
    """One published number with where it came from."""

    metric: str
    value: float
    unit: str
    cite: str
    device: str | None = None
    protocol: str | None = None
    note: str | None = None
    #: read off a plot rather than copied from a table or text: approximate, to the reader's precision
    from_figure: bool = False
    #: decimal places as the source writes the number, where a TOML float drops trailing zeros ("1.90" is
    #: stored as 1.9 with digits = 2); None: the value's own digits are the published precision
    digits: int | None = None

    def __post_init__(self) -> None:
        if self.digits is not None:
            own = max(0, -Decimal(repr(float(self.value))).normalize().as_tuple().exponent)
            if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not own <= self.digits <= 12:
                raise RuntimeError(f"published figure {self.metric} = {self.value}: digits must be an integer from "
                                   f"{own} (the value's own decimals) to 12, got {self.digits!r}")

    @property
    def written(self) -> Decimal:
        """The number as the source writes it, trailing zeros included: what measurements are rounded against."""
        value = Decimal(repr(float(self.value))) if isinstance(self.value, float) else Decimal(self.value)
        return value if self.digits is None else value.quantize(Decimal(1).scaleb(-self.digits))


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    source: str  # "zoo", "timm" or "reported" (figures only, no code to build)
    input_size: int | None  # None only for a reported card whose source gives no input size
    figures: tuple[Figure, ...] = field(default_factory=tuple)
    adhoc: bool = False
    reparam: str = REPARAM_METHOD

    def figure(self, metric: str, device: str | None = None, protocol: str | None = None) -> Figure | None:
        """The first published figure for ``metric`` (optionally on a device / under a protocol)."""
        for fig in self.figures:
            if fig.metric == metric and device in (None, fig.device) and protocol in (None, fig.protocol):
                return fig
        return None

    def published(self, metric: str) -> float | None:
        fig = self.figure(metric)
        return None if fig is None else fig.value

    @property
    def reported_only(self) -> bool:
        """No code to build: every point of this model is a cited figure."""
        return self.source == "reported"


@functools.cache
def _data() -> dict:
    with resources.files("zoo").joinpath("published.toml").open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def _cards() -> dict[str, ModelCard]:
    cards = {}
    data = _data()
    for name, entry in data["models"].items():
        figures = tuple(Figure(**fig) for fig in entry.get("figures", ()))
        unknown = {f.cite for f in figures} - set(data["citations"])
        unknown |= {f"protocol {f.protocol}" for f in figures if f.protocol and f.protocol not in data["protocols"]}
        if unknown:
            raise RuntimeError(f"published.toml: {name} cites unknown sources {sorted(unknown)}")
        source = entry["source"]
        if source not in SOURCES:
            raise RuntimeError(f"published.toml: {name} has source {source!r}, not one of {SOURCES}")
        size = entry.get("input_size")
        if size is None and source != "reported":
            raise RuntimeError(f"published.toml: {name} has no input_size")
        cards[name] = ModelCard(name=name, family=entry["family"], source=source,
                                input_size=None if size is None else int(size), figures=figures)
    return cards


def citation(key: str) -> str:
    return _data()["citations"][key]


def protocol_description(key: str) -> str:
    return _data()["protocols"][key]


def list_models(family: str | None = None, include_reported: bool = False) -> list[str]:
    """Names of the registry's models that can be built, in registry order; ``include_reported`` adds the
    reported-only cards (published figures, no code)."""
    return [n for n, c in _cards().items() if (family is None or c.family.lower() == family.lower())
            and (include_reported or not c.reported_only)]


@functools.cache
def _timm_names() -> frozenset[str]:
    return frozenset(_timm().list_models())


def _timm():
    """timm, with LSNet registered in it: imported on the first model built or looked up, not before, so that
    the cards (and `lsbench list`) need neither torch nor timm."""
    import timm

    from . import lsnet  # noqa: F401  (registers the LSNet factories with timm)

    return timm


def _suggest(name: str) -> str:
    pool = list(_cards()) + sorted(_timm_names() - set(_cards()))
    close = [n for n in pool if n.lower() == name.lower()]  # the same name in another case first
    close += [n for n in difflib.get_close_matches(name.lower(), pool, n=4, cutoff=0.6) if n not in close]
    if not close:
        close = [n for n in pool if name.lower().split("_")[0] in n][:4]
    close = close[:4]
    return f"; did you mean {', '.join(close)}?" if close else ""


def get_card(name: str) -> ModelCard:
    """The registry card for ``name``; an empty ad-hoc card for any other timm model."""
    cards = _cards()
    if name in cards:
        return cards[name]
    if name in _timm_names():
        cfg = _timm().get_pretrained_cfg(name)
        size = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224
        return ModelCard(name=name, family="timm", source="timm", input_size=size, adhoc=True)
    raise ZooError(f"unknown model '{name}'{_suggest(name)}")


FEATURE_KWARGS = ("features_only", "out_indices", "feature_cls", "feature_cfg")


def create_model(name: str, checkpoint: str | Path | None = None, sha256: str | None = None,
                 num_classes: int | None = None, **kwargs) -> nn.Module:
    """Build a registry (or any timm) model with random weights, or weights from ``checkpoint``.

    ``features_only=True`` (timm's feature-map backbone) with a checkpoint: the file is loaded into the whole
    model first (strict, sha256, one-line key diff), then timm builds the backbone from those weights."""
    card = get_card(name)
    if card.reported_only:
        raise ZooError(f"{name} is a reported-only card ({card.family} has no code in timm or the zoo): "
                       "its published figures are data, there is no model to build")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if checkpoint is not None and kwargs.get("features_only"):
        whole = create_model(name, checkpoint, sha256, **{k: v for k, v in kwargs.items() if k not in FEATURE_KWARGS})
        model = _timm_model(name, pretrained=True, pretrained_cfg_overlay=dict(state_dict=whole.state_dict()),
                            **kwargs)
        model.pretrained_cfg.pop("state_dict", None)  # the weights are in the model; keep the config small
        model.lsbench_card, model.lsbench_checkpoint = card, whole.lsbench_checkpoint
        return model
    model = _timm_model(name, pretrained=False, **kwargs)
    model.lsbench_card = card
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        model.lsbench_checkpoint = load_checkpoint(model, checkpoint, sha256=sha256, model_name=name)
    return model


def _timm_model(name: str, **kwargs) -> nn.Module:
    try:
        return _timm().create_model(name, **kwargs)
    except TypeError as exc:
        raise ZooError(f"{name}: bad model arguments ({exc})") from None


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy that also works on models holding cached non-leaf tensors.

    timm's EfficientViT-M caches its attention bias after a forward with grad, which deepcopy refuses;
    toggling train mode clears such caches, and every module's own flag is restored afterwards.
    """
    try:
        return copy.deepcopy(model)
    except RuntimeError:
        flags = [(m, m.training) for m in model.modules()]
        model.train(True)
        for m, flag in flags:
            m.training = flag
        try:
            return copy.deepcopy(model)
        except RuntimeError as exc:
            raise ZooError(f"cannot copy {type(model).__name__}: {exc}") from None


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """The deploy form: every Conv-BN, BN-Linear and re-parameterizable branch folded.

    Runs in eval mode under no_grad (timm's EfficientViT-M fails to fuse after a forward with grad).
    """
    import torch
    from timm.utils import reparameterize_model

    was_training = model.training
    target = model if inplace else copy_model(model)
    target.eval()
    with torch.no_grad():
        fused = reparameterize_model(target, inplace=True)
    if was_training and inplace:
        fused.train()
    return fused
