"""N-gram counting shared by BLEU and CIDEr-D."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

NGram = tuple[str, ...]


def ngram_counts(words: Sequence[str], n: int = 4) -> Counter[NGram]:
    """Count every 1..n-gram of a token sequence.

    Args:
        words: Tokens of one sentence.
        n: Longest n-gram to count.

    Returns:
        Counts keyed by n-gram tuples (a unigram is a 1-tuple), all orders in one counter.
    """
    counts: Counter[NGram] = Counter()
    for order in range(1, n + 1):
        counts.update(zip(*(words[start:] for start in range(order))))
    return counts
