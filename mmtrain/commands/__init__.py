"""One thin module per command. Each exposes ``run(cfg) -> dict | None``; :func:`run_hydra` wires it to Hydra."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

from mmtrain.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USER_ERROR, UserError

log = logging.getLogger("mmtrain")
ERROR_LOG = "error.log"  # a failed run's one-line error, in its run folder


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

    old_argv, old_full_error = sys.argv, os.environ.get("HYDRA_FULL_ERROR")
    sys.argv = [f"mmtrain {command}", *overrides]
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its composition errors to us instead of printing advice
    try:
        from mmtrain.training.resume import register_resolvers

        register_resolvers()  # ${run_folder:...}, fit's default out
        hydra.main(config_path=str(CONFIG_DIR), config_name=command, version_base="1.3")(task)()
    except SystemExit as exc:  # --help, --cfg, or an argument Hydra's parser refuses
        return int(exc.code or 0)
    except BrokenPipeError:  # stdout's reader went away: not our bug, the console entry point ends quietly
        raise
    except Exception as err:  # noqa: BLE001 - a config that does not compose: one line unless debug=true
        if "debug=true" in overrides or not _is_config_error(err):
            import traceback

            traceback.print_exc()  # our bug, or debug=true: the whole story
            return EXIT_USER_ERROR
        from mmtrain.commands.overrides import explain_composition

        print(f"mmtrain {command}: config error: {explain_composition(command, overrides, err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        sys.argv = old_argv
        _restore_env("HYDRA_FULL_ERROR", old_full_error)
    return outcome["code"]


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _is_config_error(err: Exception) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(err, (HydraException, OmegaConfBaseException))


def _sweep_value(result) -> float | None:
    """The number a sweeper optimises: ``fit``'s best value of its checkpoint monitor; None for other commands."""
    score = result.get("best_score") if isinstance(result, dict) else None
    return float(score) if isinstance(score, (int, float)) else None


def _run_task(command: str, module_name: str, cfg) -> tuple[int, float | None]:
    """(exit code, sweep value) of one command run; a ``UserError`` is printed as one line and logged in the run."""
    debug = cfg.get("debug", False) is True  # a mistyped debug=... is reported like any other value
    try:
        from mmtrain.commands.overrides import check_override_types
        from mmtrain.quiet import quiet_third_parties

        check_override_types(command, cfg)
        quiet_third_parties()
        if command == "fit" or (command == "preprocess" and cfg.get("features")):
            from mmtrain.commands.pretrained import check_pretrained_encoder

            check_pretrained_encoder(cfg)
        _use_job_folder(cfg)
        _save_resolved_config(cfg)
        module = importlib.import_module(module_name)
        return EXIT_OK, _sweep_value(module.run(cfg))
    except UserError as err:
        if debug:
            raise
        kind = "interrupted" if err.exit_code == EXIT_INTERRUPTED else "error"
        return _report(command, f"{kind}: {err}", err.exit_code), None
    except KeyboardInterrupt:
        return _report(command, "interrupted", EXIT_INTERRUPTED), None
    except Exception as err:  # noqa: BLE001 - config errors read better without our frames
        from hydra.errors import InstantiationException

        if isinstance(err, InstantiationException) and isinstance(err.__cause__, UserError) and not debug:
            return _report(command, f"error: {err.__cause__}", err.__cause__.exit_code), None  # inside a _target_
        if _is_config_error(err) and not debug:
            from mmtrain.commands.overrides import one_line

            return _report(command, f"config error: {one_line(err)}", EXIT_USER_ERROR), None
        _log_error(f"{type(err).__name__}: {err}")
        raise


def _report(command: str, message: str, code: int) -> int:
    """Print ``mmtrain COMMAND: MESSAGE`` on one line to stderr, log it in the run folder; return ``code``."""
    line = f"mmtrain {command}: {' '.join(message.split())}"
    print(line, file=sys.stderr)
    _log_error(line)
    return code


def _hydra_run_dir() -> Path | None:
    """The Hydra job's output folder, or None outside a Hydra job (a command called in process, a composed config)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    runtime = HydraConfig.get().runtime
    if OmegaConf.is_missing(runtime, "output_dir"):  # set by compose() without a job: there is no run folder
        return None
    return Path(runtime.output_dir)


def _log_error(line: str) -> None:
    """Append the error to ``RUN/error.log`` when the run folder exists (Hydra makes it before the command runs)."""
    try:
        run_dir = _hydra_run_dir()
        if run_dir is not None and run_dir.is_dir():
            from mmtrain.io import write_text

            write_text(run_dir / ERROR_LOG, line.rstrip("\n") + "\n")
    except (OSError, ValueError):  # a read-only or vanished folder: the message was printed all the same
        pass


def _use_job_folder(cfg) -> None:
    """In a multirun (``-m``) each job writes into its own Hydra job folder, ``hydra.sweep.dir/N``: ``out`` is set to it.

    A single run keeps ``out=``; in a multirun ``out=`` names the sweep folder (``hydra.sweep.dir`` defaults to it).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN and "out" in cfg:
        cfg.out = hydra.runtime.output_dir


def _save_resolved_config(cfg) -> None:
    """Save the resolved config as ``config.yaml`` beside the run's outputs (atomically)."""
    from omegaconf import OmegaConf

    from mmtrain.io import write_text

    run_dir = _hydra_run_dir()
    if run_dir is None:  # called in process, outside a Hydra job: there is no run record to update
        return
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def require_split(manifest: dict, split: str, store, why: str) -> None:
    """A one-line error when the store's ``split`` holds no image, naming the split, the store and the remedy."""
    images = manifest.get("splits", {}).get(split, {}).get("images", 0)
    if not images:
        raise UserError(
            f"{store}: the {split} split is empty (0 images) and {why}; preprocess again with "
            f"data.{split}_fraction=0.1 to hold out images (or give the source a {split} split)"
        )


def record_dataset(cfg, manifest: dict, store) -> dict:
    """Make ``cfg.data`` name the dataset the store was made from, and rewrite ``config.yaml`` with it.

    A command that reads a store (fit) composes a default ``data`` group that says nothing of the store; the store's
    manifest knows its name, source, root and checksums. Returns that record.
    """
    from omegaconf import open_dict

    from mmtrain.runinfo import store_dataset

    dataset = store_dataset(manifest, store)
    with open_dict(cfg):
        cfg.data = {**dataset, "scenes": bool(cfg.data.get("scenes", False))}
    _save_resolved_config(cfg)
    return dataset


def require_full_batch(manifest: dict, batch_size: int, store) -> None:
    """Training batches are whole (drop-last): a train split smaller than one batch would train no step at all."""
    images = manifest.get("splits", {}).get("train", {}).get("images", 0)
    if images < batch_size:
        raise UserError(
            f"{store}: the train split has {images} images, fewer than one batch (datamodule.batch_size={batch_size}), "
            f"so fit would train no step; lower it, e.g. datamodule.batch_size={max(1, images)}"
        )
