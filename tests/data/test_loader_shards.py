"""The batch loader in a data-parallel run: each rank's part of every global batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgclf.data.dataset import Split
from imgclf.data.loader import BatchLoader


def _split(n: int = 100) -> Split:
    rows = np.random.default_rng(1).permutation(n)  # store rows in another order than the samples
    pixels = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    pixels[rows, 0, 0, 0] = np.arange(n)  # sample i's first pixel holds i
    return Split(pixels=pixels, rows=rows, labels=np.arange(n) % 3, samples=[None] * n)


def _batches(loader: BatchLoader) -> list[list[int]]:
    return [x[:, 0, 0, 0].tolist() for x, _ in loader]


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_parts_are_exactly_each_global_batch(balanced, world):
    split = _split()
    options = dict(shuffle=True, drop_last=True, seed=5, balanced=balanced)
    alone = _batches(BatchLoader(split, 24, **options))
    ranks = [BatchLoader(split, 24, rank=r, world_size=world, **options) for r in range(world)]
    assert {len(loader) for loader in ranks} == {len(alone)}  # every rank takes the same number of steps
    parts = [_batches(loader) for loader in ranks]
    for b, batch in enumerate(alone):
        mine = [parts[r][b] for r in range(world)]
        assert sorted(i for part in mine for i in part) == sorted(batch)  # together: the one-process batch
        assert max(map(len, mine)) - min(map(len, mine)) <= 1  # split evenly
        for x, y in zip(mine, mine[1:]):
            assert not set(x) & set(y) or balanced  # with replacement an image may repeat, never split


def test_shard_after_construction_is_the_same_as_constructing_sharded():
    split = _split()
    later = BatchLoader(split, 20, shuffle=True, seed=2)
    later.shard(1, 2)
    assert _batches(later) == _batches(BatchLoader(split, 20, shuffle=True, seed=2, rank=1, world_size=2))
    with pytest.raises(ValueError):
        later.shard(2, 2)


def test_rank_zero_draws_augmentation_as_one_process_and_the_others_their_own():
    def recorder(draws):
        def augment(x, gen, indices=None, epoch=None):
            draws.append(int(torch.randint(0, 2**31, (1,), generator=gen)))
            return x

        return augment

    draws = {name: [] for name in ("alone", "rank0", "rank1")}
    split = _split()
    for name, loader in [
        ("alone", BatchLoader(split, 20, shuffle=True, seed=4, augment=recorder(draws["alone"]))),
        ("rank0", BatchLoader(split, 20, shuffle=True, seed=4, augment=recorder(draws["rank0"]), rank=0, world_size=2)),
        ("rank1", BatchLoader(split, 20, shuffle=True, seed=4, augment=recorder(draws["rank1"]), rank=1, world_size=2)),
    ]:
        loader.set_epoch(3)
        list(loader)
    assert draws["rank0"] == draws["alone"]
    assert draws["rank1"] != draws["alone"] and len(draws["rank1"]) == len(draws["alone"])
