"""Lossless resume: a fit killed with SIGKILL and resumed ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from tests.conftest import MMTRAIN, ROOT, TINY_MODEL, run_cli

RESUME_ARGS = [*TINY_MODEL, "trainer.max_steps=24", "checkpoint_every_n_steps=5", "trainer.val_check_interval=8"]


def _weights(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]


def _step(checkpoint) -> int:
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - being written right now
        return -1


def _start(tiny_store, out):
    return subprocess.Popen(
        [*MMTRAIN, "fit", f"data.store={tiny_store}", f"out={out}", *RESUME_ARGS],
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


def test_sigkill_then_resume_is_bit_identical(tiny_store, tmp_path):
    full = run_cli("fit", f"data.store={tiny_store}", f"out={tmp_path / 'full'}", *RESUME_ARGS)
    assert full.returncode == 0, full.stderr[-2000:]

    process = _start(tiny_store, tmp_path / "killed")
    _wait_for_step(tmp_path / "killed", 10, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = _step(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert 10 <= killed_at < 24
    assert killed_at % 6, "killed on an epoch boundary; the test wants a mid-epoch resume (96 images / 16 per batch)"

    resumed = run_cli("fit", f"data.store={tiny_store}", f"out={tmp_path / 'killed'}", *RESUME_ARGS, "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    expected = _weights(tmp_path / "full" / "checkpoints" / "last.ckpt")
    got = _weights(tmp_path / "killed" / "checkpoints" / "last.ckpt")
    assert expected.keys() == got.keys()
    different = [k for k in expected if not torch.equal(expected[k], got[k])]
    assert not different, f"{len(different)} tensors differ after resume from step {killed_at}, e.g. {different[:3]}"


def test_sigterm_writes_a_checkpoint_and_exits(tiny_store, tmp_path):
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
    deadline = time.time() + 120
    while not (out / "logs").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)  # a few steps in
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output[-2000:]
    assert "SIGTERM received: checkpoint written" in output
    step = _step(out / "checkpoints" / "last.ckpt")
    assert 0 < step < 100000
    assert metrics.parent.exists()
