"""METEOR 1.5 without Java: the jar's normalization, matchers, alignment and scoring, in Python.

Input is what pycocoevalcap sends the jar: per image, its tokenized references and one tokenized hypothesis. The
result is the jar's corpus score and its per-image scores.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import numpy as np

from mmtrain.metrics.meteor.aligner import align
from mmtrain.metrics.meteor.normalize import normalize_line, words
from mmtrain.metrics.meteor.resources import Lexicon, find_meteor_jar, load_lexicon, load_phrase_table, paraphrases_in
from mmtrain.metrics.meteor.scorer import N_STATS, corpus_score, nothing_to_score, scores_from_stats, stats_row
from mmtrain.metrics.meteor.sentence import Sentence, Vocabulary

# WordNet's detachment rules for regular forms, as the jar applies them: (suffix, replacement).
_DETACH = [
    ("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
    ("ies", "y"), ("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"),
    ("ing", ""), ("er", ""), ("est", ""), ("er", "e"), ("est", "e"),
]  # fmt: skip


def _base_form(word: str, synsets: dict[str, str]) -> str:
    """The first regular base form of ``word`` that WordNet knows, or "" (the jar's morph)."""
    if word.endswith("ss") or len(word) <= 2:
        return word
    for suffix, replacement in _DETACH:
        if word.endswith(suffix):
            base = word[: len(word) - len(suffix)] + replacement
            if base in synsets:
                return base
    return ""


def _split_fields(references: Sequence[str], hypothesis: str) -> tuple[list[str], str] | None:
    """The references and hypothesis the jar reads from pycocoevalcap's ``SCORE ||| ...`` line."""
    line = " ||| ".join(["SCORE", " ||| ".join(references), hypothesis.replace("|||", "").replace("  ", " ")])
    parts = line.split("|||")
    while parts and parts[-1] == "":
        parts.pop()  # Java's String.split drops trailing empty fields
    if len(parts) < 3:
        return None
    return [_java_trim(p) for p in parts[1:-1]], _java_trim(parts[-1])


def _java_trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and text[start] <= " ":
        start += 1
    while end > start and text[end - 1] <= " ":
        end -= 1
    return text[start:end]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector: scoring builds hundreds of thousands of small containers and no cycles, and
    the collector's repeated passes over them (and over the loaded word lists) took a fifth of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_WORK: tuple | None = None


def _best_rows(work: tuple, start: int, stop: int) -> np.ndarray:
    """The statistics of each image's best reference (the first best, as the jar), for images ``start`` to ``stop``."""
    lines, prepared, lengths = work
    rows, spans = [], []
    for line in lines[start:stop]:
        if line is None:
            spans.append(None)
            continue
        refs, hyp = line
        spans.append((len(rows), len(rows) + len(refs)))
        rows.extend(_row(prepared[hyp], prepared[ref], lengths) for ref in refs)
    table = np.asarray(rows, dtype=np.float64).reshape(-1, N_STATS)
    scores = scores_from_stats(table).tolist() if rows else []
    out = np.zeros((stop - start, N_STATS))
    scored = [n for n, span in enumerate(spans) if span is not None]
    # the first of equal scores, as the jar
    best = [max(range(*spans[n]), key=scores.__getitem__) for n in scored]
    out[scored] = table[best]
    return out


def _row(hyp: Sentence, ref: Sentence, lengths: list[int]) -> list[float]:
    alignment = align(hyp, ref, lengths)
    return stats_row(alignment, len(hyp.words), len(ref.words), hyp.function_count, ref.function_count)


def _best_rows_forked(start: int, stop: int) -> np.ndarray:
    return _best_rows(_WORK, start, stop)


class NativeMeteor:
    """METEOR 1.5 in Python, equal to the jar pycocoevalcap runs (the data is read once from that jar's package).

    Args:
        jar: Path to ``meteor-1.5.jar`` (its word lists, and ``data/paraphrase-en.gz`` beside it); pycocoevalcap's
            by default.
        workers: Processes aligning a corpus of 2,000 images or more (forked, sharing the loaded data); None: one
            per core, at most 4; 1 (the default): in this process only, which scores 5,000 images x 5 references in
            a few seconds, so that forking pays only on large corpora and idle cores.
    """

    def __init__(self, jar: str | Path | None = None, *, workers: int | None = 1) -> None:
        self.workers = workers
        self.jar = Path(jar) if jar is not None else find_meteor_jar()
        if self.jar is None:
            raise FileNotFoundError("meteor-1.5.jar not found: install pycocoevalcap")
        with _collector_paused():
            self.lexicon: Lexicon = load_lexicon(self.jar)
        self.table = load_phrase_table(self.jar)
        import snowballstemmer

        self._stemmer = snowballstemmer.stemmer("english")
        self.stem = lru_cache(maxsize=None)(self._stemmer.stemWord)
        self.synsets = lru_cache(maxsize=None)(self._synsets)
        self.normalize = lru_cache(maxsize=1 << 16)(self._normalize)

    def _synsets(self, word: str) -> frozenset[int]:
        sets = self.lexicon.synsets
        bases = self.lexicon.bases.get(word)
        forms = [word, *(bases if bases is not None else [_base_form(word, sets)])]
        return frozenset(int(i) for form in forms for i in sets.get(form, "").split())

    def _normalize(self, text: str) -> tuple[str, ...]:
        return tuple(words(normalize_line(text, self.lexicon.prefixes).lower()))

    def statistics(self, references: Sequence[Sequence[str]], candidates: Sequence[str]) -> np.ndarray:
        """Per image, the jar's statistics of its best reference, shape (N, 23)."""
        with _collector_paused():
            return self._statistics(references, candidates)

    def _statistics(self, references: Sequence[Sequence[str]], candidates: Sequence[str]) -> np.ndarray:
        fields = [_split_fields(refs, hyp) for refs, hyp in zip(references, candidates, strict=True)]
        lines = [(tuple(map(self.normalize, f[0])), self.normalize(f[1])) if f else None for f in fields]
        sentences = {ref for line in lines if line for ref in line[0]} | {line[1] for line in lines if line}
        vocabulary = Vocabulary(
            {w for s in sentences for w in s},
            stem=self.stem,
            synsets=self.synsets,
            paraphrases=paraphrases_in(self.table, list(sentences)),
            function_words=self.lexicon.function_words,
        )
        prepared = {s: Sentence(s, vocabulary) for s in sentences}
        work = (lines, prepared, vocabulary.target_lengths)
        workers = self.workers if self.workers is not None else min(os.cpu_count() or 1, 4)
        if workers < 2 or len(lines) < 2000 or "fork" not in multiprocessing.get_all_start_methods():
            return _best_rows(work, 0, len(lines))
        bounds = np.linspace(0, len(lines), workers + 1).astype(int)
        global _WORK
        _WORK = work  # inherited by the forked workers: nothing large is pickled
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                parts = pool.starmap(_best_rows_forked, zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        finally:
            _WORK = None
        return np.concatenate(parts)

    def score(self, references: Sequence[Sequence[str]], candidates: Sequence[str]) -> tuple[float, np.ndarray]:
        """METEOR of each candidate against its references, as pycocoevalcap computes it.

        Returns:
            The corpus score and the per-image scores, shape (N,).
        """
        if nothing_to_score(references, candidates):
            return 0.0, np.zeros(0)
        corpus, per_image, _ = self.score_with_stats(references, candidates)
        return corpus, per_image

    def score_with_stats(
        self, references: Sequence[Sequence[str]], candidates: Sequence[str]
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """The corpus score, per-image scores and per-image statistics (N, 23), which the bootstrap resamples."""
        stats = self.statistics(references, candidates)
        return corpus_score(stats), scores_from_stats(stats), stats
