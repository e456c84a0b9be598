"""Start the other ranks of a one-node DDP run that was typed as a plain ``mmtrain fit trainer=ddp ...`` command.

Lightning's own launcher for this case (``_SubprocessScriptLauncher``) starts ranks 1..N-1 by running
``sys.executable sys.argv[0] sys.argv[1:]`` again. Under ``mmtrain`` that command is wrong twice: the command
name ``fit`` is not in ``sys.argv`` while Hydra runs (so the child is ``python "mmtrain fit" ...``, which Python
cannot open: exit code 2), and in a multirun ``sys.argv`` holds the whole sweep rather than this job's overrides.

Here rank 0 starts the children itself, with what Lightning's launcher would give them (``MASTER_ADDR``,
``MASTER_PORT``, ``NODE_RANK``, ``WORLD_SIZE`` and a ``LOCAL_RANK`` each) and a command rebuilt from Hydra's record
of this job: ``python -m mmtrain fit`` with the job's overrides and the resolved ``out=``, so every rank writes into
the same folder even when ``out`` is the default dated one. ``LOCAL_RANK=0`` is then set in rank 0's environment, and
Lightning's launcher sees processes that were created outside, as under torchrun.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# Hydra overrides that belong to the parent's launch, not to the single run each child is.
_PARENT_ONLY = ("hydra.mode", "hydra/launcher", "hydra/sweeper", "hydra.launcher", "hydra.sweeper", "hydra.sweep",
                "hydra.run", "hydra.job.num", "hydra.job.id", "hydra.job.name", "hydra.output_subdir")  # fmt: skip
_BARE = re.compile(r"^[\w./:+@~-]+$")


def _value(text: str) -> str:
    """``text`` as a Hydra override value: bare when it can be, else double-quoted."""
    if _BARE.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def child_command(out: Path, local_rank: int) -> list[str]:
    """The command line of one child rank: this Hydra job's config sources and overrides, as a single run in ``out``."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    command = [sys.executable, "-m", "mmtrain", "fit"]
    for source in hydra.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            command += ["--config-dir", source.path]
    command += [o for o in hydra.overrides.task if _key(o) != "out"]
    command += [o for o in hydra.overrides.hydra if not _key(o).startswith(_PARENT_ONLY)]
    location = _value(str(out))
    return command + [
        f"out={location}",
        f"hydra.run.dir={location}",
        "hydra.output_subdir=null",  # rank 0 keeps the run's .hydra record
        f"hydra.job.name=fit_rank{local_rank}",  # its own log file beside rank 0's fit.log
    ]


def start_other_ranks(trainer, out: Path) -> list[subprocess.Popen]:
    """Start ranks 1..N-1 when Lightning would start them from ``sys.argv``; return their processes (or none).

    Nothing happens under torchrun, srun or any launcher that sets the ranks itself, nor for one process.
    """
    from lightning_fabric.strategies.launchers.subprocess_script import _launch_process_observer
    from pytorch_lightning.strategies.launchers import _SubprocessScriptLauncher

    launcher = trainer.strategy.launcher
    if not isinstance(launcher, _SubprocessScriptLauncher) or launcher.num_processes < 2:
        return []
    environment = trainer.strategy.cluster_environment
    if environment.creates_processes_externally:
        return []
    os.environ["MASTER_ADDR"] = environment.main_address
    os.environ["MASTER_PORT"] = str(environment.main_port)
    os.environ["NODE_RANK"] = str(environment.node_rank())
    os.environ["WORLD_SIZE"] = str(launcher.num_processes * launcher.num_nodes)
    processes = []
    for local_rank in range(1, launcher.num_processes):
        env = {**os.environ, "LOCAL_RANK": str(local_rank)}
        processes.append(subprocess.Popen(child_command(out, local_rank), env=env, cwd=os.getcwd()))
    os.environ["LOCAL_RANK"] = "0"  # from here Lightning treats this process as rank 0 of an external launch
    launcher.procs = processes  # Lightning forwards signals to them and kills them when this rank fails
    _launch_process_observer(processes)  # a child that fails takes the others down, as in Lightning's launch
    log.info("started %d more training processes (world size %s)", len(processes), os.environ["WORLD_SIZE"])
    return processes


def wait_for_ranks(processes: list[subprocess.Popen], timeout: float = 120.0) -> None:
    """Let the child ranks finish their teardown after training, so that none outlives the command."""
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("rank process %d still running after %.0f s: stopping it", process.pid, timeout)
            process.kill()
