"""``RUN/curves.png``: training loss, learning rate and each validation metric against the step.

Redrawn at every validation and at the end of training (unless nothing changed since), and written atomically, so
that a person can open it while the run goes on. A resumed run draws its whole history: the points are kept in
checkpoints, and ``RUN/curves.json`` (written with each picture) gives back the validations that ran after the
checkpoint was written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from mmtrain.io import atomic_open, write_json

COLUMNS = 4


class Curves(pl.Callback):
    """Collects the training loss and learning rate every ``log_every_n_steps`` steps and the validation metrics."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.train: list[tuple[int, float, float]] = []  # (step, loss, learning rate)
        self.val: dict[str, list[tuple[int, float]]] = {}
        self._drawn: dict[str, Any] | None = None  # the points of the picture on disk

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        step = trainer.global_step  # steps done, this one included
        loss = trainer.callback_metrics.get("train/loss")
        if loss is None or (step % max(1, trainer.log_every_n_steps) and step != 1):
            return
        lr = max(group["lr"] for optimizer in trainer.optimizers for group in optimizer.param_groups)
        self.train.append((step, float(loss), float(lr)))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """On resume, take back the earlier points up to the restored step that the checkpoint did not hold."""
        step, sidecar = trainer.global_step, self.path.with_suffix(".json")
        if step == 0 or not sidecar.is_file():
            return
        try:
            earlier = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # a damaged picture's points: the checkpoint's own are still drawn
        known = {point[0] for point in self.train}
        self.train += [tuple(p) for p in earlier.get("train", []) if p[0] <= step and p[0] not in known]
        for name, points in earlier.get("val", {}).items():
            seen = {p[0] for p in self.val.get(name, [])}
            self.val.setdefault(name, []).extend(tuple(p) for p in points if p[0] <= step and p[0] not in seen)
        self.train.sort()
        for points in self.val.values():
            points.sort()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        for name, value in trainer.callback_metrics.items():
            if name.startswith("val/"):
                self.val.setdefault(name, []).append((trainer.global_step, float(value)))
        if trainer.is_global_zero:
            self.draw()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero and self.train and self.state_dict() != self._drawn:
            self.draw()  # not when the last validation drew the same points

    def state_dict(self) -> dict[str, Any]:
        return {
            "train": [list(point) for point in self.train],
            "val": {k: [list(p) for p in v] for k, v in self.val.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train = [tuple(point) for point in state.get("train", [])]
        self.val = {name: [tuple(p) for p in points] for name, points in state.get("val", {}).items()}

    def draw(self) -> None:
        """Render every curve into one PNG, written atomically."""
        import matplotlib

        matplotlib.use("Agg")  # no display: render to a file only
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        panels = [
            ("train/loss", [(s, loss) for s, loss, _ in self.train]),
            ("learning rate", [(s, lr) for s, _, lr in self.train]),
        ]
        panels += sorted(self.val.items())
        rows = math.ceil(len(panels) / COLUMNS)
        height = 2.8 * rows  # inches; fixed margins, as a constrained layout measuring every label doubled the time
        figure = Figure(figsize=(4 * COLUMNS, height))
        figure.subplots_adjust(
            left=0.04, right=0.99, bottom=0.5 / height, top=1 - 0.55 / height, wspace=0.2, hspace=0.45
        )
        for index, (title, points) in enumerate(panels):
            axes = figure.add_subplot(rows, COLUMNS, index + 1)
            steps, values = [p[0] for p in points], [p[1] for p in points]
            axes.plot(steps, values, marker="o" if title.startswith("val/") else None, markersize=3, linewidth=1.2)
            axes.set_title(title, fontsize=10)
            axes.set_xlabel("step", fontsize=8)
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.tick_params(labelsize=8)
            axes.grid(alpha=0.3)
            if title == "learning rate":
                axes.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        last = max([p[0] for p in self.train] + [p[0] for points in self.val.values() for p in points], default=0)
        figure.suptitle(f"{self.path.parent.name} · step {last}", fontsize=11)
        with atomic_open(self.path, "wb") as handle:
            figure.savefig(handle, format="png", dpi=90)
        self._drawn = self.state_dict()
        write_json(self.path.with_suffix(".json"), self._drawn, indent=None)
