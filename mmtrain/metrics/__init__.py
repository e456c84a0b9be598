"""Caption and retrieval metrics: pure Python and numpy (no torch), equal to pycocoevalcap's numbers.

The names below load on first use, so ``import mmtrain.metrics`` is instant.

- :func:`coco_caption_scores`: BLEU-1..4, ROUGE-L, CIDEr-D (+ METEOR, SPICE) of raw captions, pycocoevalcap's keys.
- :class:`NativeMeteor`: METEOR 1.5 without Java, equal to the jar; :class:`Meteor`: the jar itself.
- :func:`evaluate_files`: score a COCO results file, with confidence intervals, and write metrics/report files.
- :func:`ptb_tokenize`, :func:`tokenize_corpus`: pycocoevalcap's PTB tokenization without Java.
- :class:`CiderD`: CIDEr-D with document frequencies from any corpus, for self-critical (SCST) rewards.
- :func:`retrieval_recall`: R@1/5/10 both ways from image and text embeddings.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "coco_caption_scores": "mmtrain.metrics.scores",
    "score_captions": "mmtrain.metrics.scores",
    "evaluate_files": "mmtrain.metrics.evaluate",
    "ptb_tokenize": "mmtrain.metrics.tokenize",
    "tokenize_corpus": "mmtrain.metrics.tokenize",
    "CiderD": "mmtrain.metrics.cider",
    "cider_d": "mmtrain.metrics.cider",
    "bleu": "mmtrain.metrics.bleu",
    "rouge_l": "mmtrain.metrics.rouge",
    "Meteor": "mmtrain.metrics.meteor",
    "NativeMeteor": "mmtrain.metrics.meteor",
    "bootstrap_ci": "mmtrain.metrics.stats",
    "paired_bootstrap": "mmtrain.metrics.stats",
    "diversity": "mmtrain.metrics.stats",
    "retrieval_recall": "mmtrain.metrics.retrieval",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmtrain.metrics' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
