"""Micro-benchmarks (pytest-benchmark), not run by CI: `pytest benchmarks --benchmark-only`.

Every benchmark runs single-threaded on the CPU unless it says otherwise, so numbers compare across runs.
"""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
