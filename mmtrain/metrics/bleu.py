"""BLEU-1..4 exactly as coco-caption's ``bleu_scorer`` computes it.

Corpus BLEU sums the n-gram counts of all images first (clipped matches ``correct``, candidate n-grams ``guess``,
candidate length ``testlen``, and for each image the reference length closest to its candidate, ties to the shorter
one, ``reflen``) and then applies the brevity penalty once. coco-caption adds ``1e-15`` to every numerator and ``1e-9``
to every denominator so an empty count gives a tiny score instead of a division by zero; so do we. Per-image scores
are the same formula on one image's counts. Captions are tokenized strings split on whitespace, as coco-caption does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmtrain.metrics.ngrams import NGram, ngram_counts

_TINY = 1e-15  # added to numerators
_SMALL = 1e-9  # added to denominators


@dataclass(frozen=True)
class BleuCounts:
    """Per-image BLEU sufficient statistics: any subset's corpus BLEU follows from their sums (see :func:`bleu_from_counts`).

    Attributes:
        testlen: Candidate length per image, shape (N,).
        reflen: Closest reference length per image, shape (N,).
        guess: Candidate n-grams per order, shape (N, n).
        correct: Clipped n-gram matches per order, shape (N, n).
    """

    testlen: np.ndarray
    reflen: np.ndarray
    guess: np.ndarray
    correct: np.ndarray

    def totals(self) -> dict[str, int | list[int]]:
        """Corpus totals in coco-caption's naming (``testlen``, ``reflen``, ``guess``, ``correct``)."""
        return {
            "testlen": int(self.testlen.sum()),
            "reflen": int(self.reflen.sum()),
            "guess": [int(v) for v in self.guess.sum(axis=0)],
            "correct": [int(v) for v in self.correct.sum(axis=0)],
        }


@dataclass(frozen=True)
class BleuResult:
    """Corpus BLEU-1..n, per-image BLEU (N, n) and the counts behind them."""

    scores: list[float]
    per_image: np.ndarray
    counts: BleuCounts


def bleu_from_counts(testlen: np.ndarray, reflen: np.ndarray, guess: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """BLEU-1..n for rows of counts: one row per image, or per corpus (summed counts, e.g. bootstrap resamples).

    Args:
        testlen: Candidate lengths, shape (M,).
        reflen: Effective reference lengths, shape (M,).
        guess: Candidate n-gram counts, shape (M, n).
        correct: Clipped matches, shape (M, n).

    Returns:
        Scores, shape (M, n); column k is BLEU-(k+1).
    """
    precisions = (correct.astype(np.float64) + _TINY) / (guess.astype(np.float64) + _SMALL)  # (M, n)
    orders = np.arange(1, precisions.shape[1] + 1, dtype=np.float64)
    scores = np.cumprod(precisions, axis=1) ** (1.0 / orders)  # geometric mean of p_1..p_k
    ratio = (testlen.astype(np.float64) + _TINY) / (reflen.astype(np.float64) + _SMALL)  # (M,)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * penalty[:, None]


def image_counts(
    candidate: Counter[NGram], length: int, references: Sequence[tuple[Counter[NGram], int]], n: int = 4
) -> tuple[int, int, list[int], list[int]]:
    """BLEU counts of one image from pre-counted n-grams: (testlen, reflen, guess, correct)."""
    max_counts: dict[NGram, int] = {}
    for counts, _ in references:
        for gram, count in counts.items():
            if count > max_counts.get(gram, 0):
                max_counts[gram] = count
    reflen = min((abs(ref_len - length), ref_len) for _, ref_len in references)[1]
    correct = [0] * n
    for gram, count in candidate.items():
        clip = max_counts.get(gram)
        if clip:
            correct[len(gram) - 1] += min(count, clip)
    guess = [max(0, length - order) for order in range(n)]
    return length, reflen, guess, correct


def bleu_counts(references: Sequence[Sequence[str]], candidates: Sequence[str], n: int = 4) -> BleuCounts:
    """BLEU counts for aligned lists of tokenized references and candidates."""
    rows = []
    for refs, candidate in zip(references, candidates, strict=True):
        words = candidate.split()
        cooked = [(ngram_counts(ref_words, n), len(ref_words)) for ref_words in (ref.split() for ref in refs)]
        rows.append(image_counts(ngram_counts(words, n), len(words), cooked, n))
    return counts_from_rows(rows, n)


def counts_from_rows(rows: Sequence[tuple[int, int, list[int], list[int]]], n: int = 4) -> BleuCounts:
    """Stack :func:`image_counts` rows into :class:`BleuCounts`."""
    if not rows:
        empty = np.zeros((0, n), dtype=np.int64)
        return BleuCounts(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty.copy())
    testlen, reflen, guess, correct = zip(*rows)
    return BleuCounts(
        np.asarray(testlen, dtype=np.int64),
        np.asarray(reflen, dtype=np.int64),
        np.asarray(guess, dtype=np.int64).reshape(-1, n),
        np.asarray(correct, dtype=np.int64).reshape(-1, n),
    )


def corpus_bleu(counts: BleuCounts) -> list[float]:
    """Corpus BLEU-1..n from per-image counts."""
    totals = [np.asarray([part.sum(axis=0)]) for part in (counts.testlen, counts.reflen, counts.guess, counts.correct)]
    return [float(v) for v in bleu_from_counts(totals[0], totals[1], totals[2], totals[3])[0]]


def bleu(references: Sequence[Sequence[str]], candidates: Sequence[str], n: int = 4) -> BleuResult:
    """BLEU-1..n of tokenized candidates against tokenized references, as coco-caption's ``Bleu(n)``.

    Args:
        references: Per image, its tokenized reference captions (space-joined strings).
        candidates: Per image, its tokenized candidate caption, aligned with ``references``.
        n: Highest n-gram order.

    Returns:
        Corpus scores, per-image scores and the counts.
    """
    counts = bleu_counts(references, candidates, n)
    per_image = bleu_from_counts(counts.testlen, counts.reflen, counts.guess, counts.correct)
    return BleuResult(corpus_bleu(counts), per_image, counts)
