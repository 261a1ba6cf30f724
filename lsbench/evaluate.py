"""ImageNet-style top-1 / top-5 evaluation of a classifier on an ImageFolder directory.

Preprocessing is the official LSNet/timm evaluation one by default: resize the shorter side to 256
(bicubic), centre crop 224, ImageNet mean/std; everything can be overridden. Image files that cannot
be decoded are reported (a warning, and the ``skipped`` list of the result) and left out of the
counts; they never stop the run.

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) every process evaluates the samples
``rank, rank + world, rank + 2 world, ...`` (so each sample is counted exactly once, no padding
duplicates as with ``DistributedSampler``), and the counts are all-reduced. The process group is
initialised here if the caller has not done it (``nccl`` on CUDA, ``gloo`` otherwise) and then
destroyed again. Rank 0 returns the result; the other ranks return ``None``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision.datasets import ImageFolder

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from lsbench.errors import LsbenchError
from lsbench.progress import progress_bar

__all__ = ["IMAGENET_DEFAULT_MEAN", "IMAGENET_DEFAULT_STD", "INTERPOLATIONS", "SafeImageFolder", "build_transform",
           "evaluate", "evaluate_model"]

INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")


def build_transform(resize: int = 256, crop: int = 224, interpolation: str = "bicubic",
                    mean: Sequence[float] = IMAGENET_DEFAULT_MEAN, std: Sequence[float] = IMAGENET_DEFAULT_STD):
    """Resize the shorter side to ``resize``, centre crop ``crop``, to tensor, normalise."""
    from torchvision import transforms

    if interpolation not in INTERPOLATIONS:
        raise LsbenchError(f"unknown interpolation {interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
    if resize < 1 or crop < 1 or crop > resize:
        raise LsbenchError(f"need 1 <= crop <= resize, got resize={resize}, crop={crop}")
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise LsbenchError(f"mean and std need 3 values each (std > 0), got mean={tuple(mean)}, std={tuple(std)}")
    return transforms.Compose([
        transforms.Resize(resize, interpolation=transforms.InterpolationMode(interpolation)),
        transforms.CenterCrop(crop),
        transforms.ToTensor(),
        transforms.Normalize(tuple(mean), tuple(std)),
    ])


class SafeImageFolder(ImageFolder):
    """An ImageFolder whose items are ``(tensor | None, target, (path, reason) | None)``: decoding errors are
    returned, not raised (module level so that DataLoader workers can pickle it under any start method)."""

    def __getitem__(self, index):
        path, target = self.samples[index]
        try:
            sample = self.transform(self.loader(path))
        except Exception as e:  # noqa: BLE001 - any decoding failure means "unreadable"
            return None, target, (str(path), f"{type(e).__name__}: {e}")
        return sample, target, None


def _safe_image_folder(root: Path, transform) -> SafeImageFolder:
    try:
        return SafeImageFolder(str(root), transform=transform, allow_empty=True)
    except FileNotFoundError as e:
        raise LsbenchError(f"{root} is not an ImageFolder directory (one sub-directory per class): {e}") from None


def _collate(batch):
    good = [(x, y) for x, y, err in batch if err is None]
    errors = [err for _x, _y, err in batch if err is not None]
    if good:
        xs = torch.stack([x for x, _ in good])
        ys = torch.tensor([y for _, y in good], dtype=torch.long)
    else:
        xs, ys = None, None
    return xs, ys, errors


def _distributed_setup(device: torch.device):
    """Returns ``(rank, world, device, initialised_here)``; world 1 when not under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device, False
    import torch.distributed as dist

    if not dist.is_available():
        raise LsbenchError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        here = True
    return dist.get_rank(), dist.get_world_size(), device, here


