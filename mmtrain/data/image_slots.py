"""Shared-memory image buffers that the training loader's workers fill again and again.

A batch built in a loader worker crosses to the training process in shared memory. A fresh shared-memory block per
batch costs its page faults every time (about 6 ms for 64 images at 224 px, a tenth of a worker's work on such a
batch); the same block reused costs none. Each worker therefore keeps a few blocks ("slots") and decodes each batch
straight into a free one. The training process marks a slot free again only once nothing in it refers to the batch
that arrived in it (no tensor, view or array made from it: storage reference counts say so), so a batch a user keeps
never shares memory with one a worker is writing. When every slot of a worker is still held, the worker takes a fresh
block, as without slots: never a wait. The training process keeps each slot mapped, so reading a reused slot costs
it no page faults either.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.multiprocessing.reductions import StorageWeakRef

_collating: ContextVar[ImageSlots | None] = ContextVar("image_slots", default=None)


def shared_empty(shape: tuple[int, ...]) -> Tensor:
    """An uninitialised uint8 tensor of ``shape`` in a new shared-memory block."""
    storage = torch.empty(0, dtype=torch.uint8)._typed_storage()._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=torch.uint8).new(storage).view(shape)


def worker_images(shape: tuple[int, ...]) -> Tensor:
    """The buffer a loader worker decodes a batch's images (B, 3, H, W) into: a free slot while the training loader
    collates (:meth:`ImageSlots.collating`), else a fresh shared-memory block."""
    slots = _collating.get()
    return shared_empty(shape) if slots is None else slots.take(shape)


class ImageSlots:
    """``per_worker`` reusable image buffers for each of ``workers`` loader workers.

    Made in the training process before the workers start, so that all of them share its flags: one byte per slot,
    set while the slot may be written (the training process refers to nothing in it).
    """

    def __init__(self, workers: int, per_worker: int) -> None:
        self.per_worker = per_worker
        self.free = multiprocessing.RawArray("b", [1] * (workers * per_worker))
        self.buffers: dict[int, Tensor] = {}  # in a worker: its slots
        self.mapped: dict[int, tuple[StorageWeakRef, Any]] = {}  # in the training process: each slot, kept mapped
        self.outstanding: set[int] = set()  # in the training process: slots received and not yet freed
        self.taken = -1  # in a worker: the slot of the batch being collated (-1: a fresh block)
        self._turn = 0

    @contextmanager
    def collating(self) -> Iterator[None]:
        """In a worker, around one batch's collation: :func:`worker_images` takes a slot (read ``taken`` after)."""
        self.taken = -1
        token = _collating.set(self)
        try:
            yield
        finally:
            _collating.reset(token)

    def take(self, shape: tuple[int, ...]) -> Tensor:
        """A free slot of this worker holding ``shape`` (made or remade at that shape), marked taken; a fresh block
        when none is free."""
        first = torch.utils.data.get_worker_info().id * self.per_worker
        for _ in range(self.per_worker):
            slot = first + self._turn
            self._turn = (self._turn + 1) % self.per_worker
            if self.free[slot]:
                buffer = self.buffers.get(slot)
                if buffer is None or tuple(buffer.shape) != tuple(shape):
                    buffer = self.buffers[slot] = shared_empty(shape)
                self.free[slot], self.taken = 0, slot
                return buffer
        return shared_empty(shape)

    def receive(self, slot: int, batch: Any) -> Any:
        """In the training process, for each batch as it arrives with its slot (-1: none): free every slot whose
        batch nothing here refers to any more, and note this one. Returns ``batch``."""
        for held in [held for held in self.outstanding if _references(self.mapped[held]) <= 1]:
            self.outstanding.discard(held)  # only our own mapping is left: no one can read the slot again
            self.free[held] = 1
        if slot >= 0 and not batch.images.is_shared():  # the loader copied it into page-locked memory on the way
            self.free[slot] = 1
        elif slot >= 0:
            storage = batch.images.untyped_storage()
            self.mapped[slot] = StorageWeakRef(storage), storage
            self.outstanding.add(slot)
        return batch

    def start_epoch(self) -> None:
        """Before the workers start an epoch: free the slots of batches read ahead for the last one and dropped
        unread (the loader discards them; no one here can read them), keeping those of batches still referred to."""
        self.receive(-1, None)
        for slot in range(len(self.free)):
            if slot not in self.outstanding:
                self.free[slot] = 1


def _references(held: tuple[StorageWeakRef, Any]) -> int:
    """How many tensors and storages in this process refer to a slot's memory (the slot's own mapping is one)."""
    return torch._C._storage_Use_Count(held[0].cdata)
