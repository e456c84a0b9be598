"""BLEU-1..4 exactly as coco-caption's ``bleu_scorer`` computes it.

Corpus BLEU sums the n-gram counts of all images first (clipped matches ``correct``, candidate n-grams ``guess``,
candidate length ``testlen``, and for each image the reference length closest to its candidate, ties to the shorter
one, ``reflen``) and then applies the brevity penalty once. coco-caption adds ``1e-15`` to every numerator and ``1e-9``
to every denominator so an empty count gives a tiny score instead of a division by zero; so do we. Per-image scores
are the same formula on one image's counts. Captions are tokenized strings split on whitespace, as coco-caption does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmtrain.metrics.ngrams import NGramTable, build_table

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


def closest_reference_length(testlen: np.ndarray, ref_lengths: np.ndarray, ref_image: np.ndarray) -> np.ndarray:
    """Per image, the reference length closest to the candidate length (ties to the shorter), shape (N,)."""
    diff = np.abs(ref_lengths - testlen[ref_image])
    order = np.lexsort((ref_lengths, diff, ref_image))
    _, first = np.unique(ref_image[order], return_index=True)
    return ref_lengths[order][first]


def counts_from_table(table: NGramTable, ref_image: np.ndarray) -> BleuCounts:
    """BLEU counts from a table whose first N sentences are the candidates and the rest references.

    Args:
        table: N-grams of the candidates (sentences 0..N-1) followed by all references.
        ref_image: For each reference sentence, the index of its image, shape (R,).

    Returns:
        Per-image counts.
    """
    n, num_codes = table.n, max(table.num_codes, 1)
    num_images = len(table.lengths) - len(ref_image)
    is_ref = table.sentence >= num_images
    ref_key = ref_image[table.sentence[is_ref] - num_images] * num_codes + table.code[is_ref]
    by_key = np.argsort(ref_key, kind="stable")  # nearly sorted already: image-major
    sorted_keys = ref_key[by_key]
    first = np.flatnonzero(np.diff(sorted_keys, prepend=-1) != 0)
    keys = sorted_keys[first]
    max_count = np.maximum.reduceat(table.count[is_ref][by_key], first) if len(keys) else np.zeros(0, np.int64)
    cand = ~is_ref
    cand_key = table.sentence[cand] * num_codes + table.code[cand]
    where = np.minimum(np.searchsorted(keys, cand_key), max(len(keys) - 1, 0))
    found = keys[where] == cand_key if len(keys) else np.zeros(len(cand_key), bool)
    matched = np.minimum(table.count[cand], np.where(found, max_count[where] if len(keys) else 0, 0))
    slots = table.sentence[cand] * n + table.order[cand]
    correct = np.bincount(slots, weights=matched, minlength=num_images * n).reshape(num_images, n)
    testlen = table.lengths[:num_images]
    guess = np.maximum(0, testlen[:, None] - np.arange(n))
    reflen = closest_reference_length(testlen, table.lengths[num_images:], ref_image)
    return BleuCounts(testlen, reflen, guess.astype(np.int64), np.rint(correct).astype(np.int64))


def bleu_counts(references: Sequence[Sequence[str]], candidates: Sequence[str], n: int = 4) -> BleuCounts:
    """BLEU counts for aligned lists of tokenized references and candidates."""
    table, ref_image = corpus_table(references, candidates, n)
    return counts_from_table(table, ref_image)


def corpus_table(
    references: Sequence[Sequence[str]], candidates: Sequence[str], n: int = 4
) -> tuple[NGramTable, np.ndarray]:
    """One n-gram table for candidates (first) and references, split on whitespace, plus each reference's image."""
    if len(references) != len(candidates):
        raise ValueError(f"{len(references)} reference lists but {len(candidates)} candidates")
    sentences = [c.split() for c in candidates] + [ref.split() for refs in references for ref in refs]
    ref_image = np.repeat(np.arange(len(references)), [len(refs) for refs in references]).astype(np.int64)
    return build_table(sentences, n), ref_image


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
