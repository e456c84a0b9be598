"""Where a run writes, and how an interrupted one continues (light: imported before Hydra composes a config).

``fit``'s default ``out`` is ``${run_folder:runs/fit,${resume}}``: a new dated folder, except with
``resume=last`` and no ``out=``, where it is the most recent run under ``runs/fit`` that has a ``last.ckpt``.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from pathlib import Path

LAST = Path("checkpoints") / "last.ckpt"


def latest_run(base: Path) -> Path | None:
    """The folder under ``base`` whose ``checkpoints/last.ckpt`` was written last; None when there is none."""
    checkpoints = [folder / LAST for folder in base.glob("*") if (folder / LAST).is_file()] if base.is_dir() else []
    if not checkpoints:
        return None
    return max(checkpoints, key=lambda path: path.stat().st_mtime).parent.parent


def run_folder(base: str, resume: str | None) -> str:
    """The default ``out``: ``BASE/DATE_TIME``, or with ``resume=last`` the latest run in ``BASE`` to continue."""
    if resume == "last":
        latest = latest_run(Path(base))
        if latest is not None:
            return str(latest)
    return str(Path(base) / datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))


def register_resolvers() -> None:
    """Make ``${run_folder:...}`` known to OmegaConf (cached: every read of ``out`` in a run gives one folder)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_folder"):
        OmegaConf.register_new_resolver("run_folder", run_folder, use_cache=True)


def out_was_given() -> bool:
    """Whether this Hydra job's overrides set ``out``."""
    from hydra.core.hydra_config import HydraConfig

    return any(o.split("=", 1)[0].lstrip("+~") == "out" for o in HydraConfig.get().overrides.task)


def continue_command(checkpoint: Path, out: Path) -> str:
    """The command that continues this run: its overrides with ``resume=CHECKPOINT out=OUT`` in place of theirs."""
    from hydra.core.hydra_config import HydraConfig

    kept = [o for o in HydraConfig.get().overrides.task if o.split("=", 1)[0].lstrip("+~") not in ("out", "resume")]
    words = ["mmtrain", "fit", *kept, f"resume={checkpoint}", f"out={out}"]
    return " ".join(shlex.quote(word) for word in words)
