"""The step-positioned training loader: same order for the same seed, exact restart mid-epoch, disjoint ranks, and
the same batches whether worker processes read them or the training process does."""

from __future__ import annotations

import multiprocessing
import os

import pytest
import torch

from mmtrain.data.loader import StepResumableLoader, resolve_workers
from mmtrain.errors import UserError
from tests.conftest import TINY_MODEL


def make(consumed: int = 0, rank: int = 0, world: int = 1, seed: int = 0) -> StepResumableLoader:
    return StepResumableLoader(
        list(range(100)),
        batch_size=8,
        collate_fn=list,
        seed=seed,
        consumed=lambda: consumed,
        rank_world=lambda: (rank, world),
        chunk_sizes=[30, 30, 30, 10],
        window_chunks=2,
    )


def test_an_epoch_is_a_shuffled_drop_last_pass():
    batches = list(make())
    assert len(batches) == 12 and all(len(b) == 8 for b in batches)
    seen = [i for b in batches for i in b]
    assert len(set(seen)) == 96 and seen != sorted(seen)
    assert list(make()) == batches and list(make(seed=1)) != batches


def test_restart_from_a_consumed_count_continues_exactly():
    full = list(make()) + list(make(consumed=12))  # epoch 0 then epoch 1
    assert list(make(consumed=5)) == full[5:12]
    assert list(make(consumed=15)) == full[15:24]
    assert full[12:24] != full[:12]  # a new epoch reshuffles


def test_workers_keep_giving_the_planned_batches_over_many_windows_and_epochs():
    """Each worker keeps read-ahead items between batches; whatever it holds, every batch of three epochs over ten
    shuffle windows is the one the in-process loader gives, epoch after epoch with the same worker processes."""
    consumed = [0]
    loaders = {
        workers: StepResumableLoader(
            [{"i": i} for i in range(200)],
            batch_size=8,
            collate_fn=lambda items: [item["i"] for item in items],
            seed=3,
            consumed=lambda: consumed[0],
            rank_world=lambda: (0, 1),
            chunk_sizes=[20] * 10,
            window_chunks=1,
            num_workers=workers,
        )
        for workers in (0, 2)
    }
    for epoch in range(3):
        consumed[0] = epoch * 25
        in_process, from_workers = list(loaders[0]), list(loaders[2])
        assert from_workers == in_process
        assert [i for b in in_process for i in b] == [int(i) for i in loaders[0].epoch_indices(epoch)]


class CountedReads(list):
    """Items that count every read, in whichever process it happens (worker processes are forked)."""

    def __init__(self, items) -> None:
        super().__init__(items)
        self.reads = multiprocessing.get_context("fork").Value("i", 0)

    def __getitem__(self, index):
        with self.reads.get_lock():
            self.reads.value += 1
        return super().__getitem__(index)


def test_two_workers_read_each_item_of_an_epoch_once():
    """A worker reads ahead only the items of the batches it will be given: with two workers, an epoch costs the
    store one read per item, as in the training process, not one per item per worker."""
    items = CountedReads({"i": i} for i in range(200))
    loader = StepResumableLoader(
        items,
        batch_size=8,
        collate_fn=lambda batch: [item["i"] for item in batch],
        seed=0,
        consumed=lambda: 0,
        rank_world=lambda: (0, 1),
        chunk_sizes=[20] * 10,
        window_chunks=2,  # 5 batches a window: each worker's read-ahead spans several of its batches
        num_workers=2,
    )
    batches = list(loader)
    assert sorted(i for b in batches for i in b) == list(range(200))
    assert items.reads.value == 200


def test_ranks_take_disjoint_shares():
    shares = [{i for b in make(rank=r, world=2) for i in b} for r in range(2)]
    assert not shares[0] & shares[1]
    assert len(shares[0]) == len(shares[1]) == 48


class RankShare(list):
    """Items read by global index, whose ``len`` is one rank's share, as LitData's StreamingDataset reports under DDP."""

    def __len__(self) -> int:
        return super().__len__() // 2


