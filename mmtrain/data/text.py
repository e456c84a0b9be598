"""Caption normalisation (the tokenizer and its special ids live in :mod:`mmtrain.tokens`).

Training text is normalised lightly (Unicode NFC, whitespace folded, optional lowercasing) and kept otherwise as
written; SentencePiece learns its own segmentation from it. Evaluation never uses this text: metrics PTB-tokenize
the raw references and the decoded candidates (see ``mmtrain.metrics.tokenize``), exactly like pycocoevalcap.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WHITESPACE = re.compile(r"\s+")


@dataclass
class CaptionStats:
    """Counts of what caption cleaning changed, reported in the manifest."""

    kept: int = 0
    empty_dropped: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "empty_dropped": self.empty_dropped, "truncated": self.truncated}


def normalize_caption(text: str, *, lowercase: bool = True, max_words: int = 0) -> tuple[str, bool]:
    """NFC-normalise, fold whitespace, optionally lowercase and cut to ``max_words`` words.

    Returns:
        The cleaned caption (possibly empty) and whether it was truncated.
    """
    text = _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()
    if lowercase:
        text = text.lower()
    if max_words > 0:
        words = text.split(" ")
        if len(words) > max_words:
            return " ".join(words[:max_words]), True
    return text, False
