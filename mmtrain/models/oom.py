"""Batched generation that survives running out of accelerator memory by halving the batch."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

log = logging.getLogger("mmtrain.oom")

Result = TypeVar("Result")


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError and for RuntimeErrors that report running out of memory (MPS, cuDNN...)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err)


def map_batches_halving(
    fn: Callable[[Sequence], list[Result]],
    items: Sequence,
    batch_size: int,
    *,
    on_done: Callable[[int], None] | None = None,
) -> list[Result]:
    """Apply ``fn`` to consecutive batches of ``items``; on out-of-memory, halve the batch and retry.

    The halved size is kept for the batches that follow (memory pressure rarely goes away). A batch of one that still
    runs out of memory re-raises the error.

    Args:
        fn: Maps a slice of ``items`` (a list slice or a tensor slice) to one result per item, in order.
        items: Anything with ``len`` and slicing: a list of arrays, a tensor of images.
        batch_size: The first batch size to try.
        on_done: Called with the number of items finished after each batch (a progress bar's ``advance``).

    Returns:
        One result per item, in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    results: list[Result] = []
    start = 0
    while start < len(items):
        batch = items[start : start + batch_size]
        try:
            out, failed = fn(batch), False
        except RuntimeError as err:
            if not is_out_of_memory(err) or len(batch) == 1:
                raise
            failed = True  # retry outside the except block, so the failed batch's tensors can be freed
        if failed:
            batch_size = _halve(len(batch))
            continue
        if len(out) != len(batch):
            raise RuntimeError(f"batched function returned {len(out)} results for {len(batch)} items")
        results.extend(out)
        start += len(batch)
        if on_done is not None:
            on_done(len(batch))
    return results


def _halve(failed: int) -> int:
    new_size = max(1, failed // 2)
    log.warning("out of memory with a batch of %d; retrying with %d", failed, new_size)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return new_size
