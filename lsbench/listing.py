"""The zoo listing: every registry model with its measured parameter counts beside its published figures."""
from __future__ import annotations

import pandas as pd

import zoo
from lsbench.errors import LsbenchError
from lsbench.param_cache import param_counts

__all__ = ["zoo_listing"]


def zoo_listing(family: str | None = None) -> pd.DataFrame:
    """One row per registry model: family, source, input size, measured params and published figures."""
    names = zoo.list_models(family)
    if not names:
        families = sorted({zoo.get_card(n).family for n in zoo.list_models()}, key=str.lower)
        raise LsbenchError(f"unknown family {family!r}; families: {', '.join(families)}")
    rows = []
    for name in names:
        card = zoo.get_card(name)
        counts = param_counts(name)
        top1 = card.figure("top1")
        rows.append({
            "model": name, "family": card.family, "source": card.source, "input": card.input_size,
            "params": counts["total"], "params_fused": counts["fused"],
            "published_params_M": card.published("params"), "published_GMACs": card.published("macs"),
            "published_top1": top1.value if top1 else None, "cite": top1.cite if top1 else None,
        })
    return pd.DataFrame(rows)
