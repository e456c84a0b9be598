"""METEOR 1.5 scores from alignments, as the jar computes them with pycocoevalcap's ``-l en -norm``.

Each hypothesis is aligned to every reference and keeps the statistics of its best-scoring reference (the first on a
tie). The statistics of all images are then summed and scored once: that corpus score is what pycocoevalcap reports,
and it is not the mean of the per-image scores. English parameters of the jar's default (ranking) task: alpha 0.85,
beta 0.20, gamma 0.60, delta 0.75; module weights exact 1.0, stem 0.6, synonym 0.8, paraphrase 0.6.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
WEIGHTS = (1.0, 0.6, 0.8, 0.6)
# Columns of a statistics row, in the jar's order.
TEST_LEN, REF_LEN, TEST_FUNC, REF_FUNC = 0, 1, 2, 3
STAGE = 4  # then per module: test content, ref content, test function, ref function
CHUNKS, TEST_WORDS, REF_WORDS = 20, 21, 22
N_STATS = 23


def nothing_to_score(references: Sequence[Sequence[str]], candidates: Sequence[str]) -> bool:
    """Check that there is one list of references per candidate; True when there are no candidates at all."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference lists but {len(candidates)} candidates")
    return not candidates


def stats_row(alignment, n1: int, n2: int, function1: int, function2: int) -> list[float]:
    """The 23 statistics the jar prints for one hypothesis-reference alignment."""
    a = alignment
    per_module = [x for module in zip(a.content1, a.content2, a.function1, a.function2, strict=True) for x in module]
    tests, refs = sum(a.content1) + sum(a.function1), sum(a.content2) + sum(a.function2)
    return [float(n1), float(n2), float(function1), float(function2), *per_module, a.chunks, tests, refs]


def scores_from_stats(stats: np.ndarray) -> np.ndarray:
    """METEOR of each statistics row, shape (N,): the jar's computeMetrics, vectorized in the same order."""
    stats = np.atleast_2d(np.asarray(stats, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        test_len = DELTA * (stats[:, TEST_LEN] - stats[:, TEST_FUNC]) + (1.0 - DELTA) * stats[:, TEST_FUNC]
        ref_len = DELTA * (stats[:, REF_LEN] - stats[:, REF_FUNC]) + (1.0 - DELTA) * stats[:, REF_FUNC]
        test_matched = np.zeros(len(stats))
        ref_matched = np.zeros(len(stats))
        for module, weight in enumerate(WEIGHTS):
            test_matched = test_matched + stats[:, STAGE + 4 * module] * weight * DELTA
        for module, weight in enumerate(WEIGHTS):
            ref_matched = ref_matched + stats[:, STAGE + 4 * module + 1] * weight * DELTA
        for module, weight in enumerate(WEIGHTS):
            test_matched = test_matched + stats[:, STAGE + 4 * module + 2] * weight * (1.0 - DELTA)
        for module, weight in enumerate(WEIGHTS):
            ref_matched = ref_matched + stats[:, STAGE + 4 * module + 3] * weight * (1.0 - DELTA)
        precision = test_matched / test_len
        recall = ref_matched / ref_len
        f_mean = 1.0 / (((1.0 - ALPHA) / precision) + (ALPHA / recall))
        test_total = stats[:, STAGE : STAGE + 16 : 4].sum(1) + stats[:, STAGE + 2 : STAGE + 16 : 4].sum(1)
        ref_total = stats[:, STAGE + 1 : STAGE + 16 : 4].sum(1) + stats[:, STAGE + 3 : STAGE + 16 : 4].sum(1)
        perfect = (test_total == stats[:, TEST_LEN]) & (ref_total == stats[:, REF_LEN]) & (stats[:, CHUNKS] == 1)
        frag = np.where(perfect, 0.0, stats[:, CHUNKS] / ((stats[:, TEST_WORDS] + stats[:, REF_WORDS]) / 2))
        score = f_mean * (1.0 - GAMMA * np.power(frag, BETA))
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


def summable(stats: np.ndarray) -> np.ndarray:
    """The images' statistics as the jar adds them: a hypothesis equal to its reference brings no chunk."""
    stats = np.array(stats, dtype=np.float64).reshape(-1, N_STATS)
    test_total = stats[:, STAGE : STAGE + 16 : 2].sum(1)
    ref_total = stats[:, STAGE + 1 : STAGE + 16 : 2].sum(1)
    perfect = (test_total == stats[:, TEST_LEN]) & (ref_total == stats[:, REF_LEN]) & (stats[:, CHUNKS] == 1)
    stats[perfect, CHUNKS] = 0.0
    return stats


def corpus_stats(stats: np.ndarray) -> np.ndarray:
    """The sum of the images' statistics (see :func:`summable`)."""
    return summable(stats).sum(0)


def corpus_score(stats: np.ndarray) -> float:
    """The corpus METEOR pycocoevalcap reports: one score of the summed statistics."""
    return float(scores_from_stats(corpus_stats(stats))[0])
