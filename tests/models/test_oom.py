"""Batched generation halves its batch on out-of-memory and keeps the input order."""

from __future__ import annotations

import logging

import pytest
import torch

from mmtrain.models.oom import is_out_of_memory, map_batches_halving


class FakeGenerator:
    """Doubles each item, and runs out of memory on batches larger than ``limit``."""

    def __init__(self, limit: int, error: type[Exception] = torch.cuda.OutOfMemoryError) -> None:
        self.limit, self.error = limit, error
        self.sizes: list[int] = []

    def __call__(self, batch) -> list[int]:
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [2 * int(x) for x in batch]


@pytest.mark.parametrize("limit", [1, 3, 7, 100])
def test_results_are_complete_and_in_input_order(limit):
    fake = FakeGenerator(limit)
    items = list(range(23))
    assert map_batches_halving(fake, items, batch_size=16) == [2 * x for x in items]


def test_halves_once_then_keeps_the_smaller_batch(caplog):
    fake = FakeGenerator(limit=5)
    with caplog.at_level(logging.WARNING, logger="mmtrain.oom"):
        out = map_batches_halving(fake, list(range(20)), batch_size=16)
    assert out == [2 * x for x in range(20)]
    assert fake.sizes == [16, 8, 4, 4, 4, 4, 4]  # 16 -> 8 -> 4 fits; the rest keep 4
    assert "out of memory with a batch of 16; retrying with 8" in caplog.text


def test_tensor_batches_and_progress():
    done: list[int] = []
    images = torch.arange(10)
    out = map_batches_halving(FakeGenerator(limit=2), images, batch_size=4, on_done=done.append)
    assert out == [2 * x for x in range(10)]
    assert sum(done) == 10 and max(done) <= 2


def test_runtime_error_mentioning_out_of_memory_is_retried():
    fake = FakeGenerator(limit=2, error=RuntimeError)  # e.g. MPS: "MPS backend out of memory"
    assert map_batches_halving(fake, list(range(5)), batch_size=8) == [0, 2, 4, 6, 8]


def test_out_of_memory_on_a_single_item_is_raised():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        map_batches_halving(FakeGenerator(limit=0), [1, 2, 3], batch_size=4)


def test_other_errors_are_not_retried():
    calls = []

    def broken(batch):
        calls.append(len(batch))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        map_batches_halving(broken, [1, 2, 3, 4], batch_size=4)
    assert calls == [4]


def test_is_out_of_memory():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("expected scalar type Float"))
    assert not is_out_of_memory(ValueError("out of memory"))
