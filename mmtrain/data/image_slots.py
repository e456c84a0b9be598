"""Shared-memory image buffers that the training loader's workers fill again and again.

A batch built in a loader worker crosses to the training process in shared memory. A fresh shared-memory block per
batch costs its page faults every time (about 6 ms for 64 images at 224 px, a tenth of a worker's work on such a
batch); the same block reused costs none. Each worker therefore keeps a few blocks ("slots") and decodes each batch
straight into a free one. The training process marks a slot free again only once nothing in it refers to the batch
that arrived in it (no tensor, view or array made from it: storage reference counts say so), so a batch a user keeps
never shares memory with one a worker is writing. When every slot of a worker is still held, the worker takes a fresh
block, as without slots: never a wait. The training process keeps each slot mapped, so reading a reused slot (and
copying it into page-locked memory, on a GPU) costs it no page faults either.

Reference counts are per process: a batch's images handed on to another process must be cloned first.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
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


@dataclass
class SlotBatch:
    """What a worker hands back: the batch, the slot its images are in (-1: none), and, once the loader has copied
    the batch into page-locked memory, the slot's images themselves (so the training process keeps them mapped)."""

    slot: int
    batch: Any
    shared: Tensor | None = None

    def pin_memory(self) -> SlotBatch:
        """The batch in page-locked memory (the loader's pin-memory thread calls this)."""
        if not hasattr(self.batch, "pin_memory"):
            return self
        shared = self.batch.images if self.slot >= 0 else None
        return SlotBatch(self.slot, self.batch.pin_memory(), shared)


class ImageSlots:
    """``per_worker`` reusable image buffers for each of ``workers`` loader workers.

    Made in the training process before the workers start, so that all of them share its flags: one byte per slot,
    set while the slot may be written (the training process refers to nothing in it), and the number of the epoch
    being read (tasks of an earlier one are dropped by the loader, so workers skip them).
    """

    def __init__(self, workers: int, per_worker: int) -> None:
        self.per_worker = per_worker if reference_counts_work() else 0  # 0: a fresh block for every batch
        self.free = multiprocessing.RawArray("b", [1] * (workers * self.per_worker))
        self.epoch = multiprocessing.RawValue("i", 0)
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

    def receive(self, item: SlotBatch) -> Any:
        """In the training process, for each batch as it arrives: free every slot whose batch nothing here refers to
        any more, note this one's slot, and return the batch."""
        for held in [held for held in self.outstanding if _references(self.mapped[held]) <= 1]:
            self.outstanding.discard(held)  # only our own mapping is left: no one can read the slot again
            self.free[held] = 1
        if item.slot >= 0:
            storage = (item.batch.images if item.shared is None else item.shared).untyped_storage()
            self.mapped[item.slot] = StorageWeakRef(storage), storage
            if item.shared is None:
                self.outstanding.add(item.slot)
            else:  # the batch was copied into page-locked memory: nothing here reads the slot again
                self.free[item.slot] = 1
        return item.batch

    def start_epoch(self) -> int:
        """Before the workers are given an epoch: its number, which workers compare with their tasks' (a task of an
        abandoned epoch is skipped: the loader drops its batch unread). Frees the slots of such batches already
        made, keeping those of batches still referred to."""
        self.receive(SlotBatch(-1, None))
        self.epoch.value += 1
        for slot in range(len(self.free)):
            if slot not in self.outstanding:
                self.free[slot] = 1
        return self.epoch.value


def _references(held: tuple[StorageWeakRef, Any]) -> int:
    """How many tensors and storages in this process refer to a slot's memory (the slot's own mapping is one)."""
    return torch._C._storage_Use_Count(held[0].cdata)


def reference_counts_work() -> bool:
    """Whether this torch counts a storage's references as :func:`_references` reads them (a private function): a
    tensor and a view of it, beside the storage held, read 3; without them, 1. Slots are only reused if so."""
    try:
        tensor = torch.empty(4)
        storage = tensor.untyped_storage()
        held = StorageWeakRef(storage), storage
        view = tensor[1:]
        counted = _references(held)
        del tensor, view
        return counted >= 3 and _references(held) == 1
    except (AttributeError, RuntimeError, TypeError):
        return False
