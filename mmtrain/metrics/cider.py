"""CIDEr-D exactly as coco-caption computes it, and a reusable scorer for self-critical training rewards.

Each sentence becomes one TF-IDF vector per n-gram order (1..4), weighting an n-gram by ``tf * (log(D) - log(max(1,
df)))`` where ``D`` is the number of documents (images) and ``df`` how many of them have the n-gram in a reference.
The similarity of a candidate to a reference, per order, is the clipped cosine ``sum(min(c, r) * r) / (|c| |r|)``
times a length penalty ``exp(-(len_c - len_r)^2 / (2 sigma^2))`` with ``sigma = 6`` (lengths counted as coco-caption
does, in bigrams). An image's score is the mean over orders and references, times 10; the corpus score is the mean over
images. coco-caption takes ``df`` from the references being evaluated; :class:`CiderD` can also take it from another
corpus (training references for SCST) and then score any number of (candidate, references) pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mmtrain.errors import UserError
from mmtrain.metrics.ngrams import NGram, ngram_counts
from mmtrain.metrics.rouge import CorpusScore

_Vector = tuple[dict[NGram, float], list[float], int]  # weights, norm per order, length (bigram count)


def document_frequency(references: Iterable[Sequence[Counter[NGram]]]) -> Counter[NGram]:
    """In how many documents (images) each n-gram occurs, from each image's counted references."""
    frequency: Counter[NGram] = Counter()
    for image_refs in references:
        seen: set[NGram] = set()
        for counts in image_refs:
            seen.update(counts)
        frequency.update(seen)
    return frequency


class CiderD:
    """CIDEr-D with a fixed document frequency: build once, score many candidates.

    Args:
        frequency: Document frequency of each n-gram.
        num_documents: How many documents ``frequency`` was counted over.
        n: Highest n-gram order.
        sigma: Width of the Gaussian length penalty.
        cache_size: How many reference sets to keep as ready vectors (a training set's references are scored over
            and over).

    Example:
        >>> scorer = CiderD.from_references([["a dog runs", "a brown dog"], ["a cat sleeps"]])
        >>> round(scorer.score("a dog runs", ["a dog runs", "a brown dog"]), 3)
        3.671
    """

    def __init__(
        self, frequency: Mapping[NGram, float], num_documents: int, *, n: int = 4, sigma: float = 6.0,
        cache_size: int = 50_000,
    ) -> None:
        if num_documents < 1:
            raise UserError("CIDEr-D needs at least one reference document to compute n-gram document frequencies")
        if frequency and max(frequency.values()) > num_documents:
            raise UserError(f"CIDEr-D document frequency exceeds the number of documents ({num_documents})")
        self.n, self.sigma = n, sigma
        self._log_documents = float(np.log(float(num_documents)))
        self._frequency = frequency
        self._idf: dict[NGram, float] = {}
        self._cache: dict[tuple[str, ...], list[_Vector]] = {}
        self._cache_size = cache_size

    @classmethod
    def from_references(cls, references: Iterable[Sequence[str]], *, n: int = 4, sigma: float = 6.0) -> CiderD:
        """Build from a corpus of tokenized references, one sequence of captions per image (document)."""
        counted = [[ngram_counts(ref.split(), n) for ref in refs] for refs in references]
        return cls(document_frequency(counted), len(counted), n=n, sigma=sigma)

    def _weight(self, gram: NGram) -> float:
        idf = self._idf.get(gram)
        if idf is None:
            idf = self._idf[gram] = self._log_documents - float(np.log(max(1.0, self._frequency.get(gram, 0.0))))
        return idf

    def vector(self, counts: Counter[NGram]) -> _Vector:
        """TF-IDF weights of a counted sentence, their norm per order, and its length in bigrams."""
        weights: dict[NGram, float] = {}
        squares = [0.0] * self.n
        length = 0
        for gram, term_frequency in counts.items():
            order = len(gram) - 1
            value = weights[gram] = float(term_frequency) * self._weight(gram)
            squares[order] += pow(value, 2)
            if order == 1:
                length += term_frequency
        return weights, [math.sqrt(s) for s in squares], length

    def similarity(self, candidate: _Vector, reference: _Vector) -> list[float]:
        """Clipped cosine similarity per order with the length penalty."""
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

    def score_vectors(self, candidate: _Vector, references: Sequence[_Vector]) -> float:
        """CIDEr-D of a candidate vector against reference vectors (mean over orders and references, times 10)."""
        totals = np.zeros(self.n)
        for reference in references:
            totals += self.similarity(candidate, reference)
        return float(np.mean(totals)) / len(references) * 10.0

    def score(self, candidate: str, references: Sequence[str]) -> float:
        """CIDEr-D of one tokenized candidate against its tokenized references."""
        if not references:
            raise UserError("CIDEr-D needs at least one reference caption per candidate")
        vector = self.vector(ngram_counts(candidate.split(), self.n))
        return self.score_vectors(vector, self._reference_vectors(references))

    def score_batch(self, candidates: Sequence[str], references: Sequence[Sequence[str]]) -> np.ndarray:
        """CIDEr-D of each candidate against its own references (aligned sequences), shape (len(candidates),)."""
        return np.asarray([self.score(c, refs) for c, refs in zip(candidates, references, strict=True)])


def cider_d(references: Sequence[Sequence[str]], candidates: Sequence[str], *, n: int = 4, sigma: float = 6.0,
            scorer: CiderD | None = None) -> CorpusScore:
    """CIDEr-D of tokenized candidates against tokenized references, as coco-caption's ``Cider()``.

    Args:
        references: Per image, its tokenized reference captions (space-joined strings).
        candidates: Per image, its tokenized candidate caption, aligned with ``references``.
        n: Highest n-gram order.
        sigma: Width of the length penalty.
        scorer: Take document frequencies from this scorer (another corpus) instead of from ``references``.

    Returns:
        The mean over images and the per-image scores.
    """
    ref_counts = [[ngram_counts(ref.split(), n) for ref in refs] for refs in references]
    cand_counts = [ngram_counts(c.split(), n) for c in candidates]
    return cider_from_counts(ref_counts, cand_counts, n=n, sigma=sigma, scorer=scorer)


def cider_from_counts(
    references: Sequence[Sequence[Counter[NGram]]], candidates: Sequence[Counter[NGram]], *, n: int = 4,
    sigma: float = 6.0, scorer: CiderD | None = None,
) -> CorpusScore:
    """:func:`cider_d` on n-grams already counted (shared with BLEU)."""
    if scorer is None:
        scorer = CiderD(document_frequency(references), len(references), n=n, sigma=sigma)
    scores = []
    for refs, candidate in zip(references, candidates, strict=True):
        ref_vectors = [scorer.vector(counts) for counts in refs]
        scores.append(scorer.score_vectors(scorer.vector(candidate), ref_vectors))
    per_image = np.asarray(scores, dtype=np.float64)
    return CorpusScore(float(np.mean(per_image)) if len(per_image) else 0.0, per_image)
