"""Batches of cached pixels: shuffled indices -> one gather from the memory-mapped store -> augment.

The loader yields uint8 NHWC tensors; normalisation and the move to the device happen in the
training step, where they are a single fused op on the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from .dataset import Split


class BatchLoader:
    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    ):
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last and len(split) > batch_size
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Each epoch has its own, reproducible order and augmentation draws."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.split)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            rows = self.split.rows[idx]
            # Reading rows in file order makes the memory-mapped gather sequential.
            by_row = np.argsort(rows, kind="stable")
            x = torch.from_numpy(np.ascontiguousarray(self.split.pixels[rows[by_row]]))
            y = torch.from_numpy(self.split.labels[idx][by_row])
            if self.augment is not None:
                x = self.augment(x, gen)
            yield x, y
