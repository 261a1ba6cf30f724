"""Exact parameter counts of the registry models, cached in the package so that `lsbench list` needs neither
torch nor timm (building 40 models, even on the meta device, takes seconds; the listing should not).

The cache is valid for the timm version and the zoo sources it was computed with; when either differs, the
counts are computed on the meta device (:func:`lsbench.counting.param_counts_meta`), exact as ever.
``tests/test_param_cache.py`` fails when the committed file is stale; regenerate it with
``python -m lsbench.param_cache``.
"""
from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path

__all__ = ["CACHE_FILE", "cached_param_counts", "param_counts", "cache_key", "build_cache", "write_cache"]

CACHE_FILE = Path(__file__).with_name("param_counts.json")
_ZOO = Path(__file__).resolve().parents[1] / "zoo"


def cache_key() -> dict[str, str]:
    """What the counts depend on: timm's version (the baselines) and the zoo's model code (LSNet)."""
    digest = hashlib.sha256()
    for path in sorted(_ZOO.rglob("*.py")):
        digest.update(path.relative_to(_ZOO).as_posix().encode() + b"\0" + path.read_bytes())
    return {"timm": metadata.version("timm"), "zoo_sources": digest.hexdigest()[:16]}


@functools.cache
def _cache() -> dict[str, dict[str, int]]:
    try:
        data = json.loads(CACHE_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("counts", {}) if data.get("key") == cache_key() else {}


def cached_param_counts(name: str) -> dict[str, int] | None:
    """``{"total", "fused"}`` of ``name`` from the cache, or None when the cache does not hold it (or is stale)."""
    return _cache().get(name)


def param_counts(name: str) -> dict[str, int]:
    """Exact ``{"total", "fused"}`` params of registry model ``name``: cached, else counted on the meta device."""
    cached = cached_param_counts(name)
    if cached is not None:
        return dict(cached)
    from lsbench.counting import param_counts_meta

    return param_counts_meta(name)


def build_cache() -> dict:
    """Fresh counts of every buildable registry model, with the key they are valid for."""
    import zoo
    from lsbench.counting import param_counts_meta

    names = [n for n in zoo.list_models() if zoo.get_card(n).source != "reported"]
    return {"key": cache_key(), "counts": {n: param_counts_meta(n) for n in names}}


def write_cache(path: Path = CACHE_FILE) -> Path:
    path.write_text(json.dumps(build_cache(), indent=1, sort_keys=True) + "\n")
    _cache.cache_clear()
    return path


if __name__ == "__main__":
    print(f"written: {write_cache()}")
