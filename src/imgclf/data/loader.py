"""Batches of cached pixels: shuffled indices -> one gather from the pixel store -> augment.

The loader yields uint8 NHWC tensors; normalisation happens in the training step, as one op on
the whole batch. Without shuffling, batches follow the split's sample order. On a GPU the split's
pixels are copied to device memory once (when they fit), so gathering and augmenting never leave
the GPU.

In a data-parallel run each process is one ``rank`` of ``world_size``: every rank draws the same
epoch order (from the seed and the epoch alone), cuts each global batch of ``batch_size`` into
``world_size`` contiguous parts and keeps its own, so the ranks' parts together are exactly the
batch one process would take; ``len()`` stays the number of global batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from .dataset import Split

# Keep at most this many bytes of one split resident on a GPU (CIFAR-10's train split is 150 MB).
MAX_RESIDENT_BYTES = 4 << 30


class BatchLoader:
    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        augment: Callable | None = None,
        device: torch.device | str = "cpu",
        balanced: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last and len(split) > batch_size
        self.seed = seed
        self.augment = augment
        self.balanced = balanced
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.generator: torch.Generator | None = None  # the current epoch's augmentation draws
        self._resume: tuple[int, torch.Tensor] | None = None
        self.device = torch.device(device)
        self._resident = None
        if self.device.type == "cuda" and split.pixels[:1].nbytes * len(split) <= MAX_RESIDENT_BYTES:
            self._resident = torch.from_numpy(np.ascontiguousarray(split.pixels[split.rows])).to(self.device)
            self._labels = torch.from_numpy(split.labels).to(self.device)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def shard(self, rank: int, world_size: int) -> None:
        """Yield only ``rank``'s part of each global batch from now on (data-parallel training)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Each epoch has its own, reproducible order and augmentation draws."""
        self.epoch = epoch

    def resume_at(self, batch: int, generator_state: torch.Tensor) -> None:
        """Make the next pass start at ``batch`` of its epoch with the augmentation generator in
        ``generator_state`` (as saved mid-epoch), so it continues exactly where it stopped."""
        self._resume = (batch, generator_state)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.balanced:
            # Each class equally likely: draw n samples with replacement, weight 1 / class count.
            counts = np.bincount(self.split.labels)
            p = 1.0 / counts[self.split.labels]
            order = rng.choice(n, size=n, replace=True, p=p / p.sum())
        else:
            order = rng.permutation(n) if self.shuffle else np.arange(n)
        gen = torch.Generator().manual_seed(self._augment_seed(int(rng.integers(2**62))))
        start = 0
        if self._resume is not None:
            (start, state), self._resume = self._resume, None
            gen.set_state(state)
        self.generator = gen
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self.world_size > 1:
                idx = np.array_split(idx, self.world_size)[self.rank]
            if self._resident is not None:
                i = torch.from_numpy(idx).to(self.device, non_blocking=True)
                x, y = self._resident[i], self._labels[i]
            else:
                if self.shuffle or self.balanced:
                    # A shuffled batch's order is arbitrary anyway: reading its rows in file order
                    # makes the memory-mapped gather sequential. Unshuffled batches keep the
                    # split's order, since evaluation pairs them with ``split.labels`` by position.
                    idx = idx[np.argsort(self.split.rows[idx], kind="stable")]
                x = torch.from_numpy(np.ascontiguousarray(self.split.pixels[self.split.rows[idx]]))
                y = torch.from_numpy(self.split.labels[idx])
            if self.augment is not None:
                x = self.augment(x, gen, indices=torch.from_numpy(idx), epoch=self.epoch)
            yield x, y

    def _augment_seed(self, epoch_seed: int) -> int:
        """Rank 0 draws as a single process does; the other ranks get their own streams (the same
        draws on every rank would give the images at the same position of each part the same crop)."""
        return epoch_seed if self.rank == 0 else int(np.random.default_rng([epoch_seed, self.rank]).integers(2**62))
