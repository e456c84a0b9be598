"""Fixtures of the reliability suite: the CLI called in-process, and a small COCO-layout dataset of bad inputs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import run_in_process
from tests.reliability import zoo


@pytest.fixture
def cli() -> Callable[..., tuple[int, str]]:
    """``cli(*args) -> (exit code, stderr)`` of ``mmtrain ARGS`` run in this process."""

    def call(*args: str) -> tuple[int, str]:
        result = run_in_process(*args)
        return result.returncode, result.stderr

    return call


def assert_one_line_error(code: int, stderr: str, *needles: str, exit_code: int = 1) -> str:
    """The error is one line naming what is wrong, with the exit code and no traceback; returns that line."""
    assert code == exit_code, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def zoo_store(tmp_path_factory) -> Iterator[tuple[Path, Path, SimpleNamespace]]:
    """``mmtrain preprocess`` over a COCO-layout dataset holding the bad-input zoo; returns (root, store, result)."""
    base = tmp_path_factory.mktemp("zoo")
    root = zoo.write_coco_dataset(base / "raw")
    store = base / "store"
    yield root, store, run_in_process("preprocess", *zoo.PREPROCESS_ARGS, f"data.root={root}", f"out={store}")


@pytest.fixture(scope="session")
def audited(tmp_path_factory, tiny_store):
    """Every command run once with the network blocked and its file writes recorded (see ``audit.py``)."""
    from tests.reliability.audit import audited_runs

    raw = tiny_store.parent / "raw"
    before = {p: p.stat().st_mtime_ns for p in raw.rglob("*")}
    runs = audited_runs(tmp_path_factory.mktemp("audit"), tiny_store)
    runs.raw_unchanged = before == {p: p.stat().st_mtime_ns for p in raw.rglob("*")}
    return runs
