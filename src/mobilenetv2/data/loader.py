"""Data loaders whose sample order and augmentation depend only on (seed, epoch, position).

The train sampler is PyTorch's DistributedSampler (one replica when not distributed): each epoch is a fixed
permutation, sharded across ranks, so a resumed run can skip the batches it already trained on. Each sample
also carries its own augmentation seed, so results do not depend on the number of loader workers.
Samples that fail to decode are dropped from their batch and reported in `Batch.skipped`.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from mobilenetv2.errors import UserError

log = logging.getLogger(__name__)


class Source(Protocol):
    """A split of a dataset: `load(i)` gives a PIL RGB image and its target (a class index, boxes, a mask).
    Detection and segmentation sources count the background as class 0 of `class_names`."""

    class_names: list[str]
    skipped: list[str]

    def __len__(self) -> int: ...
    def load(self, index: int) -> tuple[Image.Image, Any]: ...
    def describe(self, index: int) -> str: ...


@dataclass
class Batch:
    images: torch.Tensor  # (B, 3, H, W) float32
    targets: Any  # what the task's collate_targets makes: (B,) int64 labels for classification
    skipped: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def pin_memory(self) -> "Batch":  # called by DataLoader(pin_memory=True) for faster host-to-GPU copies
        targets = self.targets.pin_memory() if isinstance(self.targets, torch.Tensor) else self.targets
        return Batch(self.images.pin_memory(), targets, self.skipped)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + index * 104_729 + 12_345) % (2**62)


class TransformedDataset(Dataset):
    """Items are (index, seed) pairs; returns (tensor, target) or (None, description) for an unreadable file.

    `transform(image, target, generator)` when `random`, else `transform(image, target)`; both return
    (tensor, target), so a crop or flip moves boxes and masks with the pixels."""

    def __init__(self, source: Source, transform: Callable, *, random: bool) -> None:
        self.source, self.transform, self.random = source, transform, random

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor | None, Any]:
        index, seed = item
        try:
            img, target = self.source.load(index)
            if self.random:
                return self.transform(img, target, torch.Generator().manual_seed(seed))
            return self.transform(img, target)
        except UserError as exc:
            log.warning("skipping %s", exc)
            return None, self.source.describe(index)


def stack_labels(targets: list[Any]) -> torch.Tensor:
    """Classification targets (class indices) -> (B,) int64."""
    return torch.tensor(targets, dtype=torch.long)


class Collate:
    """Stacks the images and hands the targets to `collate_targets`; unreadable samples go to `skipped`."""

    def __init__(self, collate_targets: Callable[[list[Any]], Any] = stack_labels) -> None:
        self.collate_targets = collate_targets

    def __call__(self, items: list[tuple[torch.Tensor | None, Any]]) -> Batch:
        good = [(x, y) for x, y in items if x is not None]
        skipped = [str(y) for x, y in items if x is None]
        if not good:
            return Batch(torch.empty(0), self.collate_targets([]), skipped)
        return Batch(torch.stack([x for x, _ in good]), self.collate_targets([y for _, y in good]), skipped)


class SeededSampler(Sampler):
    """Wraps an index sampler: yields (index, augmentation seed), skipping the first `skip` indices."""

    def __init__(self, indices: Sampler | list[int], *, seed: int, epoch: int, skip: int = 0) -> None:
        self.indices, self.seed, self.epoch, self.skip = indices, seed, epoch, skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position, index in enumerate(self.indices):
            if position >= self.skip:
                yield int(index), sample_seed(self.seed, self.epoch, int(index))

    def __len__(self) -> int:
        return max(0, len(self.indices) - self.skip)


def train_loader(
    dataset: TransformedDataset,
    *,
    batch_size: int,
    epoch: int,
    seed: int,
    rank: int,
    world_size: int,
    skip_batches: int = 0,
    workers: int = 0,
    pin_memory: bool = False,
    collate: Collate | None = None,
) -> DataLoader:
    """One epoch of training batches of `batch_size` (per rank); incomplete last batches are dropped."""
    shards = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    shards.set_epoch(epoch)
    sampler = SeededSampler(shards, seed=seed, epoch=epoch, skip=skip_batches * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=workers,
        collate_fn=collate or Collate(),
        pin_memory=pin_memory,
        generator=_own_generator(seed, epoch),
    )


def eval_loader(
    dataset: TransformedDataset,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    workers: int = 0,
    collate: Collate | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """Every sample exactly once across ranks (rank r takes r, r + world, ...): no padding duplicates."""
    indices = list(range(rank, len(dataset), world_size))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=SeededSampler(indices, seed=0, epoch=0),
        num_workers=workers,
        collate_fn=collate or Collate(),
        pin_memory=pin_memory,
        generator=_own_generator(0, 0),
    )


def _own_generator(seed: int, epoch: int) -> torch.Generator:
    """DataLoader draws its worker base seed from this instead of the global RNG, which would otherwise shift
    the dropout stream differently in a resumed run (our samples carry their own seeds anyway)."""
    return torch.Generator().manual_seed(sample_seed(seed, epoch, -1))
