"""The zoo listing: every registry model with its measured parameter counts beside its published figures."""
from __future__ import annotations

import pandas as pd
import torch

import zoo

__all__ = ["zoo_listing", "param_counts_meta"]


def param_counts_meta(name: str) -> tuple[int, int]:
    """(params as built, params reparameterized), built on the meta device: exact counts, no memory."""
    with torch.device("meta"):
        model = zoo.create_model(name).eval()
        as_built = sum(p.numel() for p in model.parameters())
        fused = sum(p.numel() for p in zoo.reparameterize(model, inplace=True).parameters())
    return as_built, fused


def zoo_listing(family: str | None = None) -> pd.DataFrame:
    """One row per registry model: family, source, input size, measured params and published figures."""
    rows = []
    for name in zoo.list_models(family):
        card = zoo.get_card(name)
        as_built, fused = param_counts_meta(name)
        top1 = card.figure("top1")
        rows.append({
            "model": name, "family": card.family, "source": card.source, "input": card.input_size,
            "params": as_built, "params_fused": fused,
            "published_params_M": card.published("params"), "published_GMACs": card.published("macs"),
            "published_top1": top1.value if top1 else None, "cite": top1.cite if top1 else None,
        })
    return pd.DataFrame(rows)
