"""Interruption: SIGKILL during preprocess, fit or eval, then a rerun or resume, equals an uninterrupted run; SIGTERM
during fit writes a checkpoint; every output file appears whole (a temporary file, then a rename)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from mmtrain.errors import EXIT_INTERRUPTED
from mmtrain.io import atomic_open
from tests.conftest import MMTRAIN, ROOT, TINY_DATA, TINY_MODEL, run_cli

RESUME_ARGS = [*TINY_MODEL, "trainer.max_steps=24", "checkpoint_every_n_steps=5", "trainer.val_check_interval=8"]


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def _step(checkpoint) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - being written right now
        return -1


def _start(tiny_store, out, extra: list[str]):
    return subprocess.Popen(
        [*MMTRAIN, "fit", f"data.store={tiny_store}", f"out={out}", *RESUME_ARGS, *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_step(out, minimum: int, process, timeout: float = 240) -> None:
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if last.is_file() and _step(last) >= minimum:
            return
        if process.poll() is not None:
            pytest.fail(f"fit ended before step {minimum}: {process.stderr.read()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"no checkpoint at step >= {minimum} within {timeout}s")


@pytest.mark.parametrize(
    "extra",
    [[], pytest.param(["ema.decay=0.9", "ema.start_step=3"], marks=pytest.mark.slow, id="ema")],
    ids=lambda extra: "plain" if extra == [] else None,
)
@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tiny_store, tmp_path, extra):
    full = run_cli("fit", f"data.store={tiny_store}", f"out={tmp_path / 'full'}", *RESUME_ARGS, *extra)
    assert full.returncode == 0, full.stderr[-2000:]

    process = _start(tiny_store, tmp_path / "killed", extra)
    _wait_for_step(tmp_path / "killed", 10, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _step(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert 10 <= killed_at < 24
    assert killed_at % 6, "killed on an epoch boundary; the test wants a mid-epoch resume (96 images / 16 per batch)"

    resumed = run_cli(
        "fit", f"data.store={tiny_store}", f"out={tmp_path / 'killed'}", *RESUME_ARGS, *extra, "resume=last"
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    got = _weights(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert expected.keys() == got.keys()
    assert any(k.startswith("ema.model.") for k in expected) == bool(extra)  # the EMA weights are compared too
    same = {k: torch.equal(v, got[k]) if isinstance(v, torch.Tensor) else v == got[k] for k, v in expected.items()}
    different = [k for k, equal in same.items() if not equal]
    assert not different, f"{len(different)} tensors differ after resume from step {killed_at}, e.g. {different[:3]}"


def test_sigterm_writes_a_checkpoint_and_exits_130(tiny_store, tmp_path):
    out = tmp_path / "term"
    process = subprocess.Popen(
        [
            *MMTRAIN,
            "fit",
            f"data.store={tiny_store}",
            f"out={out}",
            *TINY_MODEL,
            "trainer.max_steps=100000",
            "checkpoint_every_n_steps=100000",
            "trainer.val_check_interval=100000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = out / "logs" / "metrics.csv"
    deadline = time.time() + 300
    while not (out / "logs").exists():  # training has started: the SIGTERM handler is installed
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"fit did not start training: {process.communicate()[0][-2000:]}")
        time.sleep(0.2)
    time.sleep(3)  # a few steps in
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == EXIT_INTERRUPTED, output[-2000:]
    assert "SIGTERM received: checkpoint written" in output
    assert "mmtrain fit: interrupted: SIGTERM at step" in output
    assert f"resume={out / 'checkpoints' / 'last.ckpt'} out={out}" in output  # the command that continues it
    step = _step(out / "checkpoints" / "last.ckpt")
    assert 0 < step < 100000
    assert metrics.parent.exists()


def _kill_when(process, ready, timeout: float = 240) -> None:
    """SIGKILL ``process`` and its workers as soon as ``ready()`` is true."""
    deadline = time.time() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {process.stderr.read()[-2000:]}")
        if time.time() > deadline:
            pytest.fail("the run never reached the point to kill it at")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _popen(*args: str):
    return subprocess.Popen(
        [*MMTRAIN, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _checksums(store: Path) -> dict[str, str]:
    return {
        split: info["checksum"] for split, info in json.loads((store / "manifest.json").read_text())["splits"].items()
    }


def _scores(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {key: value for key, value in metrics.items() if key not in ("stamp", "results")}  # run-specific paths


@pytest.mark.slow
def test_sigkill_during_preprocess_then_rerun_gives_the_same_store(tiny_store, tmp_path):
    store = tmp_path / "store"
    args = ["preprocess", f"data.root={tiny_store.parent / 'raw'}", f"out={store}", *TINY_DATA, "shard_size=8"]
    process = _popen(*args, "num_workers=1")
    _kill_when(process, lambda: any((store / ".work").rglob("*.json")))
    assert not (store / "manifest.json").exists(), "killed too late: the store was already complete"
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _checksums(store) == _checksums(tiny_store)
    assert (store / "tokenizer.model").read_bytes() == (tiny_store / "tokenizer.model").read_bytes()
    assert not (store / ".work").exists() and not list(store.glob(".tmp*"))


@pytest.mark.slow
def test_sigkill_during_eval_then_rerun_gives_the_same_results(tiny_checkpoint, tmp_path):
    args = [f"ckpt={tiny_checkpoint}", "split=test", "bootstrap=20", "meteor=false"]
    full = run_cli("eval", *args, f"out={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr[-2000:]
    killed = tmp_path / "killed"
    process = _popen("eval", *args, f"out={killed}")
    _kill_when(process, lambda: (killed / "config.yaml").exists())
    rerun = run_cli("eval", *args, f"out={killed}")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    for name in ("results_test.json", "per_image.jsonl"):
        assert (killed / name).read_text() == (tmp_path / "full" / name).read_text(), name
    assert _scores(killed) == _scores(tmp_path / "full")


def test_atomic_open_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_checkpoints_are_written_beside_their_name_then_renamed(tmp_path, monkeypatch):
    from mmtrain.training.checkpoint_io import AtomicCheckpointIO

    renames = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda src, dst: renames.append((Path(src), Path(dst))) or real_replace(src, dst)
    )
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 7}, path)
    assert len(renames) == 1 and renames[0][1] == path and renames[0][0].parent == path.parent
    assert AtomicCheckpointIO().load_checkpoint(path)["global_step"] == 7


def test_a_checkpoint_read_to_check_a_resume_is_handed_to_lightning_not_read_again(tmp_path):
    from mmtrain.training.checkpoint_io import AtomicCheckpointIO

    checkpoint_io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    checkpoint_io.save_checkpoint({"global_step": 7}, path)
    checked = checkpoint_io.load_checkpoint(path)
    checkpoint_io.keep(tmp_path / "other.ckpt", {"global_step": 1})  # kept for another file: not used for this one
    assert checkpoint_io.load_checkpoint(path)["global_step"] == 7
    checkpoint_io.keep(path, checked)
    path.unlink()  # a second read of the file would fail
    assert checkpoint_io.load_checkpoint(path) is checked
    with pytest.raises(FileNotFoundError):
        checkpoint_io.load_checkpoint(path)  # handed over once only


# Appended as the run goes: Lightning's CSV log, Hydra's record of the run, and caption's rows (whole lines, a batch
# at a time, so a large folder's captions can be read while it runs; results.json is written whole at the end)
IN_PLACE_ALLOWED = ("logs", ".hydra", "captions.jsonl")


@pytest.mark.slow
def test_every_output_file_of_every_command_is_written_atomically(audited):
    assert all(result.returncode == 0 for result in audited.results.values())
    in_place = []
    for path in audited.writes():
        if not path.is_relative_to(audited.out):
            continue
        parts = path.relative_to(audited.out).parts
        if path.suffix == ".log" or any(p in IN_PLACE_ALLOWED or p.startswith(".tmp") for p in parts):
            continue  # logs, and files inside a temporary folder that is renamed as a whole
        in_place.append(str(path))
    assert audited.writes(), "the audit recorded nothing: the recording hook did not load"
    assert not in_place
