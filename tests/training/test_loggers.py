"""The logger group through the CLI, offline: TensorBoard event files, an MLflow run and a W&B offline run appear in
the run folder beside logs/metrics.csv and curves.png; a logger whose package is missing is one line."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL, run_cli, run_in_process

SETTINGS = [*TINY_MODEL, "trainer.max_steps=4", "trainer.val_check_interval=2", "checkpoint_every_n_steps=2"]


@pytest.fixture(scope="module")
def logged_run(tiny_store, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("loggers") / "run"
    tracking = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the default store, never a server, in a test
    try:
        result = run_cli("fit", f"data.store={tiny_store}", f"out={out}", *SETTINGS,
                         "logger=[tensorboard,mlflow,wandb]", env={"WANDB_MODE": "offline"})  # fmt: skip
    finally:
        if tracking is not None:
            os.environ["MLFLOW_TRACKING_URI"] = tracking
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _csv_steps(run: Path, name: str) -> list[int]:
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get(name)]


def test_tensorboard_event_files_hold_the_runs_scalars(logged_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = (logged_run / "tensorboard").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    for name in ("train/loss", "val/CIDEr"):
        assert [event.step for event in accumulator.Scalars(name)] == _csv_steps(logged_run, name)


def test_an_mlflow_run_is_stored_in_the_run_folder(logged_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{logged_run / 'mlflow.db'}")
    (experiment,) = [e for e in client.search_experiments() if e.name == "mmtrain"]
    (run,) = client.search_runs([experiment.experiment_id])
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == _csv_steps(logged_run, "train/loss")
    assert run.data.metrics["val/CIDEr"] >= 0.0


def test_wandb_runs_offline_in_the_run_folder(logged_run):
    (offline,) = (logged_run / "wandb").glob("offline-run-*")
    assert list(offline.glob("run-*.wandb"))


def test_curves_show_loss_learning_rate_and_each_validation_metric(logged_run):
    from PIL import Image

    with Image.open(logged_run / "curves.png") as image:
        assert image.format == "PNG" and image.width >= 800 and image.height >= 400
    assert not list(logged_run.glob(".curves.png.*"))  # the atomic write left no temporary file


def test_a_logger_whose_package_is_missing_is_one_line_naming_the_extra(tiny_store, tmp_path, monkeypatch):
    import sys

    import pytorch_lightning.loggers.mlflow as lightning_mlflow
    from lightning_utilities.core.imports import RequirementCache

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    # Lightning decided at its import whether mlflow is there; decide again, as a Python without mlflow would.
    monkeypatch.setattr(lightning_mlflow, "_MLFLOW_AVAILABLE", RequirementCache("mlflow>=1.0.0", "mlflow"))
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={tmp_path / 'run'}", *SETTINGS, "logger=mlflow")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "mmtrain fit: error: logger=mlflow: its package is not installed (Requirement 'mlflow>=1.0.0' not met); "
        "install the loggers extra: pip install -e '.[loggers]'"
    ), lines[-3:]
    assert "Traceback" not in result.stderr
