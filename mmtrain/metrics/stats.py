"""Confidence intervals, paired comparisons and diversity figures for caption metrics.

The bootstrap resamples images with replacement. Corpus BLEU is recomputed from the resampled images' summed counts
(it is not a mean of per-image scores), and so is corpus METEOR from the resampled images' summed METEOR statistics;
ROUGE-L, CIDEr-D and SPICE use the mean of per-image scores. A resample is a vector of image multiplicities, so
every metric of B resamples is one matrix product, done in chunks to bound memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmtrain.metrics.bleu import BleuCounts, bleu_from_counts


@dataclass(frozen=True)
class ImageScores:
    """Everything the bootstrap needs about one system on N images.

    Attributes:
        means: Per-image scores of metrics whose corpus score is their mean, each shape (N,).
        bleu: Per-image BLEU counts (metrics ``Bleu_1``.. are recomputed from their sums), or None.
        meteor: Per-image METEOR statistics (N, 23) as the corpus adds them (``METEOR`` is recomputed from their
            sums), or None.
    """

    means: Mapping[str, np.ndarray] = field(default_factory=dict)
    bleu: BleuCounts | None = None
    meteor: np.ndarray | None = None

    @property
    def num_images(self) -> int:
        if self.bleu is not None:
            return len(self.bleu.testlen)
        if self.meteor is not None:
            return len(self.meteor)
        return len(next(iter(self.means.values()))) if self.means else 0

    def columns(self) -> tuple[list[str], np.ndarray]:
        """Column names and an (N, K) matrix of every quantity that gets summed over images."""
        names, columns = [], []
        for name, values in self.means.items():
            names.append(name)
            columns.append(np.asarray(values, dtype=np.float64))
        if self.bleu is not None:
            n = self.bleu.guess.shape[1]
            names += ["_testlen", "_reflen"] + [f"_guess{k}" for k in range(n)] + [f"_correct{k}" for k in range(n)]
            columns += [self.bleu.testlen, self.bleu.reflen, *self.bleu.guess.T, *self.bleu.correct.T]
        if self.meteor is not None:
            names += [f"_meteor{k}" for k in range(self.meteor.shape[1])]
            columns += list(np.asarray(self.meteor, dtype=np.float64).T)
        return names, np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)

    def metrics_from_sums(self, sums: np.ndarray, count: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric per resample, from column sums (B, K) over ``count`` images per resample (B,)."""
        names, _ = self.columns()
        index = {name: i for i, name in enumerate(names)}
        out = {name: sums[:, index[name]] / count for name in self.means}
        if self.bleu is not None:
            n = self.bleu.guess.shape[1]
            guess = sums[:, [index[f"_guess{k}"] for k in range(n)]]
            correct = sums[:, [index[f"_correct{k}"] for k in range(n)]]
            scores = bleu_from_counts(sums[:, index["_testlen"]], sums[:, index["_reflen"]], guess, correct)
            out.update({f"Bleu_{k + 1}": scores[:, k] for k in range(n)})
        if self.meteor is not None:
            from mmtrain.metrics.meteor.scorer import scores_from_stats

            out["METEOR"] = scores_from_stats(sums[:, [index[f"_meteor{k}"] for k in range(self.meteor.shape[1])]])
        return out


