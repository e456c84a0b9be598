"""Fixtures of the data tests: the tiny shapes dataset stored as JPEG (the session's ``tiny_store`` holds raw arrays)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TINY_DATA, run_in_process


@pytest.fixture(scope="session")
def tiny_jpeg_store(tiny_store: Path) -> Path:
    """``tiny_store``'s images preprocessed again with ``image_format=jpeg`` (quality 90), through the console entry point."""
    out = tiny_store.parent / "store_jpeg"
    if not (out / "manifest.json").is_file():
        args = [
            f"data.root={tiny_store.parent / 'raw'}",
            f"out={out}",
            *TINY_DATA,
            "image_format=jpeg",
            "num_workers=1",
        ]
        result = run_in_process("preprocess", *args)
        assert result.returncode == 0, result.stderr[-3000:]
    return out
