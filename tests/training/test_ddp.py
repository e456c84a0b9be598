"""Distributed data parallel on CPU: two processes on gloo, launched by torchrun in a subprocess."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, TINY_MODEL, run_cli


def start_torchrun_fit(torchrun_args: list[str], overrides: list[str]) -> subprocess.Popen:
    """Start ``torchrun TORCHRUN_ARGS -m mmtrain.cli fit OVERRIDES`` (stdout and stderr together, as text).

    SLURM variables are dropped so that a test run inside a SLURM job still counts torchrun's processes only.
    """
    command = [sys.executable, "-m", "torch.distributed.run", *torchrun_args, "-m", "mmtrain.cli", "fit", *overrides]
    env = {name: value for name, value in os.environ.items() if not name.startswith("SLURM_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def finish(process: subprocess.Popen, timeout: float = 600) -> str:
    """Wait for a process from :func:`start_torchrun_fit`; assert it succeeded and return its output."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise AssertionError(f"torchrun did not finish in {timeout} s:\n{output[-3000:]}") from None
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.slow
def test_two_process_ddp_fit_on_gloo(tiny_store, tmp_path):
    out = tmp_path / "ddp"
    overrides = [
        f"data.store={tiny_store}",
        f"out={out}",
        *TINY_MODEL,
        "+trainer.strategy=ddp",
        "trainer.devices=2",
        "trainer.max_steps=6",
        "trainer.val_check_interval=3",
        "datamodule.eval_batch_size=4",  # LitData needs a whole batch per rank: 8 val images each here
    ]
    finish(start_torchrun_fit(["--standalone", "--nproc_per_node=2"], overrides))
    summary = json.loads((out / "fit_summary.json").read_text())
    assert summary["global_step"] == 6
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["global_step"] == 6
    assert summary["world_size"] == 2  # Lightning's own "distributed_backend=gloo" line is silenced in fit's log
    _assert_val_metrics_cover_the_whole_split(out, tiny_store, tmp_path / "eval")


def _assert_val_metrics_cover_the_whole_split(out, store, eval_out) -> None:
    """The step-6 validation metrics equal those of the same weights' captions for all 16 val images.

    Each rank decodes 8 of them; scored per rank, CIDEr-D (its document frequencies), the unique-caption ratio and
    scene accuracy would differ from the whole split's.
    """
    from mmtrain.data.shapes import load_scenes
    from mmtrain.metrics.coco_files import load_references, load_results
    from mmtrain.training.validation import validation_metrics

    evaluated = run_cli(
        "eval", f"ckpt={out / 'checkpoints' / 'last.ckpt'}", "split=val", f"out={eval_out}", "bootstrap=0",
        "use_checkpoint_decoding=true", "batch_size=4",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    captions = load_results(eval_out / "results_val.json")
    assert len(captions) == 16
    expected = validation_metrics(
        captions, load_references(store / "references_val.json"), load_scenes(store / "scenes_val.json")
    )
    with open(out / "logs" / "metrics.csv", newline="") as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("val/CIDEr")][-1]
    assert int(logged["step"]) in (5, 6), logged  # the last validation: after the 6th step
    for name in ("CIDEr", "Bleu_1", "ROUGE_L", "unique_ratio", "mean_length", "scene_accuracy"):
        assert float(logged[f"val/{name}"]) == pytest.approx(expected[name], abs=1e-5), name


@pytest.mark.slow
def test_a_plain_ddp_command_starts_its_own_ranks_and_matches_torchrun(tiny_store, tmp_path):
    """``mmtrain fit trainer=ddp trainer.devices=2`` typed as is (no torchrun) trains with two gloo processes.

    Lightning used to start rank 1 by re-running ``sys.argv``, which under ``mmtrain`` names no script and no
    command ("Child process ... terminated with code 2"). No ``out=`` is given: both ranks must still write into
    the one dated folder that rank 0 resolved.
    """
    from tests.training.test_multinode import OVERRIDES, STEPS, _train_log

    mmtrain = Path(sys.executable).parent / "mmtrain"  # the console script a user types
    env = {name: value for name, value in os.environ.items() if not name.startswith("SLURM_")}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    direct = subprocess.run(
        [str(mmtrain), "fit", f"data.store={tiny_store}", *OVERRIDES, "trainer.devices=2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert direct.returncode == 0, (direct.stdout + direct.stderr)[-3000:]
    (run,) = (tmp_path / "runs" / "fit").iterdir()  # one folder for both ranks
    summary = json.loads((run / "fit_summary.json").read_text())
    assert (summary["world_size"], summary["global_step"]) == (2, STEPS)
    assert (run / "fit_rank1.log").is_file()  # rank 1 ran as its own process, logging beside rank 0

    launched = tmp_path / "torchrun"
    overrides = [f"data.store={tiny_store}", f"out={launched}", *OVERRIDES, "trainer.devices=2"]
    finish(start_torchrun_fit(["--standalone", "--nproc_per_node=2"], overrides))
    assert json.loads((launched / "fit_summary.json").read_text())["world_size"] == 2
    direct_log, torchrun_log = _train_log(run), _train_log(launched)
    assert sorted(direct_log) == sorted(torchrun_log) == list(range(STEPS))
    difference = max(abs(direct_log[step][1] - torchrun_log[step][1]) for step in range(STEPS))
    print(f"largest train loss difference, direct launch vs torchrun, over {STEPS} steps: {difference:.3g}")
    assert difference <= 1e-5
