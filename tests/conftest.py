"""Shared fixtures: paths to the real data beside the project, Java detection, a tiny shapes store."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One process per core runs the tests (make test): torch's threads in each would oversubscribe the machine.
    # Set before torch is imported here or in a command's subprocess.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MMTRAIN = [sys.executable, "-m", "mmtrain.cli"]

# Overrides that shrink every model to seconds on a CPU (32 px images, 1 layer, width 32).
TINY_DATA = [
    "data.source.prepare.splits={train:96,val:16,test:16}",
    "data.source.prepare.image_size=32",
    "data.resize.size=32",
    "data.text.vocab_size=64",
]
TINY_MODEL = [
    "encoder=vit_grid_tiny",
    "encoder.model_kwargs.depth=1",
    "encoder.model_kwargs.embed_dim=32",
    "encoder.model_kwargs.num_heads=2",
    "decoder.d_model=32",
    "decoder.num_layers=1",
    "decoder.num_heads=2",
    "datamodule.batch_size=16",
    "datamodule.eval_batch_size=16",
    "trainer.max_steps=12",
    "trainer.val_check_interval=6",
    "trainer.log_every_n_steps=2",
    "optim.warmup_steps=2",
]


def shared_data(name: str) -> Path:
    """A folder of ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives beside the project root in ../shared/data)")
    return path


def java_available() -> bool:
    return shutil.which("java") is not None


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``mmtrain ARGS`` in a subprocess, as a user would."""
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [*MMTRAIN, *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=environment
    )


def run_in_process(*args: str) -> SimpleNamespace:
    """``mmtrain ARGS`` through the console entry point, in this process: ``returncode``, ``stdout``, ``stderr``.

    Cheaper than a subprocess once torch is imported (seconds a call on a loaded 2-core machine): use it wherever the
    test is about what a command does, and :func:`run_cli` where it is about the process (exit status, signals,
    environment, what it imports). Hydra's logging handlers and the signal handlers a fit installs are put back.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    out, err = io.StringIO(), io.StringIO()
    from mmtrain.cli import main

    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in args])
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for sig, handler in signals.items():
            signal.signal(sig, handler)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A preprocessed tiny shapes store (96/16/16 images at 32 px), made through the console entry point."""
    base = tmp_path_factory.mktemp("tiny")
    result = run_in_process("preprocess", f"data.root={base / 'raw'}", f"out={base / 'store'}", *TINY_DATA)
    assert result.returncode == 0, result.stderr[-3000:]
    return base / "store"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_store: Path, tmp_path_factory) -> Path:
    """A checkpoint from a 12-step fit on the tiny store."""
    out = tmp_path_factory.mktemp("fit")
    result = run_in_process("fit", f"data.store={tiny_store}", f"out={out}", *TINY_MODEL)
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "checkpoints" / "last.ckpt"


# Overrides that put a tiny_lm folder behind the image (prefix fusion, 4 prefix tokens): pass with TINY_MODEL's
# encoder and trainer lines, without its decoder lines.
TINY_HF = ["decoder=hf_causal_lm", "fusion=prefix", "fusion.prefix_len=4", "fusion.num_layers=1", "fusion.num_heads=2"]


@pytest.fixture(scope="session")
def tiny_lm(tiny_store: Path, tmp_path_factory) -> Path:
    """A Hugging Face folder (save_pretrained): a random-init 2-layer GPT-2 of width 32 and a byte-level BPE
    tokenizer trained on the tiny store's training captions. Load it with from_pretrained, as a hub model."""
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from mmtrain.metrics.coco_files import load_references
    from mmtrain.models.tiny_lm import write_tiny_lm

    captions = [c for refs in load_references(tiny_store / "references_train.json").values() for c in refs]
    return write_tiny_lm(captions, tmp_path_factory.mktemp("tiny_lm") / "lm", vocab_size=128)
