"""The COCO caption metrics of raw captions in one call, with pycocoevalcap's names and numbers."""

from __future__ import annotations

import atexit
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmtrain.errors import UserError
from mmtrain.metrics.bleu import BleuCounts, bleu_from_counts, corpus_bleu, counts_from_table
from mmtrain.metrics.cider import CiderD, cider_from_table
from mmtrain.metrics.meteor import Meteor, meteor_unavailable_reason, resources_unavailable_reason
from mmtrain.metrics.ngrams import build_table
from mmtrain.metrics.rouge import rouge_l
from mmtrain.metrics.spice import spice_scores
from mmtrain.metrics.stats import ImageScores
from mmtrain.metrics.tokenize import tokenize_corpus

BLEU_NAMES = ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]
_shared: dict[str, object] = {}
METEOR_CHOICES = ("python", "java", "auto")


def meteor_backend(choice: bool | str | None) -> tuple[str | None, str | None]:
    """Which METEOR runs for ``meteor=choice`` (python, java, auto, true, false), and why none runs.

    ``auto`` prefers the Python implementation (it needs only the jar's data files), then the jar (it needs Java).
    An explicit choice that cannot run is a UserError; ``auto`` that cannot run is skipped with its reason.
    """
    if choice is None or choice is False or str(choice).lower() in ("false", "none", "off"):
        return None, "not requested (meteor=false)"
    name = "auto" if choice is True else str(choice).lower()
    if name not in METEOR_CHOICES and name != "true":
        raise UserError(f"meteor={choice}: expected one of python, java, auto, false")
    python_reason = resources_unavailable_reason()
    java_reason = meteor_unavailable_reason()
    if name == "python":
        if python_reason:
            raise UserError(f"meteor=python {python_reason}")
        return "python", None
    if name == "java":
        if java_reason:
            raise UserError(f"meteor=java {java_reason}")
        return "java", None
    if python_reason is None:
        return "python", None
    if java_reason is None:
        return "java", None
    if name == "true":
        raise UserError(f"METEOR {python_reason}")
    return None, python_reason


def shared_meteor(backend: str = "java"):
    """One METEOR scorer per backend for the whole process (loading one costs the paraphrase table)."""
    scorer = _shared.get(backend)
    if backend == "java" and (scorer is None or scorer._process.poll() is not None):
        scorer = _shared[backend] = Meteor()
        atexit.register(scorer.close)
    elif scorer is None:
        from mmtrain.metrics.meteor.native import NativeMeteor

        scorer = _shared[backend] = NativeMeteor()
    return scorer


@dataclass
class CaptionScores:
    """Corpus scores, per-image scores and what the statistics need, for one system.

    Attributes:
        image_ids: The images, in scoring order.
        scores: Metric name (pycocoevalcap's) to corpus score.
        per_image: Metric name to per-image scores, shape (N,).
        bleu_counts: Per-image BLEU counts.
        skipped: Metric name to the reason it was not computed.
        tokens: Each image's tokenized candidate, as a word list.
        meteor_stats: Per-image METEOR statistics (N, 23) when METEOR ran.
    """

    image_ids: list[Hashable]
    scores: dict[str, float]
    per_image: dict[str, np.ndarray]
    bleu_counts: BleuCounts
    skipped: dict[str, str] = field(default_factory=dict)
    tokens: list[list[str]] = field(default_factory=list)
    meteor_stats: np.ndarray | None = None

    def image_scores(self) -> ImageScores:
        """The per-image view the bootstrap resamples (BLEU and METEOR from their summed statistics)."""
        from mmtrain.metrics.meteor.scorer import summable

        aggregated = ("Bleu_", "METEOR") if self.meteor_stats is not None else ("Bleu_",)
        means = {name: values for name, values in self.per_image.items() if not name.startswith(aggregated)}
        meteor = summable(self.meteor_stats) if self.meteor_stats is not None else None
        return ImageScores(means=means, bleu=self.bleu_counts, meteor=meteor)


