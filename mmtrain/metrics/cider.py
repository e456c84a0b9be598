"""CIDEr-D exactly as coco-caption computes it, and a reusable scorer for self-critical training rewards.

Each sentence becomes one TF-IDF vector per n-gram order (1..4), weighting an n-gram by ``tf * (log(D) - log(max(1,
df)))`` where ``D`` is the number of documents (images) and ``df`` how many of them have the n-gram in a reference.
The similarity of a candidate to a reference, per order, is the clipped cosine ``sum(min(c, r) * r) / (|c| |r|)``
times a length penalty ``exp(-(len_c - len_r)^2 / (2 sigma^2))`` with ``sigma = 6`` (lengths counted as coco-caption
does, in bigrams). An image's score is the mean over orders and references, times 10; the corpus score is the mean over
images. coco-caption takes ``df`` from the references being evaluated; :class:`CiderD` holds ``df`` from any corpus
(training references for SCST) and scores any number of (candidate, references) pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mmtrain.errors import UserError
from mmtrain.metrics.bleu import corpus_table
from mmtrain.metrics.ngrams import NGram, NGramTable, build_table, ngram_counts
from mmtrain.metrics.rouge import CorpusScore

_Vector = tuple[dict[NGram, float], list[float], int]  # weights, norm per order, length (bigram count)


class CiderD:
    """CIDEr-D with a fixed document frequency: build once, score many candidates.

    Args:
        frequency: Document frequency of n-grams. Entries below 2 may be left out: ``max(1, df)`` makes them
            weigh the same as unseen n-grams.
        num_documents: How many documents (images) ``frequency`` was counted over.
        n: Highest n-gram order.
        sigma: Width of the Gaussian length penalty.
        cache_size: How many reference sets to keep as ready vectors (training references are scored again and
            again).

    Example:
        >>> scorer = CiderD.from_references([["a dog runs", "a brown dog"], ["a cat sleeps"], ["a cat runs"]])
        >>> round(scorer.score("a dog runs", ["a dog runs", "a brown dog"]), 4)
        4.5792
    """

    def __init__(
        self,
        frequency: Mapping[NGram, float],
        num_documents: int,
        *,
        n: int = 4,
        sigma: float = 6.0,
        cache_size: int = 50_000,
    ) -> None:
        if num_documents < 1:
            raise UserError("CIDEr-D needs at least one reference document to count n-gram document frequencies")
        if frequency and max(frequency.values()) > num_documents:
            raise UserError(f"CIDEr-D document frequency exceeds the number of documents ({num_documents})")
        self.n, self.sigma, self.num_documents = n, sigma, num_documents
        self.frequency = frequency
        self._log_documents = float(np.log(float(num_documents)))
        self._cache: dict[tuple[str, ...], list[_Vector]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_references(cls, references: Iterable[Sequence[str]], *, n: int = 4, sigma: float = 6.0) -> CiderD:
        """Build from tokenized references, one sequence of captions per image (one document per image)."""
        references = list(references)
        sentences = [ref.split() for refs in references for ref in refs]
        ref_image = np.repeat(np.arange(len(references)), [len(refs) for refs in references]).astype(np.int64)
        table = build_table(sentences, n)
        frequency = _document_frequency(table, ref_image[table.sentence])
        keep = np.flatnonzero(frequency >= 2)
        grams = table.grams(keep)
        return cls(
            dict(zip(grams, frequency[keep].astype(float).tolist(), strict=True)), len(references), n=n, sigma=sigma
        )

    def vector(self, counts: Counter[NGram]) -> _Vector:
        """TF-IDF weights of a counted sentence, their norm per order, and its length in bigrams."""
        weights: dict[NGram, float] = {}
        squares = [0.0] * self.n
        length = 0
        log_documents, frequency = self._log_documents, self.frequency
        for gram, term_frequency in counts.items():
            order = len(gram) - 1
            df = frequency.get(gram, 0.0)
            value = weights[gram] = float(term_frequency) * (log_documents - (math.log(df) if df > 1 else 0.0))
            squares[order] += value * value
            if order == 1:
                length += term_frequency
        return weights, [math.sqrt(s) for s in squares], length

    def similarity(self, candidate: _Vector, reference: _Vector) -> list[float]:
        """Clipped cosine similarity per order, times the length penalty."""
        weights, norms, length = candidate
        ref_weights, ref_norms, ref_length = reference
        values = [0.0] * self.n
        for gram, value in weights.items():
            ref_value = ref_weights.get(gram)
            if ref_value is not None:
                values[len(gram) - 1] += min(value, ref_value) * ref_value
        delta = float(length - ref_length)
        penalty = math.e ** (-(delta**2) / (2 * self.sigma**2))
        for order in range(self.n):
            if norms[order] != 0 and ref_norms[order] != 0:
                values[order] /= norms[order] * ref_norms[order]
            values[order] *= penalty
        return values

    def _reference_vectors(self, references: Sequence[str]) -> list[_Vector]:
        key = tuple(references)
        vectors = self._cache.get(key)
        if vectors is None:
            vectors = [self.vector(ngram_counts(ref.split(), self.n)) for ref in references]
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))  # forget the oldest
            self._cache[key] = vectors
        return vectors

    def score(self, candidate: str, references: Sequence[str]) -> float:
        """CIDEr-D of one tokenized candidate against its tokenized references."""
        if not references:
            raise UserError("CIDEr-D needs at least one reference caption per candidate")
        vector = self.vector(ngram_counts(candidate.split(), self.n))
        totals = [0.0] * self.n
        for reference in self._reference_vectors(references):
            for order, value in enumerate(self.similarity(vector, reference)):
                totals[order] += value
        return sum(totals) / self.n / len(references) * 10.0

    def score_batch(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """CIDEr-D of each candidate against its own references (aligned sequences), shape (len(candidates),)."""
        return np.asarray([self.score(c, refs) for c, refs in zip(candidates, references, strict=True)])


def _document_frequency(
    table: NGramTable, entry_image: np.ndarray, entries: np.ndarray | slice = slice(None)
) -> np.ndarray:
    """Per n-gram code, in how many images' references it occurs; ``entry_image`` is the image of each selected entry."""
    num_codes = max(table.num_codes, 1)
    documents = np.sort(entry_image * num_codes + table.code[entries])
    documents = documents[np.diff(documents, prepend=-1) != 0]  # distinct (image, n-gram) pairs
    return np.bincount(documents % num_codes, minlength=table.num_codes)