def test_an_epoch_under_ddp_covers_the_store_although_litdata_reports_a_ranks_share():
    loaders = [
        StepResumableLoader(
            RankShare(range(96)),
            batch_size=8,
            collate_fn=list,
            seed=0,
            consumed=lambda: 0,
            rank_world=lambda r=r: (r, 2),
            chunk_sizes=[6] * 16,
        )
        for r in range(2)
    ]
    assert [len(loader) for loader in loaders] == [6, 6]  # 96 items / 2 ranks / 8 per batch
    seen = [i for loader in loaders for batch in loader for i in batch]
    assert sorted(seen) == list(range(96))


def test_a_batch_larger_than_a_shuffle_window_is_read_whole():
    loader = StepResumableLoader(
        list(range(96)),
        batch_size=32,
        collate_fn=list,
        seed=0,
        consumed=lambda: 0,
        rank_world=lambda: (0, 1),
        chunk_sizes=[6] * 16,  # a small store: windows of 4 chunks hold 24 items
    )
    batches = list(loader)
    assert [len(b) for b in batches] == [32, 32, 32]
    assert sorted(i for b in batches for i in b) == list(range(96))


def _all_batches(store, workers: int, consumed: int = 0, batch_size: int = 16) -> list:
    from mmtrain.data.datamodule import CaptionDataModule

    loader = CaptionDataModule(store=str(store), batch_size=batch_size, num_workers=workers).train_dataloader()
    loader.consumed = lambda: consumed
    return list(loader)


@pytest.mark.parametrize("consumed", [0, 4], ids=["epoch_start", "mid_epoch"])
def test_two_workers_give_exactly_the_batches_read_in_process(tiny_jpeg_store, consumed):
    in_process, workers = _all_batches(tiny_jpeg_store, 0, consumed), _all_batches(tiny_jpeg_store, 2, consumed)
    assert len(in_process) == len(workers) == 6 - consumed  # 96 images, 16 a batch
    for a, b in zip(in_process, workers, strict=True):
        assert a.image_ids.tolist() == b.image_ids.tolist()
        assert torch.equal(a.images, b.images) and a.images.shape == (16, 3, 32, 32)  # decoded from JPEG by workers
        assert a.caption_pool == b.caption_pool and a.mirrored_pool == b.mirrored_pool


def test_batches_held_to_the_end_of_an_epoch_keep_their_images_while_workers_reuse_their_buffers(tiny_jpeg_store):
    """Workers decode into a few shared buffers each, reused batch after batch; a batch the training process keeps
    (24 batches here, 12 per worker, several turns of its buffers) still holds the images read in process."""
    in_process, workers = (_all_batches(tiny_jpeg_store, w, batch_size=4) for w in (0, 2))
    assert len(in_process) == len(workers) == 24
    for a, b in zip(in_process, workers, strict=True):
        assert a.image_ids.tolist() == b.image_ids.tolist() and torch.equal(a.images, b.images)


def test_an_epoch_abandoned_mid_way_leaves_the_next_one_exact(tiny_jpeg_store):
    """A run that stops reading an epoch early (its workers have batches of it in hand) gets exactly the next epoch's
    batches from the same workers, as the in-process loader reads them."""
    from mmtrain.data.datamodule import CaptionDataModule

    loaders = [
        CaptionDataModule(store=str(tiny_jpeg_store), batch_size=4, num_workers=w).train_dataloader() for w in (0, 2)
    ]
    workers = loaders[1]
    workers.consumed = lambda: 0
    started = iter(workers)
    next(started), next(started)  # two of the epoch's 24 batches, then the epoch is given up
    for loader in loaders:
        loader.consumed = lambda: 24  # epoch 1 from its start
    expected, got = list(loaders[0]), list(workers)
    assert len(got) == 24
    for a, b in zip(expected, got, strict=True):
        assert a.image_ids.tolist() == b.image_ids.tolist() and torch.equal(a.images, b.images)


