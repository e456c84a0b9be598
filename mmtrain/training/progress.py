"""What fit shows while it trains: a bar with steps/s and the time left to ``max_steps`` on a terminal, a line every
N steps (loss, rate, time left) when the output goes to a file, and once, after the first steps, the expected time
per step when it looks slow for the device, with the image size that drives it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from rich.progress import ProgressColumn
from rich.text import Text

from mmtrain.progress import interactive
from mmtrain.training.callbacks import StepAwareProgressBar

log = logging.getLogger("mmtrain.fit")
WARMUP_STEPS = 2  # the first steps pay for start-up (allocations, workers): not timed
TIMED_STEPS = 3  # steps timed for the estimate
SLOW_STEP_S = {"cpu": 1.0, "cuda": 0.5, "mps": 1.0}  # a step slower than this gets the notice


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StepClock(pl.Callback):
    """Optimizer steps per second over the run so far (after the warm-up steps), and the time left to max_steps."""

    def __init__(self) -> None:
        self.start: float | None = None
        self.start_step = 0
        self.rate: float | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        now, step = time.perf_counter(), trainer.global_step
        if self.start is None or step < self.start_step:
            if step >= WARMUP_STEPS:
                self.start, self.start_step = now, step
            return
        if step > self.start_step and now > self.start:
            self.rate = (step - self.start_step) / (now - self.start)

    def eta(self, trainer: pl.Trainer) -> float | None:
        if not self.rate or not trainer.max_steps or trainer.max_steps < 0:
            return None
        return max(0, trainer.max_steps - trainer.global_step) / self.rate


class _RateColumn(ProgressColumn):
    """``2.41 steps/s · 12:04 left`` while training; ``N it/s`` while validating; blank until it is known."""

    def __init__(self, clock: StepClock, bar: StepProgressBar) -> None:
        self.clock, self.bar = clock, bar
        super().__init__()

    def render(self, task) -> Text:
        trainer = self.bar._trainer
        if trainer is not None and trainer.training and self.clock.rate:
            eta = self.clock.eta(trainer)
            left = f" · {_duration(eta)} left" if eta is not None else ""
            return Text(f"{self.clock.rate:.2f} steps/s{left}")
        return Text(f"{task.speed:.2f} it/s" if task.speed else "")


class StepProgressBar(StepAwareProgressBar):
    """Lightning's rich bar, with steps/s and the time left to ``max_steps`` in place of its "0.00it/s"."""

    def __init__(self, clock: StepClock) -> None:
        super().__init__()
        self.clock = clock

    def configure_columns(self, trainer: pl.Trainer) -> list:
        columns = super().configure_columns(trainer)
        return [*columns[:-1], _RateColumn(self.clock, self)]  # the last is Lightning's speed column


class StepLines(pl.Callback):
    """A line every ``every`` steps for logs that are not a terminal: step, loss, steps/s, time left."""

    def __init__(self, clock: StepClock, every: int) -> None:
        self.clock, self.every = clock, max(1, every)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every or not trainer.is_global_zero:
            return
        loss = trainer.callback_metrics.get("train/loss")
        total = f"/{trainer.max_steps}" if trainer.max_steps and trainer.max_steps > 0 else ""
        parts = [f"step {step}{total}", f"loss {float(loss):.4f}" if loss is not None else "loss n/a"]
        if self.clock.rate:
            parts.append(f"{self.clock.rate:.2f} steps/s")
            eta = self.clock.eta(trainer)
            parts += [f"{_duration(eta)} left"] if eta is not None else []
        log.info(" · ".join(parts))


class SlowStepNotice(pl.Callback):
    """After the first timed steps, say how long a step takes when it is slow for the device, and why."""

    def __init__(self, clock: StepClock, image_size: int) -> None:
        self.clock, self.image_size, self.done = clock, image_size, False

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.done or not self.clock.rate or trainer.global_step < WARMUP_STEPS + TIMED_STEPS:
            return
        self.done = True
        seconds, device = 1.0 / self.clock.rate, pl_module.device.type
        if seconds < SLOW_STEP_S.get(device, 1.0) or not trainer.is_global_zero:
            return
        eta = self.clock.eta(trainer)
        total = (
            f"; {trainer.max_steps} steps take about {_duration(eta + seconds * trainer.global_step)}" if eta else ""
        )
        log.warning(
            "about %.1f s a step on %s at %d px images%s. The image size drives it (cost grows with its square): "
            "preprocess with a smaller data.resize.size (e.g. %d, about 4x fewer pixels) for a quicker run",
            seconds,
            device,
            self.image_size,
            total,
            max(16, self.image_size // 2),
        )


def progress_callbacks(*, every: int, image_size: int) -> list[pl.Callback]:
    """The bar on a terminal, a line every ``every`` steps otherwise, and the slow-step notice."""
    clock = StepClock()
    shown = StepProgressBar(clock) if interactive() else StepLines(clock, every)
    return [clock, shown, SlowStepNotice(clock, image_size)]
