"""Layers import one way: each layer, imported alone in a fresh interpreter, brings in nothing above it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

FORBIDDEN = {
    "mmtrain.metrics": ["torch"],
    "mmtrain.data": ["mmtrain.models", "mmtrain.training"],
    "mmtrain.models": ["mmtrain.data", "mmtrain.training", "lightning", "pytorch_lightning"],
    # the leaf modules every layer may share: nothing of mmtrain's layers, and no torch
    "mmtrain.tokens": ["torch", "mmtrain.data", "mmtrain.models", "mmtrain.metrics"],
    "mmtrain.io": ["torch", "mmtrain.data", "mmtrain.models", "mmtrain.metrics"],
}


def modules_of(package: str) -> list[str]:
    """Every module of ``package`` (its files), for importing them all."""
    folder = ROOT / package.replace(".", "/")
    names = [package]
    if not folder.is_dir():  # a single module
        return names
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(set(names))


def imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imported_alone_brings_in_nothing_above_it(layer):
    """Every module of the layer is imported (not just its package), so a top-level import anywhere in it counts."""
    loaded = imported_after(modules_of(layer))
    above = sorted(
        name for name in loaded for banned in FORBIDDEN[layer] if name == banned or name.startswith(banned + ".")
    )
    assert not above, f"importing {layer} also imported {above[:5]}"


def test_no_module_is_longer_than_a_reader_can_hold():
    """The house rule: no file in mmtrain/ over 300 lines (split a module rather than grow it)."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "mmtrain").rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 300
    }
    assert not long, f"over 300 lines: {long}"
