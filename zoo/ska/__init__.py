"""SKA, small-kernel aggregation: LSNet's per-pixel dynamic 3x3 convolution, in three modules with one job each.

* :mod:`zoo.ska.reference`: the definition in plain PyTorch (shapes, taps, forward, backward, decomposition,
  MACs); imports only torch.
* :mod:`zoo.ska.op`: the ``zoo::ska`` / ``zoo::ska_backward`` custom ops, their CPU and fake implementations,
  and :func:`ska`, the one dispatch point every model calls.
* :mod:`zoo.ska.triton`: the CUDA kernels, imported only by :func:`use_triton` (the CPU path never imports
  Triton).

Imports point one way: op -> reference, triton -> reference, op -> triton (lazily, in :func:`use_triton`).
"""
from .op import SKA, reference_ska, register_cuda_kernel, ska, use_triton
from .reference import KERNEL_SIZE, TAPS, ska_backward_reference, ska_decomposition, ska_macs, ska_reference

__all__ = ["SKA", "ska", "ska_reference", "ska_backward_reference", "ska_decomposition", "reference_ska",
           "register_cuda_kernel", "use_triton", "ska_macs", "KERNEL_SIZE", "TAPS"]
