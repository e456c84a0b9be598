"""Layering: retrieval composes models and data but never the trainer; opening an index needs no torch."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import mmtrain.retrieval
from mmtrain.retrieval import Index
import mmtrain.retrieval.folder, mmtrain.retrieval.backends
assert "torch" not in sys.modules, "opening an index imported torch"
import mmtrain.retrieval.build, mmtrain.retrieval.embed, mmtrain.commands.index, mmtrain.commands.search
training = sorted(m for m in sys.modules if m.startswith(("mmtrain.training", "lightning", "pytorch_lightning")))
assert not training, training
"""


def test_retrieval_imports_no_trainer_and_the_index_api_no_torch():
    result = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
