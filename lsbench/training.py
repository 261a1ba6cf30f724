"""One training step as a timed call: forward, loss, backward, optimizer step, zero_grad.

:func:`train_step` turns a built model into the callable that the one timing path of :mod:`lsbench.profile`
times instead of an inference forward, so warm-up, windows, rounds, memory and the store work unchanged.
The model runs as built (unfused, ``model.train()``: BatchNorm updates its statistics, dropout is as the
model was configured) on a fixed batch with fixed random labels, as timm's benchmark.py times training.

:func:`decay_batch` is the batch size a CUDA out-of-memory retry uses next (timm's ``decay_batch_step``
policy, written here as a pure function so that it is tested without a GPU).
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import LsbenchError
from .settings import OPTIMIZERS

__all__ = ["TrainStep", "train_step", "make_optimizer", "decay_batch", "OPTIMIZER_RECIPES", "is_cuda_oom",
           "retry_on_oom"]

T = TypeVar("T")

# timm benchmark.py's train-mode optimizers (create_optimizer_v2(model, opt, lr=1e-4): SGD is Nesterov
# momentum 0.9, weight decay 0 for both); recorded with every train-mode result.
OPTIMIZER_RECIPES = {
    "sgd": {"class": "torch.optim.SGD", "lr": 1e-4, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0},
    "adamw": {"class": "torch.optim.AdamW", "lr": 1e-4, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
}


def make_optimizer(name: str, params) -> torch.optim.Optimizer:
    """The optimizer ``name`` (sgd | adamw) over ``params`` with the recipe of :data:`OPTIMIZER_RECIPES`."""
    if name not in OPTIMIZERS:
        raise LsbenchError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    recipe = {k: v for k, v in OPTIMIZER_RECIPES[name].items() if k != "class"}
    if name == "sgd":
        return torch.optim.SGD(params, **recipe)
    return torch.optim.AdamW(params, lr=recipe["lr"], betas=tuple(recipe["betas"]), eps=recipe["eps"],
                             weight_decay=recipe["weight_decay"])


def _loss(output, target: Tensor) -> Tensor:
    """Cross-entropy; a model with two heads in training (LSNet/DeiT distillation) gets the mean over heads."""
    if isinstance(output, (tuple, list)):
        return sum(F.cross_entropy(o.float(), target) for o in output) / len(output)
    return F.cross_entropy(output.float(), target)


@dataclass
class TrainStep:
    """``step()`` runs one training step on the fixed batch; ``steps`` counts them (warm-up, timed and the
    memory call alike). The loss is computed under ``autocast`` (when AMP is on) and backward outside it,
    as PyTorch's AMP recipe does; fp16 AMP scales the loss (``torch.amp.GradScaler``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    inputs: Tensor
    target: Tensor
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scaler: "torch.amp.GradScaler | None" = None
    steps: int = field(default=0)

    def __call__(self) -> None:
        with self.autocast():
            loss = _loss(self.model(self.inputs), self.target)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1


def train_step(model: nn.Module, inputs: Tensor, optimizer: str, *, amp_dtype: torch.dtype | None = None,
               num_classes: int | None = None, seed: int = 0) -> TrainStep:
    """A :class:`TrainStep` of ``model`` (put in train mode) on ``inputs`` with fixed random labels.

    ``amp_dtype`` set: forward and loss under ``torch.autocast`` to it (fp16 adds loss scaling).
    ``num_classes`` defaults to the model's ``num_classes`` (timm models all have one)."""
    classes = num_classes or getattr(model, "num_classes", None)
    if not classes:
        raise LsbenchError(f"{type(model).__name__} has no classifier (num_classes) to train against")
    model.train()
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, classes, (inputs.shape[0],), generator=generator).to(inputs.device)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scaler = None
    if amp_dtype is not None:
        device_type = inputs.device.type

        def autocast():
            return torch.autocast(device_type=device_type, dtype=amp_dtype)

        if amp_dtype == torch.float16:
            scaler = torch.amp.GradScaler(device_type)
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    return TrainStep(model, opt, inputs, target, autocast, scaler)


def decay_batch(batch: int, intra_steps: int = 2) -> int:
    """The next smaller batch to retry with after an out-of-memory error; 0 when batch 1 failed.

    Steps down between powers of two in ``intra_steps`` equal steps (timm's ``decay_batch_step`` policy):
    with 2 steps 256 -> 192 -> 128 -> 96 -> 64 -> 48 -> 32 -> 24 -> 16 -> 12 -> 8 -> 6 -> 4 -> 3 -> 2 -> 1 -> 0.
    The result is the largest ``base + k * step`` below ``batch``, where ``base`` is the largest power of two
    below ``batch`` and ``step = max(base // intra_steps, 1)``."""
    if intra_steps < 1:
        raise LsbenchError(f"intra_steps must be at least 1, got {intra_steps}")
    if batch <= 1:
        return 0
    base = 1 << ((batch - 1).bit_length() - 1)  # largest power of two strictly below batch
    step = max(base // intra_steps, 1)
    return base + ((batch - 1 - base) // step) * step


def is_cuda_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is CUDA running out of memory (the one error a smaller batch can cure)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or (
        isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc))


def retry_on_oom(run: Callable[[int], T], batch: int, cleanup: Callable[[], None] = lambda: None,
                 label: str = "") -> tuple[T, list[int]]:
    """``run(batch)``, retried at :func:`~lsbench.training.decay_batch`'s next batch after each CUDA
    out-of-memory error, as timm's benchmark.py retries (only out-of-memory: any other error is real).
    Returns the result and the batches that ran out of memory; refuses in one line when batch 1 did."""
    failed: list[int] = []
    while batch >= 1:
        try:
            return run(batch), failed
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
            if not is_cuda_oom(exc):
                raise
        failed.append(batch)  # outside the except block: its traceback (holding the model) is gone
        gc.collect()
        cleanup()
        batch = decay_batch(batch)
    raise LsbenchError(f"{label + ': ' if label else ''}CUDA out of memory even at batch 1 "
                       f"(tried {', '.join(map(str, failed))})")
