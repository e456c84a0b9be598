"""A training loader whose position is a function of the global step, so a resumed run continues exactly.

Batches of an epoch follow an order seeded by (seed, epoch): the store's chunks are permuted, and the items of each
window of ``window_chunks`` chunks are permuted together (reading a chunk-store item by item at random costs
milliseconds per item; reading a window's items in order costs microseconds). Each DDP rank takes every
world-size-th index of that order. When iteration starts, the loader asks how many batches the run has consumed (global step times gradient
accumulation) and starts from there: mid-epoch resume needs no loader state of its own, and cannot drift from the
optimizer's step.

With ``num_workers`` > 0 the same batches (the same indices, in the same order) are read, decoded and collated by
worker processes of a torch ``DataLoader``, which hands them back in order; only where the work happens changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mmtrain.data.image_slots import ImageSlots, SlotBatch
from mmtrain.errors import UserError


def resolve_workers(value: int | str, *, key: str) -> int:
    """A worker-process count from a config value: a whole number >= 0 (0: in this process) or ``auto`` (all cores).

    Raises:
        UserError: naming ``key`` for anything else.
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = -1
    if isinstance(value, bool) or count < 0 or str(count) != str(value).strip():
        raise UserError(f"{key}: must be a whole number of processes >= 0 (0: in this process) or auto, got {value!r}")
    return count


