"""Bootstrap intervals, paired comparison and diversity figures."""

from __future__ import annotations

import numpy as np
import pytest

from mmtrain.metrics.bleu import BleuCounts, bleu_from_counts
from mmtrain.metrics.stats import ImageScores, bootstrap_ci, diversity, paired_bootstrap


def _system(seed: int, shift: float = 0.0, images: int = 400) -> ImageScores:
    rng = np.random.default_rng(seed)
    testlen = rng.integers(5, 15, images)
    guess = np.maximum(0, testlen[:, None] - np.arange(4))
    correct = np.minimum(guess, rng.binomial(guess, 0.4 + shift))
    counts = BleuCounts(testlen, testlen + rng.integers(-2, 3, images), guess, correct)
    cider = rng.gamma(2.0, 0.3, images) + shift
    return ImageScores(means={"CIDEr": cider}, bleu=counts)


def test_intervals_surround_the_corpus_scores_and_are_reproducible() -> None:
    scores = _system(0)
    ci = bootstrap_ci(scores, resamples=500, seed=7)
    counts = scores.bleu
    total = [np.asarray([part.sum(axis=0)]) for part in (counts.testlen, counts.reflen, counts.guess, counts.correct)]
    corpus_bleu = bleu_from_counts(*total)[0]
    for k in range(4):
        low, high = ci[f"Bleu_{k + 1}"]
        assert low < corpus_bleu[k] < high
    low, high = ci["CIDEr"]
    assert low < scores.means["CIDEr"].mean() < high
    assert 0.01 < high - low < 0.2  # about 2 * 1.96 * sd / sqrt(400)
    assert bootstrap_ci(scores, resamples=500, seed=7) == ci
    assert bootstrap_ci(scores, resamples=500, seed=8) != ci


def test_bleu_interval_is_recomputed_from_counts_not_averaged() -> None:
    # Two images: a perfect long caption and a hopeless short one. Corpus BLEU-1 pools the counts (10/12 correct);
    # the mean of per-image BLEU-1 would be about 0.5. Every resample's corpus BLEU-1 lies between 0 and 1 and
    # the interval reaches the all-perfect-image resample.
    counts = BleuCounts(
        np.array([10, 2]),
        np.array([10, 2]),
        np.array([[10, 9, 8, 7], [2, 1, 0, 0]]),
        np.array([[10, 9, 8, 7], [0, 0, 0, 0]]),
    )
    low, high = bootstrap_ci(ImageScores(bleu=counts), resamples=2000, seed=0)["Bleu_1"]
    assert high == pytest.approx(1.0, abs=1e-6)
    assert low == pytest.approx(0.0, abs=1e-6)


def test_paired_bootstrap_finds_a_real_difference_and_not_a_fake_one() -> None:
    better, worse = _system(0, shift=0.1), _system(0)
    result = paired_bootstrap(better, worse, resamples=500, seed=0)
    assert result["CIDEr"]["diff"] == pytest.approx(0.1)
    assert result["CIDEr"]["p_value"] < 0.01
    assert result["CIDEr"]["ci95"][0] > 0
    assert result["Bleu_1"]["diff"] > 0
    same = paired_bootstrap(worse, worse, resamples=200, seed=0)
    assert same["CIDEr"]["diff"] == 0.0
    assert same["CIDEr"]["p_value"] == 1.0
    noisy = paired_bootstrap(_system(1), _system(2), resamples=500, seed=0)
    assert noisy["CIDEr"]["p_value"] > 0.01  # two draws of the same distribution


def test_diversity_figures() -> None:
    captions = [["a", "dog", "runs"], ["a", "dog", "runs"], ["a", "cat"], ["two", "cats", "sleep"]]
    figures = diversity(captions)
    assert figures["unique_captions"] == 0.75
    assert figures["vocabulary"] == 7
    assert figures["distinct_1"] == pytest.approx(7 / 11)
    assert figures["distinct_2"] == pytest.approx(5 / 7)  # (a dog)x2, (dog runs)x2, (a cat), (two cats), (cats sleep)
    assert figures["mean_length"] == pytest.approx(11 / 4)
    assert diversity([])["unique_captions"] == 0.0
