"""SPICE, only from a SPICE jar the user points to, and never fatal.

SPICE (``spice-1.0.jar``) parses captions into scene graphs with Stanford CoreNLP, whose models it expects in
``lib/`` beside the jar. pycocoevalcap downloads those models on first use; we never touch the network, so SPICE runs
only when the user gives a jar whose ``lib/`` already holds them. Every problem (no Java, no jar, no models, a crash, a
timeout, unreadable output) becomes a reason string that lands in ``metrics.json`` under ``skipped``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np


def spice_unavailable_reason(jar: str | Path | None) -> str | None:
    """Why SPICE cannot run with this jar, or None when it can."""
    if jar is None:
        return "no SPICE jar given (pass spice_jar=path/to/spice-1.0.jar with its Stanford CoreNLP models in lib/)"
    jar = Path(jar)
    if not jar.is_file():
        return f"SPICE jar not found: {jar}"
    if shutil.which("java") is None:
        return "needs Java (SPICE is a Java program); `java` is not on PATH"
    if not any((jar.parent / "lib").glob("stanford-corenlp-*-models.jar")):
        return f"needs the Stanford CoreNLP models jar in {jar.parent / 'lib'} (not downloaded: no network use)"
    return None


def spice_scores(
    references: Sequence[Sequence[str]],
    candidates: Sequence[str],
    jar: str | Path | None,
    *,
    image_ids: Sequence[Hashable] | None = None,
    timeout: float = 3600.0,
) -> tuple[float, np.ndarray] | str:
    """SPICE F-scores of tokenized candidates, or the reason it could not be computed.

    Args:
        references: Per image, its tokenized references.
        candidates: Per image, its tokenized candidate, aligned with ``references``.
        jar: Path to ``spice-1.0.jar``.
        image_ids: Ids to label the images with in SPICE's input (positions by default).
        timeout: Seconds before giving up on the Java process.

    Returns:
        ``(corpus score, per-image scores)`` (the corpus score is the per-image mean, as in pycocoevalcap), or a
        one-line reason string.
    """
    reason = spice_unavailable_reason(jar)
    if reason is not None:
        return reason
    ids = list(image_ids) if image_ids is not None else list(range(len(candidates)))
    items = [
        {"image_id": str(i), "test": c, "refs": list(r)} for i, c, r in zip(ids, candidates, references, strict=True)
    ]
    with tempfile.TemporaryDirectory(prefix="mmtrain-spice-") as tmp:
        source, target = Path(tmp) / "input.json", Path(tmp) / "output.json"
        source.write_text(json.dumps(items), encoding="utf-8")
        command = ["java", "-jar", "-Xmx8G", str(Path(jar).resolve()), str(source), "-out", str(target)]
        try:
            done = subprocess.run(
                [*command, "-subset", "-silent"], cwd=Path(jar).parent, capture_output=True, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"SPICE did not finish: {error}"
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            return f"SPICE failed: {tail[0]}"
        try:
            by_id = {
                str(item["image_id"]): float(item["scores"]["All"]["f"]) for item in json.loads(target.read_text())
            }
            per_image = np.asarray([by_id[str(i)] for i in ids], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as error:
            return f"SPICE output unreadable: {error}"
    return float(np.mean(per_image)) if len(per_image) else 0.0, per_image
