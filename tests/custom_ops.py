"""Custom ops that only the tests define: an op no counter or exporter knows (registered once per process)."""
import torch
from torch import nn


@torch.library.custom_op("lsbench_test::twice", mutates_args=())
def twice(x: torch.Tensor) -> torch.Tensor:
    return x * 2


@twice.register_fake
def _(x):
    return torch.empty_like(x)


class Twice(nn.Module):
    def forward(self, x):
        return torch.ops.lsbench_test.twice(x)
