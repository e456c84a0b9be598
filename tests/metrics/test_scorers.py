"""BLEU, ROUGE-L and CIDEr-D: equal to pycocoevalcap's scorers, and right on cases small enough to check by hand."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mmtrain.metrics.bleu import bleu
from mmtrain.metrics.cider import CiderD, cider_d
from mmtrain.metrics.rouge import lcs_length, rouge_l

WORDS = "a the dog cat man woman sits on red bench near of with two plays ball".split()


def _corpus(seed: int, images: int = 150) -> tuple[list[list[str]], list[str]]:
    """Random tokenized captions with the awkward cases: empty and one-word candidates, copies, length ties."""
    rng = random.Random(seed)

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))

    references = [[sentence(1, 12) for _ in range(rng.randint(1, 6))] for _ in range(images)]
    candidates = [sentence(1, 12) for _ in range(images)]
    candidates[0] = ""
    candidates[1] = "dog"
    candidates[2] = references[2][0]
    references[3] = ["a b c d", "a b c d e f"]  # lengths 4 and 6 tie for a 5-word candidate: shorter wins
    candidates[3] = "a b c d e"
    return references, candidates


def _as_dicts(references: list[list[str]], candidates: list[str]) -> tuple[dict, dict]:
    return dict(enumerate(references)), {i: [c] for i, c in enumerate(candidates)}


@pytest.mark.parametrize("seed", [0, 1])
def test_bleu_equals_pycocoevalcap(pycocoevalcap_scorers, seed: int) -> None:
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer

    references, candidates = _corpus(seed)
    ours = bleu(references, candidates)
    theirs, theirs_per_image = pycocoevalcap_scorers[0](4).compute_score(*_as_dicts(references, candidates), verbose=0)
    np.testing.assert_allclose(ours.scores, theirs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.per_image, np.asarray(theirs_per_image).T, rtol=0, atol=1e-12)
    scorer = BleuScorer(n=4)
    for refs, candidate in zip(references, candidates, strict=True):
        scorer += (candidate, refs)
    scorer.compute_score(option="closest")
    totals = ours.counts.totals()
    assert (totals["testlen"], totals["reflen"]) == (scorer._testlen, scorer._reflen)
    assert totals["guess"] == [sum(c["guess"][k] for c in scorer.ctest) for k in range(4)]
    assert totals["correct"] == [sum(c["correct"][k] for c in scorer.ctest) for k in range(4)]


@pytest.mark.parametrize("seed", [0, 1])
def test_rouge_and_cider_equal_pycocoevalcap(pycocoevalcap_scorers, seed: int) -> None:
    _, rouge_cls, cider_cls = pycocoevalcap_scorers
    references, candidates = _corpus(seed)
    gts, res = _as_dicts(references, candidates)
    rouge, rouge_per_image = rouge_cls().compute_score(gts, res)
    ours_rouge = rouge_l(references, candidates)
    assert ours_rouge.score == pytest.approx(rouge, abs=1e-12)
    np.testing.assert_allclose(ours_rouge.per_image, rouge_per_image, rtol=0, atol=1e-12)
    cider, cider_per_image = cider_cls().compute_score(gts, res)
    ours_cider = cider_d(references, candidates)
    assert ours_cider.score == pytest.approx(cider, abs=1e-12)
    np.testing.assert_allclose(ours_cider.per_image, cider_per_image, rtol=0, atol=1e-12)
    # The reusable scorer (one pair at a time, dictionaries) agrees with the corpus path (arrays).
    scorer = CiderD.from_references(references)
    np.testing.assert_allclose(scorer.score_batch(candidates, references), cider_per_image, rtol=0, atol=1e-12)


@pytest.mark.realdata
def test_fakecap_tokenized_scores_equal_pycocoevalcap(pycocoevalcap_scorers, fakecap_tokenized) -> None:
    refs, results = fakecap_tokenized
    keys = list(refs)
    references, candidates = [refs[k] for k in keys], [results[k] for k in keys]
    ours = bleu(references, candidates)
    assert ours.counts.totals() == {
        "testlen": 9893,
        "reflen": 9855,
        "guess": [9893, 8893, 7893, 6893],
        "correct": [5732, 2510, 1043, 423],
    }
    gts, res = {k: refs[k] for k in keys}, {k: [results[k]] for k in keys}
    bleu_cls, rouge_cls, cider_cls = pycocoevalcap_scorers
    np.testing.assert_allclose(ours.scores, bleu_cls(4).compute_score(gts, res, verbose=0)[0], rtol=0, atol=1e-12)
    assert rouge_l(references, candidates).score == pytest.approx(rouge_cls().compute_score(gts, res)[0], abs=1e-12)
    assert cider_d(references, candidates).score == pytest.approx(cider_cls().compute_score(gts, res)[0], abs=1e-12)


def test_bleu_by_hand() -> None:
    exact = bleu([["a man rides a horse"]], ["a man rides a horse"])
    assert exact.scores == pytest.approx([1.0] * 4, abs=1e-6)
    short = bleu([["a b c d"]], ["a b"])  # every n-gram matches, but brevity: exp(1 - 4/2)
    assert short.scores[0] == pytest.approx(math.exp(-1), rel=1e-6)
    assert short.scores[1] == pytest.approx(math.exp(-1), rel=1e-6)
    unrelated = bleu([["a b c d"]], ["x y z w"])
    assert unrelated.scores[0] < 1e-6
    # Closest reference length, ties to the shorter one.
    assert bleu([["a b c d", "a b c d e f"]], ["a b c d e"]).counts.totals()["reflen"] == 4


def test_rouge_by_hand() -> None:
    # LCS("a b c d", "a c d e") = 3; P = 3/4, R = 3/4, so F = 0.75 for any beta.
    assert rouge_l([["a c d e"]], ["a b c d"]).score == pytest.approx(0.75)
    # Best precision and best recall are taken over references separately.
    score = rouge_l([["a b", "a b c d e f g h"]], ["a b c d"]).score
    precision, recall, beta = 1.0, 1.0, 1.2
    assert score == pytest.approx((1 + beta**2) * precision * recall / (recall + beta**2 * precision))


def test_lcs_equals_dynamic_programming() -> None:
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                same = table[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else 0
                table[i][j] = max(same, table[i - 1][j], table[i][j - 1])
        assert lcs_length(a, b) == table[-1][-1]


def test_cider_with_document_frequency_from_another_corpus() -> None:
    training = [["a dog runs on grass", "a brown dog"], ["a cat sleeps"], ["a cat runs"], ["two dogs play"]]
    scorer = CiderD.from_references(training)
    # Only n-grams in two or more documents are stored: the rest weigh the same as unseen ones.
    assert scorer.frequency == {("a",): 3.0, ("a", "cat"): 2.0, ("cat",): 2.0, ("runs",): 2.0}  # "dogs" is not "dog"
    references, candidates = [["a dog runs"], ["a cat is asleep"]], ["a dog runs", "a cat sleeps"]
    with_training_df = cider_d(references, candidates, scorer=scorer)
    np.testing.assert_allclose(with_training_df.per_image, scorer.score_batch(candidates, references), atol=1e-12)
    assert with_training_df.per_image[0] > 0
    assert with_training_df.score != pytest.approx(cider_d(references, candidates).score)


def test_cider_of_a_caption_against_its_own_copy() -> None:
    # Same length, same n-grams: each order's cosine is 1, so the score is 10 * mean over orders. A three-word
    # caption has no 4-grams, so its 4-gram cosine is 0 and it scores 10 * 3/4.
    references = [["a red bus parked"], ["green grass field"], ["old brick house"]]
    result = cider_d(references, ["a red bus parked", "green grass field", "old brick house"])
    np.testing.assert_allclose(result.per_image, [10.0, 7.5, 7.5])


def test_docstring_examples() -> None:
    import doctest

    from mmtrain.metrics import cider, scores

    for module in (cider, scores):
        failed, attempted = doctest.testmod(module)
        assert attempted > 0 and failed == 0, module.__name__
