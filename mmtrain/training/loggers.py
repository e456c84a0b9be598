"""Experiment loggers: the run's own CSV log, kept across resume, and the ``logger`` config group's choices.

``logger=csv`` (the default) writes ``RUN/logs/metrics.csv``; ``logger=tensorboard|mlflow|wandb`` add that
logger beside it. Their packages come with ``pip install -e '.[loggers]'``; a missing one is a one-line error.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import Logger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from mmtrain.errors import UserError
from mmtrain.io import write_text

FIRST_COLUMNS = ("step", "epoch")


class HistoryCSVLogger(Logger):
    """``SAVE_DIR/NAME/metrics.csv``, one row per logging call, that keeps the rows of an interrupted run.

    Lightning's ``CSVLogger`` deletes the file it finds when a resumed run starts logging, so the curve before the
    interruption was lost. This logger starts empty; :meth:`resume_at` (called once the checkpoint is restored) takes
    back the rows of the earlier run that the checkpoint covers, those before its step. A row the resumed run logs
    again (same step, same metrics) replaces the earlier one, so no row is duplicated and none is dropped. The file is
    rewritten whole and atomically: at validations, every ``flush_every_n_steps`` steps, on :meth:`save` (a checkpoint
    being written) and at the end.
    """

    def __init__(self, *, save_dir: str, name: str = "logs", flush_every_n_steps: int = 100) -> None:
        super().__init__()
        self._save_dir, self._name = str(save_dir), name
        self.flush_every_n_steps = max(1, int(flush_every_n_steps))
        self.rows: list[dict[str, str]] = []
        self._earlier: dict[tuple, int] = {}  # (step, metric names) -> index, for rows taken back from an earlier run
        self._dirty = False

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        return str(Path(self._save_dir) / self._name)

    @property
    def metrics_path(self) -> Path:
        return Path(self.log_dir) / "metrics.csv"

    @rank_zero_only
    def resume_at(self, step: int) -> None:
        """Take back the earlier rows logged before ``step`` (the restored checkpoint's global step); 0: none."""
        earlier = _read_rows(self.metrics_path) if step > 0 else []
        self.rows = [row for row in earlier if _step(row) < step]
        self._earlier = {_record(row): index for index, row in enumerate(self.rows)}
        self._dirty = True
        self.save()

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Hyperparameters are recorded in the run's config.yaml and run manifest; nothing to add here."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = len(self.rows) if step is None else int(step)
        row = {"step": str(step), **{key: _text(value) for key, value in metrics.items()}}
        if "epoch" in row:
            row["epoch"] = str(int(float(row["epoch"])))
        replaced = self._earlier.pop(_record(row), None)
        if replaced is None:
            self.rows.append(row)
        else:  # the resumed run logged again what the earlier run had logged after its checkpoint
            self.rows[replaced] = row
        self._dirty = True
        if any(key.startswith("val/") for key in row) or (step + 1) % self.flush_every_n_steps == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if not self._dirty:
            return
        columns = list(FIRST_COLUMNS)
        for row in self.rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.metrics_path, buffer.getvalue())
        self._dirty = False

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def _text(value: Any) -> str:
    return str(float(value.item() if hasattr(value, "item") else value))


def _step(row: Mapping[str, str]) -> int:
    return int(float(row.get("step") or -1))


def _record(row: Mapping[str, str]) -> tuple[int, frozenset]:
    """What a logging call was, values aside: its step and the metrics it holds (the same twice: one call, redone)."""
    return _step(row), frozenset(key for key, value in row.items() if value != "")


def _read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an earlier metrics.csv, without empty cells; none when there is no such file."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return [{k: v for k, v in row.items() if k and v not in ("", None)} for row in csv.DictReader(handle)]
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise UserError(f"{path}: cannot read the metrics log of the run being resumed ({error})") from None


def build_loggers(loggers: Mapping[str, Any]) -> list[Logger]:
    """Instantiate each entry of the ``logger`` config (null entries are off); a missing package is one line."""
    from hydra.utils import instantiate

    built = []
    for name, node in loggers.items():
        if node is None:
            continue
        try:
            logger = instantiate(node)
            getattr(logger, "experiment", None)  # creates the run now, so that an import it needs fails here
        except Exception as error:  # noqa: BLE001 - only a missing package is the user's to fix
            missing = _missing_package(error)
            if missing is None:
                raise
            raise UserError(
                f"logger={name}: its package is not installed ({missing}); "
                f"install the loggers extra: pip install -e '.[loggers]'"
            ) from None
        built.append(logger)
    return built


def _missing_package(error: BaseException | None) -> str | None:
    """The message of the ImportError behind ``error`` (Hydra wraps what a constructor raises), if there is one."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ImportError):
            return " ".join(str(error).split(". HINT")[0].split())[:200]
        error = error.__cause__ or error.__context__
    return None
