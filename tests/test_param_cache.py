"""The packaged parameter counts that keep `lsbench list` free of torch and timm are exact and fresh."""
import json

from lsbench import param_cache
from lsbench.counting import param_counts_meta


def test_committed_cache_is_fresh_and_exact():
    committed = json.loads(param_cache.CACHE_FILE.read_text())
    assert committed["key"] == param_cache.cache_key(), "stale: run `python -m lsbench.param_cache`"
    fresh = param_cache.build_cache()
    assert committed == fresh


def test_counts_fall_back_to_the_meta_device_when_the_cache_is_stale(monkeypatch):
    monkeypatch.setattr(param_cache, "cache_key", lambda: {"timm": "other", "zoo_sources": "x"})
    param_cache._cache.cache_clear()
    try:
        assert param_cache.cached_param_counts("lsnet_t") is None
        assert param_cache.param_counts("lsnet_t") == param_counts_meta("lsnet_t") == {"total": 11_409_832,
                                                                                        "fused": 11_370_488}
    finally:
        param_cache._cache.cache_clear()
