"""ROUGE-L exactly as coco-caption computes it.

Per image: the longest common subsequence (LCS) of the candidate with each reference gives a precision and a recall;
the best precision and the best recall over the references (each on its own) combine into an F-measure with
``beta = 1.2``; the corpus score is the mean over images. Captions are split on single spaces, as coco-caption does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class CorpusScore(NamedTuple):
    """A corpus score and the per-image scores it averages."""

    score: float
    per_image: np.ndarray


def _position_masks(words: Sequence[str]) -> dict[str, int]:
    """For each distinct token, a bit mask of where it occurs."""
    masks: dict[str, int] = {}
    for position, word in enumerate(words):
        masks[word] = masks.get(word, 0) | (1 << position)
    return masks


def _lcs_with_masks(masks: dict[str, int], length: int, other: Sequence[str]) -> int:
    """LCS length by the bit-parallel algorithm (Hyyrö 2004): O(len(other)) big-integer steps."""
    full = (1 << length) - 1
    row = full
    for word in other:
        matches = row & masks.get(word, 0)
        row = (row + matches) | (row - matches)
    return length - (row & full).bit_count()


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences."""
    return _lcs_with_masks(_position_masks(first), len(first), second)


def rouge_l_image(candidate: str, references: Sequence[str], beta: float = 1.2) -> float:
    """ROUGE-L of one tokenized candidate against its tokenized references."""
    words = candidate.split(" ")
    masks = _position_masks(words)
    best_precision = best_recall = 0.0
    for reference in references:
        ref_words = reference.split(" ")
        lcs = _lcs_with_masks(masks, len(words), ref_words)
        best_precision = max(best_precision, lcs / float(len(words)))
        best_recall = max(best_recall, lcs / float(len(ref_words)))
    if best_precision == 0 or best_recall == 0:
        return 0.0
    return ((1 + beta**2) * best_precision * best_recall) / float(best_recall + beta**2 * best_precision)


def rouge_l(references: Sequence[Sequence[str]], candidates: Sequence[str], beta: float = 1.2) -> CorpusScore:
    """ROUGE-L of tokenized candidates against tokenized references, as coco-caption's ``Rouge()``.

    Args:
        references: Per image, its tokenized reference captions (space-joined strings).
        candidates: Per image, its tokenized candidate caption, aligned with ``references``.
        beta: Weight of recall against precision.

    Returns:
        The mean over images and the per-image scores.
    """
    scores = [rouge_l_image(c, refs, beta) for refs, c in zip(references, candidates, strict=True)]
    per_image = np.asarray(scores, dtype=np.float64)
    return CorpusScore(float(np.mean(per_image)) if len(per_image) else 0.0, per_image)
