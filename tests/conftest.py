"""Shared test setup: conformance data, deterministic seeds, and skipping of CUDA-marked tests."""
import os
from pathlib import Path

import pytest
import torch

# The CLI's untimed work (counts, exports) runs in-process in tests, as the library's default does: a pool of
# worker processes per CLI call would cost each test their start-up; tests/test_untimed.py runs the pool.
os.environ.setdefault("LSBENCH_WORKERS", "1")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