def test_a_slot_is_written_again_only_once_nothing_refers_to_its_batch():
    """The training process's side of the workers' image buffers: a slot whose batch (or a view of its images) is
    still held stays taken; once dropped, the next arrival frees it. A batch the loader copied into page-locked
    memory (GPU training) frees its slot at once."""
    from mmtrain.data.batch import Batch
    from mmtrain.data.image_slots import ImageSlots, SlotBatch, shared_empty

    slots = ImageSlots(workers=1, per_worker=2)
    slots.free[0] = slots.free[1] = 0  # both taken by the worker
    held = slots.receive(SlotBatch(0, Batch(shared_empty((2, 3, 4, 4)), torch.arange(2))))
    view = held.images[1:]
    del held
    slots.receive(SlotBatch(-1, None))
    assert list(slots.free) == [0, 0]  # the view still reads slot 0
    del view
    slots.receive(SlotBatch(-1, None))
    assert list(slots.free) == [1, 0]
    copied = Batch(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.arange(2))  # as the pin-memory thread leaves it
    batch = slots.receive(SlotBatch(1, copied, shared=shared_empty((2, 3, 4, 4))))
    assert batch is copied and list(slots.free) == [1, 1]


@pytest.mark.parametrize("value,count", [(0, 0), (3, 3), ("2", 2), ("auto", len(os.sched_getaffinity(0)))])
def test_worker_counts_are_whole_numbers_or_auto(value, count):
    assert resolve_workers(value, key="datamodule.num_workers") == count


@pytest.mark.parametrize("value", [-1, "many", 1.5, "", True])
def test_a_bad_worker_count_names_its_key(value):
    with pytest.raises(UserError, match=r"^datamodule.num_workers: must be a whole number .* or auto, got"):
        resolve_workers(value, key="datamodule.num_workers")


WORKERS = ["datamodule.num_workers=2"]
TWELVE = [*TINY_MODEL, "checkpoint_every_n_steps=6", *WORKERS]  # 12 steps, validation and last.ckpt at step 6


def _same_weights(expected_checkpoint, got_checkpoint) -> None:
    from tests.reliability.test_interruption import _weights

    expected, got = _weights(expected_checkpoint), _weights(got_checkpoint)
    different = [k for k, v in expected.items() if not (torch.equal(v, got[k]) if torch.is_tensor(v) else v == got[k])]
    assert expected.keys() == got.keys() and not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def _kill_after(store, out, args: list[str], step: int) -> int:
    """Start fit, SIGKILL it (and its loader workers) once last.ckpt reaches ``step``; return the checkpoint's step."""
    import contextlib
    import signal
    import subprocess

    from tests.conftest import MMTRAIN, ROOT
    from tests.reliability.test_interruption import _step, _wait_for_step

    command = [*MMTRAIN, "fit", f"data.store={store}", f"out={out}", *args]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    _wait_for_step(out, step, process)
    with contextlib.suppress(ProcessLookupError):  # already ended: the test's assertions on the step say so
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return _step(out / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_a_run_with_workers_stopped_after_6_steps_and_resumed_to_12_ends_bit_identical(tiny_jpeg_store, tmp_path):
    from tests.conftest import run_cli

    straight = run_cli("fit", f"data.store={tiny_jpeg_store}", f"out={tmp_path / 'straight'}", *TWELVE)
    assert straight.returncode == 0, straight.stderr[-2000:]
    stopped = tmp_path / "stopped"
    assert 6 <= _kill_after(tiny_jpeg_store, stopped, TWELVE, 6) < 12
    resumed = run_cli("fit", f"data.store={tiny_jpeg_store}", f"out={stopped}", *TWELVE, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _same_weights(tmp_path / "straight" / "checkpoints" / "last.ckpt", stopped / "checkpoints" / "last.ckpt")


@pytest.mark.slow
def test_a_run_with_workers_killed_mid_epoch_then_resumed_ends_bit_identical(tiny_jpeg_store, tmp_path):
    from tests.conftest import run_cli
    from tests.reliability.test_interruption import RESUME_ARGS  # 24 steps, last.ckpt every 5 steps

    args = [*RESUME_ARGS, *WORKERS]
    straight = run_cli("fit", f"data.store={tiny_jpeg_store}", f"out={tmp_path / 'straight'}", *args)
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = tmp_path / "killed"
    killed_at = _kill_after(tiny_jpeg_store, killed, args, 10)  # the periodic last.ckpt at 10 (as the reliability test)
    assert 10 <= killed_at < 24 and killed_at % 6, f"step {killed_at}: the test wants a mid-epoch resume (6 batches)"
    resumed = run_cli("fit", f"data.store={tiny_jpeg_store}", f"out={killed}", *args, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    _same_weights(tmp_path / "straight" / "checkpoints" / "last.ckpt", killed / "checkpoints" / "last.ckpt")
