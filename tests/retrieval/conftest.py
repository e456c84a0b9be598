"""A tiny model with a contrastive head (experiment=shapes_itc), trained for two steps on the tiny shapes store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_MODEL, run_in_process

SHORT = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="session")
def itc_checkpoint(tiny_store: Path, tmp_path_factory) -> Path:
    """A checkpoint of a 2-step ``experiment=shapes_itc`` fit with the tiny encoder and decoder."""
    out = tmp_path_factory.mktemp("fit-itc")
    model = [o for o in TINY_MODEL if not o.startswith(("trainer.max_steps", "trainer.val_check", "trainer.log_every"))]
    result = run_in_process("fit", "experiment=shapes_itc", f"data.store={tiny_store}", f"out={out}", *model, *SHORT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="session")
def raw_test_images(tiny_store: Path) -> Path:
    """The folder of the tiny store's raw test images (16 JPEG files)."""
    return tiny_store.parent / "raw" / "test2017"
