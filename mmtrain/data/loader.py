"""A training loader whose position is a function of the global step, so a resumed run continues exactly.

Batches of an epoch follow a permutation seeded by (seed, epoch); each DDP rank takes every world-size-th index of
it. When iteration starts, the loader asks how many batches the run has consumed (global step times gradient
accumulation) and starts from there: mid-epoch resume needs no loader state of its own, and cannot drift from the
optimizer's step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class StepResumableLoader:
    """Shuffled, drop-last batches over a map-style dataset, positioned by ``consumed()`` at each ``iter``.

    Args:
        dataset: indexable items (a LitData ``StreamingDataset`` read by index).
        batch_size: items per batch.
        collate_fn: turns a list of items into a batch.
        seed: shuffle seed.
        consumed: returns the number of batches this rank has already trained on.
        rank_world: returns (rank, world size).
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        collate_fn: Callable[[list], Any],
        seed: int,
        consumed: Callable[[], int],
        rank_world: Callable[[], tuple[int, int]],
    ) -> None:
        self.dataset, self.batch_size, self.collate_fn, self.seed = dataset, batch_size, collate_fn, seed
        self.consumed, self.rank_world = consumed, rank_world

    def __len__(self) -> int:
        rank, world = self.rank_world()
        return (len(self.dataset) // world) // self.batch_size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This rank's item indices for ``epoch``, in order."""
        rank, world = self.rank_world()
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        per_rank = len(self.dataset) // world
        return order[: per_rank * world][rank::world]

    def __iter__(self) -> Iterator[Any]:
        batches = len(self)
        if batches == 0:
            raise ValueError(
                f"{len(self.dataset)} training items are fewer than one batch of {self.batch_size} per rank"
            )
        epoch, start = divmod(self.consumed(), batches)
        indices = self.epoch_indices(epoch)
        for b in range(start, batches):
            chunk = indices[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.collate_fn([self.dataset[int(i)] for i in chunk])
