"""``compile=true``: the compiled training forward keeps checkpoints, resume and generation working."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import TINY_MODEL, run_cli


@pytest.mark.slow  # compiling the tiny model takes most of a minute on 2 CPU cores
def test_compiled_fit_checkpoints_resumes_and_captions(tiny_store, tmp_path):
    out = tmp_path / "compiled"
    args = [f"data.store={tiny_store}", f"out={out}", *TINY_MODEL, "compile=true", "trainer.val_check_interval=2"]
    first = run_cli("fit", *args, "trainer.max_steps=2", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    last = out / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert not [k for k in state["state_dict"] if "_orig_mod" in k]
    assert all(k.startswith("captioner.") for k in state["state_dict"])

    resumed = run_cli("fit", *args, "trainer.max_steps=4", "resume=last", timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 4

    evaluated = run_cli("eval", f"ckpt={last}", "split=val", f"out={tmp_path / 'eval'}", "bootstrap=0")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "results_val.json").read_text())
    assert len(results) == 16 and all(isinstance(r["caption"], str) for r in results)