def evaluate(model: nn.Module, data_dir: str | Path, batch_size: int = 64, workers: int = 2, resize: int = 256,
             crop: int = 224, interpolation: str = "bicubic", mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
             std: Sequence[float] = IMAGENET_DEFAULT_STD, device: str | torch.device = "cpu",
             progress: bool = True) -> dict | None:
    """Top-1 / top-5 accuracy of ``model`` on the ImageFolder ``data_dir``.

    Returns ``{"top1": float, "top5": float, "n": int, "skipped": list[str]}``: accuracies as
    fractions of the ``n`` images that were read, ``skipped`` the paths of the files that could not
    be. Top-5 is top-k with k = min(5, number of model outputs). Class indices are the sorted
    sub-directory names (as torchvision's ImageFolder); the model must have at least as many outputs.
    Under torchrun, rank 0 returns the result and the other ranks ``None`` (module docstring).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise LsbenchError(f"evaluation directory {root} does not exist or is not a directory")
    if batch_size < 1:
        raise LsbenchError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise LsbenchError(f"workers must be >= 0, got {workers}")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise LsbenchError(f"bad device {device!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LsbenchError("device 'cuda' requested but no CUDA GPU is available")

    dataset = _safe_image_folder(root, build_transform(resize, crop, interpolation, mean, std))
    if len(dataset) == 0:
        raise LsbenchError(f"no image files found in the class folders of {root}")
    num_classes = len(dataset.classes)

    rank, world, device, initialised_here = _distributed_setup(device)
    try:
        shard = Subset(dataset, range(rank, len(dataset), world))
        loader = DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=workers,
                            collate_fn=_collate, pin_memory=device.type == "cuda", drop_last=False)
        model = model.to(device).eval()
        counts = torch.zeros(3, dtype=torch.long)  # correct top-1, correct top-k, n
        errors: list[tuple[str, str]] = []
        with torch.inference_mode(), progress_bar(progress and rank == 0) as bar:
            task = bar.add_task(f"evaluating {root.name or root}", total=len(loader))
            for xs, ys, errs in loader:
                errors.extend(errs)
                if xs is not None:
                    logits = model(xs.to(device, non_blocking=True))
                    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
                        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                        raise LsbenchError(f"the model must return (batch, classes) logits, got {shape}")
                    if logits.shape[1] < num_classes:
                        raise LsbenchError(f"{root} has {num_classes} classes but the model only "
                                           f"{logits.shape[1]} outputs")
                    k = min(5, logits.shape[1])
                    top = logits.topk(k, dim=1).indices.cpu()
                    hit = top == ys[:, None]
                    counts += torch.tensor([int(hit[:, 0].sum()), int(hit.any(1).sum()), len(ys)])
                bar.advance(task)

        if world > 1:
            import torch.distributed as dist

            reduced = counts.to(device)
            dist.all_reduce(reduced)
            counts = reduced.cpu()
            gathered: list[list[tuple[str, str]] | None] = [None] * world
            dist.all_gather_object(gathered, errors)
            errors = [e for part in gathered for e in (part or [])]
    finally:
        if initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()

    correct1, correctk, n = (int(c) for c in counts)
    errors.sort()
    if n == 0:  # every rank sees the reduced counts: all raise
        first = f" (e.g. {errors[0][0]}: {errors[0][1]})" if errors else ""
        raise LsbenchError(f"none of the {len(dataset)} image files in {root} could be read{first}")
    if rank != 0:
        return None
    if errors:
        shown = "; ".join(f"{p} ({why})" for p, why in errors[:3])
        more = f"; ... ({len(errors) - 3} more)" if len(errors) > 3 else ""
        warnings.warn(f"skipped {len(errors)} unreadable image file(s): {shown}{more}", stacklevel=2)
    skipped = [p for p, _ in errors]
    return {"top1": correct1 / n, "top5": correctk / n, "n": n, "skipped": skipped}


def evaluate_model(name: str, data_dir: str | Path, checkpoint: str | Path | None = None,
                   num_classes: int | None = None, **options) -> dict | None:
    """Build registry model ``name`` (with ``checkpoint`` loaded strictly) and :func:`evaluate` it.

    A checkpoint whose classifier does not fit ``num_classes`` is refused here: scoring a random head
    would report chance accuracy as a result."""
    import zoo

    if num_classes is not None and num_classes < 1:
        raise LsbenchError(f"--num-classes must be at least 1, got {num_classes}")
    if not Path(data_dir).is_dir():  # before the model is built
        raise LsbenchError(f"evaluation directory {data_dir} does not exist or is not a directory")
    model = zoo.create_model(name, checkpoint=checkpoint, num_classes=num_classes)
    dropped = (getattr(model, "lsbench_checkpoint", None) or {}).get("dropped_classifier")
    if dropped:
        raise LsbenchError(f"{checkpoint}: its classifier ({dropped[0]}) does not fit the model's "
                           f"{model.num_classes} classes, so the model would be scored with a random head; "
                           f"pass the checkpoint's class count with --num-classes")
    return evaluate(model, data_dir, **options)