def _resample_weights(num_images: int, resamples: int, seed: int, chunk: int) -> Iterator[np.ndarray]:
    """Image multiplicities of each bootstrap resample, (chunk, N) at a time."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        picks = rng.integers(0, num_images, size=(rows, num_images))  # (rows, N)
        offsets = (np.arange(rows) * num_images)[:, None]
        yield np.bincount((picks + offsets).ravel(), minlength=rows * num_images).reshape(rows, num_images)


def _bootstrap(systems: Sequence[ImageScores], resamples: int, seed: int, chunk: int) -> list[dict[str, np.ndarray]]:
    """Every metric of every system on the same resamples: per system, metric -> (resamples,)."""
    num_images = systems[0].num_images
    matrices = [system.columns()[1] for system in systems]
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in systems]
    for weights in _resample_weights(num_images, resamples, seed, chunk):
        count = np.full(len(weights), float(num_images))
        for system, matrix, out in zip(systems, matrices, parts, strict=True):
            out.append(system.metrics_from_sums(weights.astype(np.float64) @ matrix, count))
    return [{name: np.concatenate([p[name] for p in out]) for name in out[0]} for out in parts]


def bootstrap_ci(
    scores: ImageScores, *, resamples: int = 1000, seed: int = 0, level: float = 0.95, chunk: int = 100
) -> dict[str, list[float]]:
    """Percentile bootstrap confidence interval of every metric.

    Args:
        scores: Per-image scores and BLEU counts.
        resamples: Number of bootstrap resamples.
        seed: Seed of the resampling, for reproducible intervals.
        level: Coverage of the interval.
        chunk: Resamples computed at once (memory is ``chunk * N`` numbers).

    Returns:
        Metric name to ``[low, high]``.
    """
    if scores.num_images == 0 or resamples <= 0:
        return {}
    (samples,) = _bootstrap([scores], resamples, seed, chunk)
    tail = (1 - level) / 2 * 100
    return {name: [float(v) for v in np.percentile(values, [tail, 100 - tail])] for name, values in samples.items()}


def paired_bootstrap(
    first: ImageScores,
    second: ImageScores,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int = 100,
) -> dict[str, dict[str, float | list[float]]]:
    """Paired bootstrap of the difference ``first - second`` on the same images, resampled together.

    Returns:
        Metric name to ``{"diff": observed difference, "ci95": [low, high], "p_value": two-sided p}``. The p-value is
        twice the share of resamples whose difference falls on the other side of zero from the observed one (capped
        at 1): small when the ranking of the two systems survives resampling the images.
    """
    if first.num_images != second.num_images:
        raise ValueError(f"paired bootstrap needs the same images: {first.num_images} vs {second.num_images}")
    if first.num_images == 0 or resamples <= 0:
        return {}
    everything = np.ones((1, first.num_images))
    observed = [
        s.metrics_from_sums(everything @ s.columns()[1], np.array([float(first.num_images)])) for s in (first, second)
    ]
    samples_a, samples_b = _bootstrap([first, second], resamples, seed, chunk)
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, float | list[float]]] = {}
    for name in samples_a:
        diffs = samples_a[name] - samples_b[name]
        diff = float(observed[0][name][0] - observed[1][name][0])
        losing = np.mean(diffs <= 0) if diff > 0 else np.mean(diffs >= 0) if diff < 0 else 1.0
        out[name] = {
            "diff": diff,
            "ci95": [float(v) for v in np.percentile(diffs, [tail, 100 - tail])],
            "p_value": float(min(1.0, 2 * losing)),
        }
    return out


def diversity(captions: Sequence[Sequence[str]]) -> dict[str, float]:
    """How varied a system's captions are (tokenized): collapse onto a few generic captions shows here first.

    Returns:
        ``unique_captions`` (share of distinct captions), ``distinct_1`` and ``distinct_2`` (distinct uni/bigrams over
        all uni/bigrams), ``vocabulary`` (distinct words used) and ``mean_length`` (words per caption).
    """
    if not captions:
        return {"unique_captions": 0.0, "distinct_1": 0.0, "distinct_2": 0.0, "vocabulary": 0, "mean_length": 0.0}
    unigrams = [w for words in captions for w in words]
    bigrams = [pair for words in captions for pair in zip(words, words[1:], strict=False)]
    return {
        "unique_captions": len({tuple(words) for words in captions}) / len(captions),
        "distinct_1": len(set(unigrams)) / len(unigrams) if unigrams else 0.0,
        "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else 0.0,
        "vocabulary": len(set(unigrams)),
        "mean_length": len(unigrams) / len(captions),
    }
