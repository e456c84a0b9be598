"""The Python METEOR: equal to the jar (tests marked java), and its behaviour on a small table built here."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mmtrain.errors import UserError
from mmtrain.metrics.meteor import find_meteor_jar
from mmtrain.metrics.meteor.native import NativeMeteor
from mmtrain.metrics.scores import meteor_backend

ROOT = Path(__file__).resolve().parents[2]
KARPATHY = ROOT.parent / "shared" / "data" / "coco_karpathy_examples"
HAS_JAVA = shutil.which("java") is not None


def _small_jar(folder: Path) -> Path:
    """A jar with the four word lists METEOR reads, and a three-pair paraphrase table beside it."""
    jar = folder / "meteor-1.5.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("function/english.words", "a\nthe\nof\non\n")
        archive.writestr("nonbreaking/english.prefixes", "Mr\nNo #NUMERIC_ONLY#\n")
        archive.writestr("synonym/english.synsets", "sofa\n7\ncouch\n7 9\nchild\n3\n")
        archive.writestr("synonym/english.exceptions", "child\nchildren\n")
    (folder / "data").mkdir()
    pairs = ["0.5", "next to", "beside", "0.5", "motorbike", "motor cycle", "0.2", "on top of", "on"]
    with gzip.open(folder / "data" / "paraphrase-en.gz", "wt", encoding="utf-8") as stream:
        stream.write("\n".join(pairs) + "\n")
    return jar


@pytest.fixture
def small(tmp_path: Path, monkeypatch) -> NativeMeteor:
    monkeypatch.setenv("MMTRAIN_CACHE", str(tmp_path / "cache"))
    return NativeMeteor(_small_jar(tmp_path))


def _one(scorer: NativeMeteor, hypothesis: str, *references: str) -> float:
    return float(scorer.score([list(references)], [hypothesis])[1][0])


def test_identical_is_one_and_unrelated_is_zero(small: NativeMeteor) -> None:
    assert _one(small, "a dog runs on the grass", "a dog runs on the grass") == 1.0
    assert _one(small, "zebra", "a red car") == 0.0


def test_normalization_makes_case_and_punctuation_alike(small: NativeMeteor) -> None:
    assert _one(small, "A dog, running.", "a dog , running .") == 1.0
    assert _one(small, "Mr. Smith's dog", "mr. smith's dog") == 1.0


def test_each_module_earns_credit_in_the_jars_order_of_weights(small: NativeMeteor) -> None:
    exact = _one(small, "a child on a couch", "a child on a couch near it")
    stem = _one(small, "a children on a couches", "a child on a couch near it")  # inflections: stem module
    synonym = _one(small, "a child on a sofa", "a child on a couch near it")  # shared synset 7
    nothing = _one(small, "a child on a table", "a child on a couch near it")
    assert exact > synonym > nothing and exact > stem > nothing
    paraphrase = _one(small, "a dog beside a motorbike", "a dog next to a motor cycle")
    assert paraphrase > _one(small, "a dog under a bicycle", "a dog next to a motor cycle")


def test_best_reference_counts_and_corpus_is_not_the_mean(small: NativeMeteor) -> None:
    corpus, per_image = small.score([["a cat", "a dog on the grass"], ["a red car"]], ["a dog on grass", "a car"])
    alone = _one(small, "a dog on grass", "a dog on the grass")
    assert per_image[0] == pytest.approx(alone, abs=1e-12)
    assert 0 < corpus < 1 and abs(corpus - per_image.mean()) > 1e-3


def test_the_table_is_read_once_then_cached(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMTRAIN_CACHE", str(tmp_path / "cache"))
    jar = _small_jar(tmp_path)
    first = _one(NativeMeteor(jar), "a dog beside a car", "a dog next to a car")
    assert any((tmp_path / "cache" / "meteor").glob("paraphrase-*/ids.npy"))
    assert _one(NativeMeteor(jar), "a dog beside a car", "a dog next to a car") == first


def test_meteor_choice_names_what_is_missing(monkeypatch) -> None:
    from mmtrain.metrics import scores

    monkeypatch.setattr(scores, "resources_unavailable_reason", lambda: "needs pycocoevalcap's data")
    monkeypatch.setattr(scores, "meteor_unavailable_reason", lambda: "needs Java")
    assert meteor_backend("auto") == (None, "needs pycocoevalcap's data")
    assert meteor_backend(False)[0] is None
    with pytest.raises(UserError, match="meteor=python needs pycocoevalcap's data"):
        meteor_backend("python")
    with pytest.raises(UserError, match="meteor=java needs Java"):
        meteor_backend("java")
    with pytest.raises(UserError, match="expected one of python, java, auto, false"):
        meteor_backend("fast")
    monkeypatch.setattr(scores, "meteor_unavailable_reason", lambda: None)
    assert meteor_backend("auto") == ("java", None)


def _jar_scores(references: list[list[str]], candidates: list[str]) -> tuple[float, np.ndarray]:
    from pycocoevalcap.meteor.meteor import Meteor

    keys = list(range(len(candidates)))
    corpus, per_image = Meteor().compute_score({k: references[k] for k in keys}, {k: [candidates[k]] for k in keys})
    return corpus, np.asarray(per_image, dtype=float)


def _agreement(references: list[list[str]], candidates: list[str]) -> tuple[float, float, float]:
    ours, ours_per = NativeMeteor().score(references, candidates)
    jar, jar_per = _jar_scores(references, candidates)
    return abs(ours - jar), float(np.mean(np.abs(ours_per - jar_per) <= 1e-6)), jar


def needs_jar(test):
    """Marks of a comparison with the jar: java, slow, realdata, skipped without Java or the jar."""
    skip = pytest.mark.skipif(not HAS_JAVA or find_meteor_jar() is None, reason="needs java and pycocoevalcap's jar")
    return pytest.mark.java(pytest.mark.slow(pytest.mark.realdata(skip(test))))


@needs_jar
def test_equal_to_the_jar_on_coco_fakecap_1000(fakecap_tokenized) -> None:
    refs, results = fakecap_tokenized
    keys = sorted(refs)
    difference, share, jar = _agreement([refs[k] for k in keys], [results[k] for k in keys])
    assert round(jar, 3) == 0.195  # the published score
    assert difference <= 1e-4 and share >= 0.99


@needs_jar
def test_equal_to_the_jar_on_the_karpathy_examples() -> None:
    if not KARPATHY.is_dir():
        pytest.skip(f"real data not found at {KARPATHY} (needs ../shared/data beside the project root)")
    from mmtrain.metrics.tokenize import tokenize_corpus

    captions = json.loads((KARPATHY / "captions_karpathy_test_subset.json").read_text())
    by_image: dict[int, list[str]] = {}
    for annotation in captions["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation["caption"])
    for name in ("magic", "clipcap_readme", "coco-caption_fakecap", "thumb"):
        predictions = json.loads((KARPATHY / f"predictions_{name}.json").read_text())
        gts = tokenize_corpus({p["image_id"]: by_image[p["image_id"]] for p in predictions})
        res = tokenize_corpus({n: [p["caption"]] for n, p in enumerate(predictions)})  # THumB: 5 systems an image
        references = [gts[p["image_id"]] for p in predictions]
        difference, share, _ = _agreement(references, [res[n][0] for n in range(len(predictions))])
        assert difference <= 1e-4 and share >= 0.99, name


def test_the_bootstrap_recomputes_corpus_meteor_from_statistics(small: NativeMeteor) -> None:
    from mmtrain.metrics.meteor.scorer import summable
    from mmtrain.metrics.stats import ImageScores, bootstrap_ci

    references = [["a dog on the grass"], ["a red car"], ["a child on a couch"], ["a cat"]]
    candidates = ["a dog on grass", "a red car", "a sofa with a child", "a black cat sleeping"]
    corpus, per_image, stats = small.score_with_stats(references, candidates)
    scores = ImageScores(meteor=summable(stats))
    _, matrix = scores.columns()
    everything_once = scores.metrics_from_sums(matrix.sum(0, keepdims=True), np.array([4.0]))
    assert everything_once["METEOR"][0] == pytest.approx(corpus, abs=1e-12)
    assert abs(corpus - per_image.mean()) > 1e-3  # a mean of per-image scores would be another number
    low, high = bootstrap_ci(scores, resamples=300, seed=0)["METEOR"]
    assert low <= corpus <= high


def test_forked_workers_give_the_same_statistics(small: NativeMeteor) -> None:
    pool = ["a dog beside a motorbike", "a child on a sofa", "the red car", "a cat on top of a mat"]
    references = [[pool[i % 4], pool[(i + 1) % 4]] for i in range(2000)]  # 2,000 images: enough to fork
    candidates = [pool[(i * 3) % 4] + (" now" if i % 7 == 0 else "") for i in range(2000)]
    single = NativeMeteor(small.jar, workers=1).score_with_stats(references, candidates)
    forked = NativeMeteor(small.jar, workers=2).score_with_stats(references, candidates)
    assert single[0] == forked[0] and np.array_equal(single[2], forked[2])
