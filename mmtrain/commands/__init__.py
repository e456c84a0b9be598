"""One thin module per command. Each exposes ``run(cfg) -> dict | None``; :func:`run_hydra` wires it to Hydra."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

from mmtrain.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, UserError

log = logging.getLogger("mmtrain")


def run_hydra(command: str, module_name: str, overrides: list[str]) -> int:
    """Run ``module.run(cfg)`` under ``hydra.main`` with the command's primary config; map errors to exit codes."""
    import hydra
    from omegaconf import DictConfig

    from mmtrain.cli import CONFIG_DIR

    outcome = {"code": EXIT_OK}

    def task(cfg: DictConfig) -> float | None:
        # The return value is what a Hydra sweeper sees as the job's result (Optuna maximises it).
        outcome["code"], value = _run_task(command, module_name, cfg)
        return value

    old_argv = sys.argv
    sys.argv = [f"mmtrain {command}", *overrides]
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    try:
        hydra.main(config_path=str(CONFIG_DIR), config_name=command, version_base="1.3")(task)()
    except SystemExit as exc:  # hydra exits 1 on config errors after printing them
        return int(exc.code or 0)
    finally:
        sys.argv = old_argv
    return outcome["code"]


def _sweep_value(result) -> float | None:
    """The number a sweeper optimises: ``fit``'s best value of its checkpoint monitor; None for other commands."""
    score = result.get("best_score") if isinstance(result, dict) else None
    return float(score) if isinstance(score, (int, float)) else None


def _run_task(command: str, module_name: str, cfg) -> tuple[int, float | None]:
    """(exit code, sweep value) of one command run; a ``UserError`` is printed as one line."""
    debug = bool(cfg.get("debug", False))
    try:
        _save_resolved_config(cfg)
        module = importlib.import_module(module_name)
        return EXIT_OK, _sweep_value(module.run(cfg))
    except UserError as err:
        if debug:
            raise
        kind = "interrupted" if err.exit_code == EXIT_INTERRUPTED else "error"
        print(f"mmtrain {command}: {kind}: {err}", file=sys.stderr)
        return err.exit_code, None
    except KeyboardInterrupt:
        print(f"mmtrain {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED, None
    except Exception as err:  # noqa: BLE001 - config errors read better without our frames
        from hydra.errors import HydraException, InstantiationException
        from omegaconf.errors import OmegaConfBaseException

        if isinstance(err, InstantiationException) and isinstance(err.__cause__, UserError) and not debug:
            print(f"mmtrain {command}: error: {err.__cause__}", file=sys.stderr)  # raised inside a _target_
            return err.__cause__.exit_code, None
        if isinstance(err, (OmegaConfBaseException, HydraException)) and not debug:
            message = " ".join(str(err).split())
            print(f"mmtrain {command}: config error: {message[:400]}", file=sys.stderr)
            return EXIT_USER_ERROR, None
        raise


def _save_resolved_config(cfg) -> None:
    """Save the resolved config as ``config.yaml`` beside the run's outputs (atomically)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mmtrain.io import write_text

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