def cider_from_table(
    table: NGramTable, ref_image: np.ndarray, *, sigma: float = 6.0, scorer: CiderD | None = None
) -> CorpusScore:
    """CIDEr-D from a table whose first N sentences are the candidates and the rest references (see bleu)."""
    n, num_codes = table.n, max(table.num_codes, 1)
    num_images = len(table.lengths) - len(ref_image)
    is_ref = table.sentence >= num_images
    ref_sentence = table.sentence[is_ref] - num_images
    if scorer is None:
        frequency = _document_frequency(table, ref_image[ref_sentence], is_ref).astype(np.float64)
        num_documents = num_images
    else:
        frequency = np.asarray([scorer.frequency.get(g, 0.0) for g in table.grams(np.arange(table.num_codes))])
        num_documents, sigma = scorer.num_documents, scorer.sigma
    idf = np.log(float(num_documents)) - np.log(np.maximum(1.0, frequency))  # (G,)
    weight = table.count * idf[table.code]  # (E,)
    norms = np.sqrt(np.bincount(table.sentence * n + table.order, weights=weight**2, minlength=len(table.lengths) * n))
    norms = norms.reshape(-1, n)  # (S, n)
    cand = ~is_ref
    cand_key = table.sentence[cand] * num_codes + table.code[cand]  # sorted: entries are sentence-major
    ref_key = ref_image[ref_sentence] * num_codes + table.code[is_ref]
    where = np.minimum(np.searchsorted(cand_key, ref_key), max(len(cand_key) - 1, 0))
    found = cand_key[where] == ref_key if len(cand_key) else np.zeros(len(ref_key), bool)
    ref_weight = weight[is_ref]
    clipped = np.where(found, np.minimum(weight[cand][where] if len(cand_key) else 0.0, ref_weight) * ref_weight, 0.0)
    num_refs = len(ref_image)
    dots = np.bincount(ref_sentence * n + table.order[is_ref], weights=clipped, minlength=num_refs * n).astype(float)
    dots = dots.reshape(num_refs, n)  # (R, n)
    denominator = norms[ref_image] * norms[num_images:]
    dots = np.divide(dots, denominator, out=dots.copy(), where=denominator != 0)
    bigrams = np.maximum(table.lengths - 1, 0).astype(np.float64)
    delta = bigrams[ref_image] - bigrams[num_images:]
    sims = dots * (math.e ** (-(delta**2) / (2 * sigma**2)))[:, None]  # (R, n)
    per_order = np.zeros((num_images, n))
    np.add.at(per_order, ref_image, sims)
    per_image = per_order.mean(axis=1) / np.bincount(ref_image, minlength=num_images) * 10.0
    return CorpusScore(float(np.mean(per_image)) if num_images else 0.0, per_image)


def cider_d(
    references: Sequence[Sequence[str]],
    candidates: Sequence[str],
    *,
    n: int = 4,
    sigma: float = 6.0,
    scorer: CiderD | None = None,
) -> CorpusScore:
    """CIDEr-D of tokenized candidates against tokenized references, as coco-caption's ``Cider()``.

    Args:
        references: Per image, its tokenized reference captions (space-joined strings).
        candidates: Per image, its tokenized candidate caption, aligned with ``references``.
        n: Highest n-gram order.
        sigma: Width of the length penalty.
        scorer: Take document frequencies (and n, sigma) from this scorer instead of from ``references``.

    Returns:
        The mean over images and the per-image scores.
    """
    table, ref_image = corpus_table(references, candidates, scorer.n if scorer is not None else n)
    return cider_from_table(table, ref_image, sigma=sigma, scorer=scorer)
