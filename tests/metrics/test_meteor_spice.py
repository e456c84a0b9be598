"""METEOR through the Java jar (when present) and SPICE's refusal paths; neither may crash a run."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmtrain.errors import UserError
from mmtrain.metrics.meteor import Meteor
from mmtrain.metrics.meteor import jar as meteor_module
from mmtrain.metrics.scores import coco_caption_scores, shared_meteor
from mmtrain.metrics.spice import spice_scores, spice_unavailable_reason

HAS_JAVA = shutil.which("java") is not None


def test_meteor_without_java_is_a_clear_user_error(monkeypatch) -> None:
    monkeypatch.setattr(meteor_module.shutil, "which", lambda _: None)
    assert "needs Java" in meteor_module.meteor_unavailable_reason()
    with pytest.raises(UserError, match="meteor=java needs Java"):
        coco_caption_scores({1: ["a dog"]}, {1: "a dog"}, meteor="java")


@pytest.mark.java
@pytest.mark.skipif(not HAS_JAVA, reason="java is not on PATH")
def test_a_meteor_process_that_dies_is_reported_not_a_broken_pipe(tmp_path: Path) -> None:
    jar = tmp_path / "meteor-1.5.jar"
    with zipfile.ZipFile(jar, "w") as archive:  # a jar with no main class: java exits at once
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
    with Meteor(jar, timeout=60) as broken, pytest.raises(UserError, match="METEOR (exited|stopped)"):
        broken.score([["a dog"]], ["a dog"])


@pytest.mark.java
@pytest.mark.slow
def test_meteor_survives_awkward_text_and_serves_many_calls() -> None:
    if meteor_module.meteor_unavailable_reason():
        pytest.skip(meteor_module.meteor_unavailable_reason())
    scorer = shared_meteor()
    references = [["a dog ||| runs", "a brown\ndog"], ["a cat sleeps on a mat"], ["x"]]
    candidates = ["a dog runs |||", "a cat\nsleeps", ""]
    score, per_image = scorer.score(references, candidates)
    assert per_image.shape == (3,)
    assert 0 < score < 1 and np.all((per_image >= 0) & (per_image <= 1))
    again, _ = scorer.score(references, candidates)  # same process, same answer
    assert again == score
    assert scorer.score([["a cat sleeps on a mat"]], ["a cat sleeps on a mat"])[0] == pytest.approx(1.0, abs=0.01)


@pytest.mark.java
@pytest.mark.slow
@pytest.mark.realdata
def test_meteor_golden_on_fakecap(fakecap: Path) -> None:
    if meteor_module.meteor_unavailable_reason():
        pytest.skip(meteor_module.meteor_unavailable_reason())
    data = json.loads((fakecap / "captions_val2014_subset1000.json").read_text())
    references: dict[int, list[str]] = {image["id"]: [] for image in data["images"]}
    for annotation in data["annotations"]:
        references[annotation["image_id"]].append(annotation["caption"])
    results = json.loads((fakecap / "captions_val2014_fakecap_results.json").read_text())
    scores = coco_caption_scores(references, {r["image_id"]: r["caption"] for r in results}, meteor=True)
    assert round(scores["METEOR"], 3) == 0.195
    assert round(scores["METEOR"], 4) == 0.1953  # what pycocoevalcap 1.2 gives on this machine's Java


def test_spice_reasons_without_running_anything(tmp_path: Path) -> None:
    assert "no SPICE jar given" in spice_unavailable_reason(None)
    assert "not found" in spice_unavailable_reason(tmp_path / "spice-1.0.jar")
    jar = tmp_path / "spice-1.0.jar"
    jar.write_bytes(b"")
    if HAS_JAVA:
        reason = spice_unavailable_reason(jar)
        assert "Stanford CoreNLP models" in reason and "no network" in reason
    assert isinstance(spice_scores([["a dog"]], ["a dog"], None), str)


@pytest.mark.java
@pytest.mark.skipif(not HAS_JAVA, reason="java is not on PATH")
def test_a_broken_spice_jar_gives_a_reason_not_a_crash(tmp_path: Path) -> None:
    jar = tmp_path / "spice-1.0.jar"
    jar.write_bytes(b"not a jar")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "stanford-corenlp-3.6.0-models.jar").write_bytes(b"")
    assert spice_unavailable_reason(jar) is None
    reason = spice_scores([["a dog runs"]], ["a dog"], jar, timeout=120)
    assert isinstance(reason, str) and reason.startswith("SPICE failed")
    scores = coco_caption_scores({1: ["a dog runs"]}, {1: "a dog"}, spice_jar=str(jar))
    assert "SPICE" not in scores and "CIDEr" in scores
