"""Callbacks that make runs resumable and safe: RNG state in checkpoints, SIGTERM checkpoints, non-finite losses."""

from __future__ import annotations

import logging
import math
import random
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import RichProgressBar  # rich is a dependency of mmtrain

from mmtrain.errors import UserError

log = logging.getLogger(__name__)


class StepAwareProgressBar(RichProgressBar):
    """Lightning's progress bar, with a training description that makes sense for runs bounded by steps.

    Lightning writes "Epoch E/M-1"; a run bounded by ``max_steps`` has ``max_epochs=-1`` and showed "Epoch 2/-2".
    Such a run now reads "Epoch 2 · to step 3000".
    """

    def _get_train_description(self, current_epoch: int) -> str:
        max_epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
        text = f"Epoch {current_epoch}"
        if max_epochs is not None and max_epochs > 0:
            text += f"/{max_epochs - 1}"
        elif max_steps is not None and max_steps > 0:
            text += f" · to step {max_steps}"
        return f"{text:{len(self.validation_description)}}"  # padded: the bar does not flicker between the two


class RNGState(pl.Callback):
    """Saves the Python, NumPy and torch RNG states in checkpoints and restores them on resume.

    Lightning restores optimizer, scheduler, loop and (stateful) data loader positions; with the RNG states too, a
    resumed run draws the same dropout masks as an uninterrupted one.
    """

    def state_dict(self) -> dict[str, Any]:
        return {
            "python": list(random.getstate()[1]) + [random.getstate()[2] or 0],
            "python_version": random.getstate()[0],
            "numpy": np.random.get_state()[1].tolist(),
            "numpy_pos": int(np.random.get_state()[2]),
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        values = state["python"]
        random.setstate((state["python_version"], tuple(values[:-1]), values[-1] or None))
        np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
        torch.set_rng_state(state["torch"])


class SignalCheckpoint(pl.Callback):
    """On SIGTERM (or SIGINT), finish the current step, write ``last.ckpt`` and stop training cleanly."""

    def __init__(self, checkpoint_dir: Path) -> None:
        self.checkpoint_dir, self.received = Path(checkpoint_dir), None
        self._previous: dict[int, Any] = {}
        # Installed at once, so a signal during start-up is honoured at the first step rather than killing the run.
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signal.Signals(signum).name

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Lightning registers its own SIGTERM handler at fit start; it raises at a later point of the same step than
        # this callback's hook, so a signal landing between the two would stop the run without a checkpoint. Taking
        # the signals back leaves the stop to this callback alone (Lightning restores its handlers at teardown).
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        if self.received and not trainer.should_stop:
            path = self.checkpoint_dir / "last.ckpt"
            trainer.save_checkpoint(path)
            log.warning("%s received: checkpoint written to %s at step %d", self.received, path, trainer.global_step)
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class FiniteLoss(pl.Callback):
    """Stops on a NaN or infinite loss, naming the step; the last good state is already on disk.

    With ``max_skips > 0`` a bad step's update is skipped instead (up to that many times in the run).
    """

    def __init__(self, checkpoint_dir: Path, max_skips: int = 0) -> None:
        self.checkpoint_dir, self.max_skips, self.skipped = Path(checkpoint_dir), max_skips, 0

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        loss = trainer.callback_metrics.get("train/loss")
        bad_grad = any(
            p.grad is not None and not torch.isfinite(p.grad).all() for p in pl_module.parameters() if p.requires_grad
        )
        if (loss is None or math.isfinite(float(loss))) and not bad_grad:
            return
        step = trainer.global_step
        if self.skipped < self.max_skips:
            self.skipped += 1
            optimizer.zero_grad(set_to_none=True)
            log.warning(
                "non-finite loss at step %d: update skipped (%d of %d allowed)", step, self.skipped, self.max_skips
            )
            return
        optimizer.zero_grad(set_to_none=True)  # the weights are still the last good ones: keep them
        trainer.save_checkpoint(self.checkpoint_dir / "last.ckpt")
        raise UserError(
            f"non-finite loss at step {step} (loss={float(loss) if loss is not None else 'n/a'}); training stopped, "
            f"the last good state is saved as {self.checkpoint_dir / 'last.ckpt'} (nonfinite_skips=N skips such steps)"
        )


class LogHistory(pl.Callback):
    """Keeps the metrics log of an interrupted run across its resume (see ``HistoryCSVLogger``).

    Once Lightning has restored the checkpoint, each such logger takes back the earlier rows before the restored
    step; before any checkpoint is written, every logger writes what it holds, so the log on disk covers at least
    what the checkpoint does.
    """

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from mmtrain.training.loggers import HistoryCSVLogger

        for logger in trainer.loggers:
            if isinstance(logger, HistoryCSVLogger):
                logger.resume_at(trainer.global_step)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        for logger in trainer.loggers:
            logger.save()
