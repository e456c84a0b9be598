"""Fixtures for the metrics tests: the shared real data, and the Java reference implementation when present."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FAKECAP = SHARED_DATA / "coco_fakecap_1000"
HAS_PYCOCOEVALCAP = importlib.util.find_spec("pycocoevalcap") is not None
HAS_JAVA = shutil.which("java") is not None
# The tokens pycocoevalcap's PTBTokenizer drops (its PUNCTUATIONS list).
PYCOCO_PUNCTUATIONS = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--"]
PYCOCO_PUNCTUATIONS += ["...", ";"]


@pytest.fixture(scope="session")
def fakecap() -> Path:
    """The coco_fakecap_1000 folder of ../shared/data (skips when a checkout has no shared data)."""
    if not FAKECAP.is_dir():
        pytest.skip(f"real data not found at {FAKECAP} (needs ../shared/data beside the project root)")
    return FAKECAP


@pytest.fixture(scope="session")
def fakecap_tokenized(fakecap: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    """pycocoevalcap's shipped PTB tokenization of the references and the results, by image id (as strings)."""
    refs = json.loads((fakecap / "references_ptb_tokenized.json").read_text())
    results = json.loads((fakecap / "fakecap_results_ptb_tokenized.json").read_text())
    return refs, {key: value[0] for key, value in results.items()}


def _require_pycocoevalcap() -> None:
    if not HAS_PYCOCOEVALCAP:
        pytest.skip("pycocoevalcap is not installed (pip install 'mmtrain[dev]')")


@pytest.fixture
def pycocoevalcap_scorers():
    """pycocoevalcap's Bleu, Rouge and Cider classes (pure Python, no Java needed)."""
    _require_pycocoevalcap()
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    return Bleu, Rouge, Cider


@pytest.fixture(scope="session")
def java_ptb_tokenizer():
    """Run pycocoevalcap's Stanford PTBTokenizer jar on a batch of lines; returns kept tokens per line."""
    if not HAS_JAVA:
        pytest.skip("java is not on PATH")
    _require_pycocoevalcap()
    spec = importlib.util.find_spec("pycocoevalcap")
    jar = Path(next(iter(spec.submodule_search_locations))) / "tokenizer" / "stanford-corenlp-3.4.1.jar"

    def tokenize(lines: list[str]) -> list[list[str]]:
        # The same command and input layout as pycocoevalcap's PTBTokenizer.tokenize.
        with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
            handle.write("\n".join(line.replace("\n", " ") for line in lines).encode())
        try:
            command = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines"]
            out = subprocess.run([*command, "-lowerCase", handle.name], capture_output=True, check=True).stdout
        finally:
            os.unlink(handle.name)
        rows = out.decode().split("\n")
        return [
            [w for w in row.rstrip().split(" ") if w not in PYCOCO_PUNCTUATIONS and w] for row in rows[: len(lines)]
        ]

    return tokenize
