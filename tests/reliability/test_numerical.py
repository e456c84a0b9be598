"""Non-finite losses: training stops naming the step and keeps the last good state, or skips up to a limit.

The NaN is injected into the cross-entropy at chosen steps; the rest of ``mmtrain fit`` runs as usual.
"""

from __future__ import annotations

import json

import torch

from mmtrain.models.loading import load_model
from mmtrain.training.objectives import CrossEntropy
from tests.conftest import TINY_MODEL
from tests.reliability.conftest import assert_one_line_error, run_in_process

ARGS = [*TINY_MODEL, "trainer.max_steps=6", "trainer.val_check_interval=6", "checkpoint_every_n_steps=100"]


def _poison(monkeypatch, steps: set[int]) -> None:
    original = CrossEntropy.__call__

    def poisoned(self, module, batch):
        loss, parts = original(self, module, batch)
        return (loss * float("nan"), parts) if module.global_step in steps else (loss, parts)

    monkeypatch.setattr(CrossEntropy, "__call__", poisoned)


def _assert_last_good_state(last, step: int) -> None:
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == step
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert load_model(last).caption(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))[0][0] is not None


def test_a_nan_loss_stops_training_naming_the_step_and_keeps_the_last_good_state(tiny_store, tmp_path, monkeypatch):
    _poison(monkeypatch, {3})
    out = tmp_path / "run"
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={out}", *ARGS)
    line = assert_one_line_error(result.returncode, result.stderr, "non-finite loss at step 3 (loss=nan)")
    assert str(out / "checkpoints" / "last.ckpt") in line
    _assert_last_good_state(out / "checkpoints" / "last.ckpt", 3)
    assert not (out / "fit_summary.json").exists()


def test_nonfinite_skips_skips_bad_steps_up_to_the_limit(tiny_store, tmp_path, monkeypatch):
    _poison(monkeypatch, {1, 3})
    out = tmp_path / "run"
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={out}", *ARGS, "nonfinite_skips=1")
    assert "non-finite loss at step 1: update skipped (1 of 1 allowed)" in result.stdout + result.stderr
    assert_one_line_error(result.returncode, result.stderr, "non-finite loss at step 3")
    _assert_last_good_state(out / "checkpoints" / "last.ckpt", 3)


def test_a_skipped_step_lets_the_run_finish(tiny_store, tmp_path, monkeypatch):
    _poison(monkeypatch, {2})
    out = tmp_path / "run"
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={out}", *ARGS, "nonfinite_skips=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "fit_summary.json").read_text())["global_step"] == 6
    _assert_last_good_state(out / "checkpoints" / "last.ckpt", 6)