def _check_ids(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> None:
    missing = [k for k in references if k not in candidates]
    extra = [k for k in candidates if k not in references]
    empty = [k for k, refs in references.items() if not refs]
    problems = []
    if missing:
        problems.append(f"{len(missing)} images have references but no candidate (e.g. {missing[:3]})")
    if extra:
        problems.append(f"{len(extra)} candidates have no references (e.g. {extra[:3]})")
    if empty:
        problems.append(f"{len(empty)} images have an empty reference list (e.g. {empty[:3]})")
    if problems:
        raise UserError("caption scoring: " + "; ".join(problems))


def score_tokenized(
    references: Sequence[Sequence[str]],
    candidates: Sequence[str],
    *,
    meteor: bool | str = False,
    spice_jar: str | Path | None = None,
    cider_scorer: CiderD | None = None,
    image_ids: Sequence[Hashable] | None = None,
) -> CaptionScores:
    """Score PTB-tokenized captions (space-joined strings), aligned by position."""
    image_ids = list(image_ids) if image_ids is not None else list(range(len(candidates)))
    table = build_table([c.split() for c in candidates] + [r.split() for refs in references for r in refs])
    ref_image = np.repeat(np.arange(len(references)), [len(refs) for refs in references]).astype(np.int64)
    counts = counts_from_table(table, ref_image)
    per_bleu = bleu_from_counts(counts.testlen, counts.reflen, counts.guess, counts.correct)
    scores = dict(zip(BLEU_NAMES, corpus_bleu(counts), strict=True))
    per_image = {name: per_bleu[:, k] for k, name in enumerate(BLEU_NAMES)}
    skipped: dict[str, str] = {}
    meteor_stats = None
    backend, reason = meteor_backend(meteor)
    if backend is not None:
        scores["METEOR"], per_image["METEOR"], meteor_stats = shared_meteor(backend).score_with_stats(
            references, candidates
        )
    elif meteor is not None and meteor is not False and str(meteor).lower() != "false":
        skipped["METEOR"] = reason or "unavailable"
    rouge = rouge_l(references, candidates)
    scores["ROUGE_L"], per_image["ROUGE_L"] = rouge.score, rouge.per_image
    cider = cider_from_table(table, ref_image, scorer=cider_scorer)
    scores["CIDEr"], per_image["CIDEr"] = cider.score, cider.per_image
    if spice_jar is not None:
        spice = spice_scores(references, candidates, spice_jar, image_ids=image_ids)
        if isinstance(spice, str):
            skipped["SPICE"] = spice
        else:
            scores["SPICE"], per_image["SPICE"] = spice
    tokens = [c.split(" ") if c else [] for c in candidates]
    return CaptionScores(image_ids, scores, per_image, counts, skipped, tokens, meteor_stats)


def score_captions(
    references: Mapping[Hashable, Sequence[str]],
    candidates: Mapping[Hashable, str],
    *,
    meteor: bool | str = False,
    spice_jar: str | Path | None = None,
    cider_scorer: CiderD | None = None,
) -> CaptionScores:
    """PTB-tokenize raw captions as pycocoevalcap does and score them; images in ``references`` order."""
    _check_ids(references, candidates)
    ids = list(references)
    ref_tokens = tokenize_corpus({k: list(references[k]) for k in ids})
    cand_tokens = tokenize_corpus({k: [candidates[k]] for k in ids})
    return score_tokenized(
        [ref_tokens[k] for k in ids],
        [cand_tokens[k][0] for k in ids],
        meteor=meteor,
        spice_jar=spice_jar,
        cider_scorer=cider_scorer,
        image_ids=ids,
    )


def coco_caption_scores(
    references: Mapping[Hashable, Sequence[str]],
    candidates: Mapping[Hashable, str],
    *,
    meteor: bool | str = False,
    spice_jar: str | None = None,
) -> dict[str, float]:
    """COCO caption metrics of raw captions, with pycocoevalcap's key names and values.

    Captions are PTB-tokenized here exactly as pycocoevalcap's tokenizer would (no Java needed). BLEU-1..4, ROUGE-L
    and CIDEr-D are always computed; METEOR runs the Java METEOR 1.5 jar when asked; SPICE runs only with a SPICE jar.

    Args:
        references: Image id to its reference captions.
        candidates: Image id to its one candidate caption; the ids must be exactly those of ``references``.
        meteor: Also compute METEOR: "python" (no Java), "java" (the jar), "auto" or True (Python when its data is
            installed, else the jar), False to skip. An explicit choice that cannot run raises UserError.
        spice_jar: Path to ``spice-1.0.jar`` (with its CoreNLP models in ``lib/``) to also compute SPICE; SPICE is
            left out of the result if it cannot run.

    Returns:
        ``Bleu_1``..``Bleu_4``, ``ROUGE_L``, ``CIDEr``, and ``METEOR`` / ``SPICE`` when computed.

    Example:
        >>> scores = coco_caption_scores({1: ["A dog runs.", "A brown dog."]}, {1: "A dog runs."})
        >>> sorted(scores)
        ['Bleu_1', 'Bleu_2', 'Bleu_3', 'Bleu_4', 'CIDEr', 'ROUGE_L']
    """
    return score_captions(references, candidates, meteor=meteor, spice_jar=spice_jar).scores
