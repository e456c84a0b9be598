"""Two nodes on one machine: ``torchrun --nnodes=2`` (one gloo process per node) against one node with two processes.

Both runs have world size 2 with the same per-process batch, so the global batch, each rank's share of the data,
the caption draws and the gradient all-reduce are the same; only the node layout differs. A single process with
the batch doubled would not be comparable step for step: it sees the same images per step, but draws their
captions from one generator over the whole batch and logs the loss of the whole batch instead of rank 0's half.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL
from tests.training.test_ddp import finish, start_torchrun_fit

STEPS = 8  # 96 train images / 2 ranks / 8 per batch = 6 steps per epoch: the run crosses into a second epoch
OVERRIDES = [
    *(o for o in TINY_MODEL if not o.startswith(("datamodule.", "trainer."))),
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    f"trainer.max_steps={STEPS}",
    f"trainer.val_check_interval={STEPS}",
    "trainer.log_every_n_steps=1",
    "datamodule.batch_size=8",
    "datamodule.eval_batch_size=4",  # LitData needs a whole batch per rank: 8 val images each
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train_log(run: Path) -> dict[int, tuple[int, float]]:
    """``{step: (epoch, train loss)}`` from the run's metrics.csv."""
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["train/loss"]]
    return {int(row["step"]): (int(row["epoch"]), float(row["train/loss"])) for row in rows}


def _layout(run: Path) -> tuple[int, int, int]:
    """(configured num_nodes, processes, nodes) from the run manifest."""
    manifest = json.loads((run / "run_manifest.json").read_text())
    extra = manifest["stamp"]["extra"]
    return manifest["config"]["trainer"]["num_nodes"], extra["processes"], extra["nodes"]


@pytest.mark.slow
def test_two_nodes_give_the_loss_curve_of_one_node_with_the_same_global_batch(tiny_store, tmp_path):
    two, one = tmp_path / "two-nodes", tmp_path / "one-node"
    rendezvous = ["--nnodes=2", "--nproc_per_node=1", "--master_addr=127.0.0.1", f"--master_port={_free_port()}"]
    per_node = [f"data.store={tiny_store}", f"out={two}", *OVERRIDES, "trainer.devices=1"]
    nodes = [start_torchrun_fit([*rendezvous, f"--node_rank={rank}"], per_node) for rank in (0, 1)]
    try:
        for node in nodes:
            finish(node)
    finally:
        for node in nodes:
            node.kill()  # the other node, when one failed
    one_node = [f"data.store={tiny_store}", f"out={one}", *OVERRIDES, "trainer.devices=2"]
    finish(start_torchrun_fit(["--standalone", "--nproc_per_node=2"], one_node))

    assert (_layout(two), _layout(one)) == ((2, 2, 2), (1, 2, 1))  # trainer=ddp read torchrun's node count
    two_log, one_log = _train_log(two), _train_log(one)
    assert sorted(two_log) == sorted(one_log) == list(range(STEPS))
    assert [epoch for epoch, _ in two_log.values()] == [0] * 6 + [1] * 2  # an epoch covers every image once
    difference = max(abs(two_log[step][1] - one_log[step][1]) for step in range(STEPS))
    print(f"largest train loss difference, 2 nodes vs 1 node, over {STEPS} steps: {difference:.3g}")
    assert difference <= 1e-5
    assert two_log[STEPS - 1][1] < two_log[0][1]  # it trained
    assert (two / "checkpoints" / "best.ckpt").is_file() and (two / "checkpoints" / "last.ckpt").is_file()
