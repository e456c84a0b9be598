"""Resume keeps everything: the metrics log of an interrupted run, the command that continues it, ``resume=last``."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mmtrain.errors import EXIT_INTERRUPTED
from tests.conftest import MMTRAIN, ROOT, TINY_MODEL, run_cli, run_in_process


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "logs" / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]


def _records(rows: list[dict[str, str]]) -> list[tuple[int, frozenset]]:
    """(step, metric names) of each row: what a logging call was, values aside."""
    return [(int(row["step"]), frozenset(row)) for row in rows]


@pytest.mark.slow
def test_an_interrupted_and_resumed_run_logs_what_a_straight_run_logs(tiny_store, tmp_path):
    """Ctrl-C mid-run, then the printed command: metrics.csv holds every row, once, as an uninterrupted run's."""
    settings = [f"data.store={tiny_store}", *TINY_MODEL, "trainer.max_steps=40", "trainer.val_check_interval=10",
                "checkpoint_every_n_steps=10"]  # fmt: skip
    straight = tmp_path / "straight"
    assert run_cli("fit", *settings, f"out={straight}", timeout=600).returncode == 0

    run = tmp_path / "interrupted"
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([*MMTRAIN, "fit", *settings, f"out={run}"], cwd=ROOT, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 400
    while not (run / "checkpoints" / "last.ckpt").exists():  # step 10 is done, with its validation
        if time.time() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"fit did not reach step 10: {process.communicate()[0][-2000:]}")
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == EXIT_INTERRUPTED, output[-2000:]
    printed = output.split("continue with: ", 1)[1].splitlines()[0]
    command = shlex.split(printed)
    assert command[:2] == ["mmtrain", "fit"] and command[-2:] == [
        f"resume={run / 'checkpoints' / 'last.ckpt'}",
        f"out={run}",
    ]
    interrupted = _rows(run)
    assert interrupted, "nothing was logged before the interruption"

    resumed = subprocess.run([*MMTRAIN, *command[1:]], cwd=ROOT, env=environment, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = _rows(run)
    records = _records(final)
    assert len(set(records)) == len(records), "a row was logged twice"
    assert [step for step, _ in records] == sorted(step for step, _ in records)
    by_record = dict(zip(records, final, strict=True))
    # Every row written before the interruption is kept (with Lightning's extra log and validation at the stop),
    # and every row of an uninterrupted run is there, with its values: the resume continued exactly.
    for earlier in (interrupted, _rows(straight)):
        for record, row in zip(_records(earlier), earlier, strict=True):
            assert record in by_record, f"row of step {record[0]} lost"
            for name, value in row.items():
                assert float(by_record[record][name]) == pytest.approx(float(value), rel=1e-5, abs=1e-6), record
    assert set(records) == set(_records(interrupted)) | set(_records(_rows(straight)))


def test_resume_last_without_out_continues_the_latest_run_and_keeps_its_log(tiny_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/fit is found from the working directory
    settings = [f"data.store={tiny_store}", *TINY_MODEL, "trainer.val_check_interval=2", "checkpoint_every_n_steps=2"]
    first = run_in_process("fit", *settings, "trainer.max_steps=4")
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = (tmp_path / "runs" / "fit").iterdir()
    before = _rows(run)
    older = tmp_path / "runs" / "fit" / "2020-01-01_00-00-00"  # an older run of the same kind, left alone
    shutil.copytree(run / "checkpoints", older / "checkpoints")
    os.utime(older / "checkpoints" / "last.ckpt", (0, 0))

    resumed = run_in_process("fit", *settings, "trainer.max_steps=6", "resume=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (
        f"resume=last: continuing {Path('runs') / 'fit' / run.name}, the most recent run under"
        in resumed.stdout + resumed.stderr
    )
    assert sorted(p.name for p in (tmp_path / "runs" / "fit").iterdir()) == sorted([run.name, older.name])
    after = _rows(run)
    assert after[: len(before)] == before  # the first run's rows (steps 1 and 3, two validations), kept
    assert [int(row["step"]) for row in after if "train/loss" in row] == [1, 3, 5]
    assert [int(row["step"]) for row in after if "val/CIDEr" in row] == [1, 3, 5]
    assert not (older / "logs").exists()
    drawn = json.loads((run / "curves.json").read_text())  # the points of curves.png
    assert [point[0] for point in drawn["train"]] == [1, 2, 4, 6]  # both runs, once
    assert [point[0] for point in drawn["val"]["val/CIDEr"]] == [2, 4, 6]


def test_resume_last_with_no_earlier_run_says_so_in_one_line(tiny_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_in_process("fit", f"data.store={tiny_store}", *TINY_MODEL, "resume=last")
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("mmtrain fit: error: resume=last: no run under runs/fit has a checkpoints/last.ckpt"), line
