"""Distributed data parallel on CPU: two processes on gloo, launched by torchrun in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY_MODEL


@pytest.mark.slow
def test_two_process_ddp_fit_on_gloo(tiny_store, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mmtrain.cli",
        "fit",
        f"data.store={tiny_store}",
        f"out={out}",
        *TINY_MODEL,
        "+trainer.strategy=ddp",
        "trainer.devices=2",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "datamodule.eval_batch_size=4",  # LitData needs a whole batch per rank: 8 val images each here
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((out / "fit_summary.json").read_text())
    assert summary["global_step"] == 6
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 6
    assert "world_size: 2" in (result.stdout + result.stderr) or "distributed_backend=gloo" in (
        result.stdout + result.stderr
    )
