"""Scaling configs: trainer=ddp|fsdp give Lightning's strategies; the SLURM launcher and Optuna sweeper compose."""

from __future__ import annotations

import importlib.util
import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from mmtrain.cli import CONFIG_DIR
from tests.conftest import TINY_MODEL, run_in_process

NODE_COUNT_VARS = ("SLURM_NNODES", "GROUP_WORLD_SIZE")


def _installed(module: str) -> bool:
    # find_spec imports the parent package of a dotted name: without any Hydra plugin installed, the
    # "hydra_plugins" namespace itself is missing and find_spec raises instead of returning None.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _plugin(module: str, package: str):
    return pytest.mark.skipif(
        not _installed(module), reason=f"{package} is not installed (pip install -e '.[cluster]')"
    )


needs_submitit = _plugin("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher")
needs_optuna = _plugin("hydra_plugins.hydra_optuna_sweeper", "hydra-optuna-sweeper")


def _compose(overrides: list[str], *, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("fit", overrides=overrides, return_hydra_config=hydra)


@pytest.fixture
def no_cluster_env(monkeypatch):
    for name in NODE_COUNT_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _trainer_args(cfg) -> dict:
    return OmegaConf.to_container(cfg.trainer, resolve=True)


@pytest.mark.parametrize(
    "env,nodes",
    [
        ({}, 1),
        ({"SLURM_NNODES": "4"}, 4),
        ({"GROUP_WORLD_SIZE": "2"}, 2),
        ({"SLURM_NNODES": "4", "GROUP_WORLD_SIZE": "2"}, 2),
    ],
    ids=["none", "slurm", "torchrun", "torchrun-inside-slurm"],
)
def test_ddp_reads_the_node_count_from_slurm_or_torchrun(no_cluster_env, env, nodes):
    for name, value in env.items():
        no_cluster_env.setenv(name, value)
    args = _trainer_args(_compose(["trainer=ddp"]))
    assert args["num_nodes"] == nodes and isinstance(args["num_nodes"], int)  # Lightning rejects "4"
    assert (args["strategy"], args["devices"], args["precision"]) == ("ddp", "auto", "bf16-mixed")


def test_ddp_config_builds_a_lightning_ddp_trainer(no_cluster_env):
    import pytorch_lightning as pl
    from pytorch_lightning.strategies import DDPStrategy

    args = _trainer_args(_compose(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]))
    trainer = pl.Trainer(**args, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert (trainer.num_devices, trainer.num_nodes, trainer.max_steps) == (2, 1, args["max_steps"])


def test_fsdp_names_lightnings_fsdp_strategy_without_norm_clipping(no_cluster_env):
    from pytorch_lightning.strategies import FSDPStrategy, StrategyRegistry

    args = _trainer_args(_compose(["trainer=fsdp"]))
    assert StrategyRegistry[args["strategy"]]["strategy"] is FSDPStrategy
    assert (args["precision"], args["accelerator"], args["num_nodes"]) == ("bf16-mixed", "gpu", 1)
    assert args["gradient_clip_val"] is None  # FSDPPrecision raises on the default norm clipping


def test_a_coco_experiment_keeps_its_values_on_ddp(no_cluster_env):
    cfg = _compose(["experiment=coco_vitb16_xe", "trainer=ddp"])
    assert (cfg.trainer.strategy, cfg.trainer.max_steps, cfg.trainer.val_check_interval) == ("ddp", 60000, 5000)


@needs_submitit
def test_slurm_launcher_runs_one_task_per_gpu():
    launcher = _compose(["hydra/launcher=slurm"], hydra=True).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.gpus_per_node, launcher.tasks_per_node) == (1, 1, 1)
    launcher = _compose(
        ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4", "hydra.launcher.partition=gpu"], hydra=True
    ).hydra.launcher
    assert (launcher.tasks_per_node, launcher.partition) == (4, "gpu")
    assert launcher.timeout_min > 0 and launcher.cpus_per_task > 0 and launcher.mem_gb > 0


@needs_optuna
@pytest.mark.filterwarnings("ignore:.*declarative_base:Warning")  # optuna 2.x on SQLAlchemy 2
def test_optuna_sweeper_maximises_over_keys_that_exist():
    cfg = _compose(["hydra/sweeper=optuna_cider"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    assert sweeper.direction == "maximize" and sweeper.n_trials > 0
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key) is not None, f"search space names {key}, which fit does not have"
    assert instantiate(sweeper).__class__.__name__ == "OptunaSweeper"


@needs_optuna
def test_an_optuna_sweep_of_fit_runs_and_reports_the_best_trials_score(tiny_store, tmp_path):
    # Optuna reads each trial's return value: fit hands back its best validation score (checkpoint_monitor).
    sweep = tmp_path / "sweep"
    result = run_in_process(
        "fit",
        "--multirun",
        "hydra/sweeper=optuna_cider",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_jobs=1",
        f"hydra.sweep.dir={sweep}",
        "out=${hydra:runtime.output_dir}",
        f"data.store={tiny_store}",
        *TINY_MODEL,
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        "checkpoint_every_n_steps=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scores = [json.loads(p.read_text())["best_score"] for p in sorted(sweep.glob("*/fit_summary.json"))]
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    assert best.best_value == pytest.approx(max(scores))
    assert set(best.best_params) == {"optim.lr", "decoder.dropout"}


@needs_optuna
def test_plugins_own_optuna_config_still_composes():
    sweeper = _compose(["hydra/sweeper=optuna"], hydra=True).hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")


@needs_submitit
@needs_optuna
def test_optuna_on_slurm_composes_together():
    cfg = _compose(["hydra/launcher=slurm", "hydra/sweeper=optuna_cider", "trainer=ddp"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.sweeper.direction == "maximize"


def test_each_job_of_a_multirun_writes_into_its_own_hydra_job_folder(tiny_store, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_in_process(
        "fit", "-m", f"hydra.sweep.dir={sweep}", f"data.store={tiny_store}", *TINY_MODEL,
        "optim.lr=1e-3,3e-3", "trainer.max_steps=2", "trainer.val_check_interval=2", "checkpoint_every_n_steps=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for job, lr in ((0, 1e-3), (1, 3e-3)):
        folder = sweep / str(job)
        assert (folder / "checkpoints" / "last.ckpt").is_file() and (folder / "checkpoints" / "best.ckpt").is_file()
        assert json.loads((folder / "fit_summary.json").read_text())["out"] == str(folder)
        config = OmegaConf.load(folder / "config.yaml")
        assert (config.out, config.optim.lr) == (str(folder), lr)
    assert not (sweep / "checkpoints").exists()  # nothing written to the shared sweep folder itself


def test_the_logger_group_adds_loggers_beside_the_csv_log(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert set(_compose([]).logger) == {"csv"}
    cfg = _compose(["logger=[tensorboard,mlflow,wandb]", "out=runs/x"])
    assert set(cfg.logger) == {"csv", "tensorboard", "mlflow", "wandb"}
    assert cfg.logger.mlflow.tracking_uri == "sqlite:///runs/x/mlflow.db"  # a local store in the run folder
    assert cfg.logger.wandb.mode == "offline"
    assert _compose(["logger=wandb", "logger.wandb.mode=online"]).logger.wandb.mode == "online"
