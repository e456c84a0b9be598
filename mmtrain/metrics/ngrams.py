"""N-gram counting shared by BLEU and CIDEr-D: per sentence (a Counter) or for a whole corpus at once (arrays).

The corpus form gives every distinct n-gram an integer code and lists, per sentence, its n-grams with their counts,
so BLEU and CIDEr-D can be computed with a few numpy sorts and sums instead of millions of dictionary operations.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

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
        counts.update(zip(*(words[start:] for start in range(order)), strict=False))
    return counts


@dataclass(frozen=True)
class NGramTable:
    """The 1..n-grams of a list of sentences as flat arrays, one entry per (sentence, distinct n-gram).

    Attributes:
        sentence: Sentence index of each entry, shape (E,), sorted.
        code: N-gram code of each entry, shape (E,); codes are dense, 0..num_codes-1, grouped by order.
        order: N-gram order minus one (0 for unigrams) of each entry, shape (E,).
        count: Occurrences of the n-gram in the sentence, shape (E,).
        lengths: Tokens per sentence, shape (S,).
        n: Highest order.
        parent: For each code, the code of its prefix (its first n-1 words), -1 for unigrams, shape (G,).
        last_word: For each code, the vocabulary index of its last word, shape (G,).
        vocabulary: Words by index.
    """

    sentence: np.ndarray
    code: np.ndarray
    order: np.ndarray
    count: np.ndarray
    lengths: np.ndarray
    n: int
    parent: np.ndarray
    last_word: np.ndarray
    vocabulary: list[str]

    @property
    def num_codes(self) -> int:
        return len(self.parent)

    def grams(self, codes: np.ndarray) -> list[NGram]:
        """Decode n-gram codes back into word tuples."""
        decoded: dict[int, NGram] = {-1: ()}
        for code in sorted(set(int(c) for c in codes)):  # prefixes have smaller codes: decode them first
            chain = []
            while code not in decoded:
                chain.append(code)
                code = int(self.parent[code])
            for link in reversed(chain):
                decoded[link] = decoded[int(self.parent[link])] + (self.vocabulary[int(self.last_word[link])],)
        return [decoded[int(c)] for c in codes]


def _positions(sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Word index, sentence index and tokens-to-sentence-end of every token, sentence lengths, and the vocabulary."""
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__  # a new word gets the next index
    ids = np.asarray(list(map(vocab.__getitem__, chain.from_iterable(sentences))), dtype=np.int64)  # (T,)
    lengths = np.fromiter((len(words) for words in sentences), dtype=np.int64, count=len(sentences))
    token_sentence = np.repeat(np.arange(len(sentences), dtype=np.int64), lengths)  # (T,)
    ends = np.repeat(np.cumsum(lengths), lengths)
    remaining = ends - np.arange(len(ids), dtype=np.int64)  # (T,)
    return ids, token_sentence, remaining, lengths, list(vocab)


def build_table(sentences: Sequence[Sequence[str]], n: int = 4) -> NGramTable:
    """Count the 1..n-grams of every sentence (token lists) into an :class:`NGramTable`."""
    ids, token_sentence, remaining, lengths, vocabulary = _positions(sentences)
    width = max(len(vocabulary), 1)
    first_code, parents, last_words, entry_sentence, entry_code = [], [], [], [], []
    previous = np.full(len(ids), -1, dtype=np.int64)  # code of the (k-1)-gram starting at each position
    offset = 0
    for order in range(1, n + 1):
        valid = np.flatnonzero(remaining >= order)  # positions where an n-gram of this order starts
        last = ids[valid + order - 1]
        if order == 1:  # word indices are dense codes already
            unique, inverse = np.arange(len(vocabulary), dtype=np.int64), last
        else:
            unique, inverse = np.unique(previous[valid] * width + last, return_inverse=True)
        previous = np.full(len(ids), -1, dtype=np.int64)
        previous[valid] = inverse.reshape(-1) + offset
        parents.append(unique // width if order > 1 else np.full(len(unique), -1, np.int64))
        last_words.append(unique % width if order > 1 else unique)
        entry_sentence.append(token_sentence[valid])
        entry_code.append(previous[valid])
        first_code.append(offset)
        offset += len(unique)
    total = max(offset, 1)
    pairs, counts = np.unique(np.concatenate(entry_sentence) * total + np.concatenate(entry_code), return_counts=True)
    code = pairs % total
    return NGramTable(
        sentence=pairs // total,
        code=code,
        order=np.searchsorted(np.asarray(first_code), code, side="right") - 1,
        count=counts.astype(np.int64),
        lengths=lengths,
        n=n,
        parent=np.concatenate(parents),
        last_word=np.concatenate(last_words),
        vocabulary=vocabulary,
    )