class StepResumableLoader:
    """Shuffled, drop-last batches over a map-style dataset, positioned by ``consumed()`` at each ``iter``.

    Args:
        dataset: indexable items (a LitData ``StreamingDataset`` read by index).
        batch_size: items per batch.
        collate_fn: turns a list of items into a batch.
        seed: shuffle seed.
        consumed: returns the number of batches this rank has already trained on.
        rank_world: returns (rank, world size).
        chunk_sizes: items per stored chunk, in store order (one chunk of everything when None). Their sum is the
            item count: under DDP, LitData's ``len(dataset)`` is only this rank's share.
        window_chunks: chunks shuffled together.
        num_workers: processes that read, decode and collate batches (0: in this process).
        pin_memory: put batches in page-locked memory (worth it when they go to a GPU).
        prefetch_factor: batches each worker prepares ahead.
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
        chunk_sizes: list[int] | None = None,
        window_chunks: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
    ) -> None:
        self.dataset, self.batch_size, self.collate_fn, self.seed = dataset, batch_size, collate_fn, seed
        self.num_workers, self.pin_memory, self.prefetch_factor = num_workers, pin_memory, prefetch_factor
        self._plan: _Plan | None = None
        self._workers: Any = None  # a torch DataLoader whose processes live as long as this loader
        self._slots: ImageSlots | None = None  # the workers' image buffers
        self.consumed, self.rank_world = consumed, rank_world
        sizes = chunk_sizes or [len(dataset)]
        bounds = np.cumsum([0, *sizes])
        self.items = int(bounds[-1])
        self.chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.window_chunks = window_chunks
        self.window_items = window_chunks * max(sizes)

    def __len__(self) -> int:
        rank, world = self.rank_world()
        return (self.items // world) // self.batch_size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """This rank's item indices for ``epoch``, in order."""
        rank, world = self.rank_world()
        rng = np.random.default_rng([self.seed, epoch])
        chunk_order = rng.permutation(len(self.chunks))
        windows = []
        for w in range(0, len(chunk_order), self.window_chunks):
            items = np.concatenate([np.arange(*self.chunks[c]) for c in chunk_order[w : w + self.window_chunks]])
            windows.append(rng.permutation(items))
        order = np.concatenate(windows)
        per_rank = len(order) // world
        return order[: per_rank * world][rank::world]

    def __iter__(self) -> Iterator[Any]:
        batches = len(self)
        if batches == 0:
            raise ValueError(f"{self.items} training items are fewer than one batch of {self.batch_size} per rank")
        epoch, start = divmod(self.consumed(), batches)
        indices = self.epoch_indices(epoch)
        if self.num_workers > 0:
            yield from self._from_workers(indices, start, batches)
            return
        reader = _BatchReader(self.dataset, self.collate_fn)
        for b in range(start, batches):
            yield reader[self._batch(indices, b, batches)]

    def _batch(self, indices: np.ndarray, b: int, batches: int, stride: int = 1) -> tuple[list[int], list[int]]:
        """Batch ``b``'s item indices, and the indices a reader fetches with them when one is missing, read in store
        order (item by item at random, each chunk switch costs a chunk's decoding): the items of the batches this
        reader serves next within a window's span of the order, every ``stride``-th batch from ``b`` (a reader in one
        of ``stride`` workers, which take the batches in turn, reads no item that another worker's batch holds)."""
        size = self.batch_size
        span = max(-(-self.window_items // size), 1)  # batches per window, at least this one
        mine = range(b, min(b + span, batches), stride)
        return [int(i) for i in indices[b * size : (b + 1) * size]], [
            int(i) for k in mine for i in indices[k * size : (k + 1) * size]
        ]

    def _from_workers(self, indices: np.ndarray, start: int, batches: int) -> Iterator[Any]:
        """Batches ``start..batches-1`` of ``indices``, each read and collated whole by one worker, in order.

        The workers are started once and kept across epochs (starting them costs a fork and LitData's set-up per
        worker); each ``iter`` hands them that epoch's plan.
        """
        import torch
        from torch.utils.data import DataLoader

        if self._workers is None:
            self._plan = _Plan()
            # Each worker has image buffers for the batches it may have in flight, and two held by the trainer
            self._slots = ImageSlots(self.num_workers, self.prefetch_factor + 2)
            self._workers = DataLoader(
                _BatchReader(self.dataset, self.collate_fn, self._slots),
                sampler=self._plan,
                batch_size=None,  # each sampled element is a whole batch of indices
                collate_fn=_as_is,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                prefetch_factor=self.prefetch_factor,
                persistent_workers=True,
                worker_init_fn=_leave_stop_signals_to_the_trainer,
                # Starting an epoch draws the workers' base seed; from the global generator that draw would shift the
                # training RNG (dropout) between a straight run and one resumed mid-epoch. Workers draw nothing.
                generator=torch.Generator().manual_seed(self.seed),
            )
        epoch = self._slots.start_epoch()

        def tasks() -> Iterator[tuple[list[int], list[int], int]]:
            # Made as the loader dispatches them (a whole epoch's read-ahead lists would hold a window of indices per
            # batch); it hands them to its workers in turn, from the first worker at each epoch
            for b in range(start, batches):
                yield (*self._batch(indices, b, batches, self.num_workers), epoch)

        self._plan.tasks, self._plan.count = tasks, batches - start
        for item in self._workers:
            yield self._slots.receive(item)


class _Plan:
    """The sampler of the workers' loader: the tasks (batch, read-ahead, epoch number) of the epoch being read, set at
    each ``iter``."""

    def __init__(self) -> None:
        self.tasks: Callable[[], Iterator[tuple[list[int], list[int], int]]] = lambda: iter(())
        self.count = 0

    def __iter__(self) -> Iterator[tuple[list[int], list[int], int]]:
        return self.tasks()

    def __len__(self) -> int:
        return self.count


class _BatchReader:
    """Map-style view whose item at (batch indices, read-ahead indices) is that batch, collated.

    When an item of the batch has not been read yet, every read-ahead item not held is read, in store order, and
    only those are kept (with a worker per process, each keeps about a window's items and reads each chunk about
    once per window instead of once per batch).
    """

    def __init__(self, dataset: Any, collate_fn: Callable[[list], Any], slots: ImageSlots | None = None) -> None:
        self.dataset, self.collate_fn, self.slots = dataset, collate_fn, slots
        self.cache: dict[int, Any] = {}

    def __getitem__(self, task: tuple) -> Any:
        """The batch of ``task`` (batch indices, read-ahead indices); with ``slots`` (in a worker, whose tasks also
        carry their epoch's number) a :class:`SlotBatch`, empty for a task of an abandoned epoch."""
        wanted, ahead, *epoch = task
        if self.slots is not None and epoch[0] != self.slots.epoch.value:
            return SlotBatch(-1, None)  # the loader drops this batch unread: neither read nor decode it
        if any(i not in self.cache for i in wanted):
            held = self.cache
            self.cache = {i: held[i] if i in held else None for i in ahead}
            for i in sorted(i for i, item in self.cache.items() if item is None):  # sequential within each chunk
                self.cache[i] = self.dataset[i]
        items = [self.cache.pop(i) for i in wanted]
        if self.slots is None:
            return self.collate_fn(items)
        with self.slots.collating():
            batch = self.collate_fn(items)
        return SlotBatch(self.slots.taken, batch)


def _as_is(batch: Any) -> Any:
    return batch


def _leave_stop_signals_to_the_trainer(worker_id: int) -> None:
    """A Ctrl-C reaches the whole process group: a worker must not die of it mid-batch while the training process
    finishes its step and writes its checkpoint. (SIGTERM keeps its default: it is how the workers are stopped at
    exit.)"""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
