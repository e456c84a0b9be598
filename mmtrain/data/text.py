"""Caption normalisation and the SentencePiece tokenizer wrapper.

Training text is normalised lightly (Unicode NFC, whitespace folded, optional lowercasing) and kept otherwise as
written; SentencePiece learns its own segmentation from it. Evaluation never uses this text: metrics PTB-tokenize
the raw references and the decoded candidates (see ``mmtrain.metrics.tokenize``), exactly like pycocoevalcap.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

_WHITESPACE = re.compile(r"\s+")

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


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


def clean_captions(captions: Iterable[str], stats: CaptionStats, *, lowercase: bool, max_words: int) -> list[str]:
    """Normalise captions, dropping empty ones and counting what changed in ``stats``."""
    kept = []
    for caption in captions:
        cleaned, truncated = normalize_caption(caption, lowercase=lowercase, max_words=max_words)
        if not cleaned:
            stats.empty_dropped += 1
            continue
        stats.truncated += int(truncated)
        stats.kept += 1
        kept.append(cleaned)
    return kept


def train_sentencepiece(captions: Iterable[str], *, vocab_size: int, model_type: str = "bpe") -> bytes:
    """Train a SentencePiece model on ``captions`` and return the serialised model.

    Trained in memory: nothing is written beside the store, and the model records no file path, so the same
    captions give the same bytes wherever they are trained (the training itself draws no random numbers). Ids 0-3
    are fixed to pad, unk, bos, eos so that checkpoints and stores agree on them.
    """
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(captions)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


class Tokenizer:
    """A SentencePiece model with fixed special ids (pad 0, unk 1, bos 2, eos 3)."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model: str | Path | bytes) -> None:
        import sentencepiece as spm

        self.model_bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode(self, text: str, *, max_len: int = 0) -> list[int]:
        """Token ids of ``text`` with bos and eos; cut to ``max_len`` ids (eos kept) when positive."""
        ids = [self.bos_id, *self._sp.encode(text), self.eos_id]
        if max_len and len(ids) > max_len:
            ids = ids[: max_len - 1] + [self.eos_id]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the first eos and skipping special ids."""
        out = []
        for token in ids:
            if token == self.eos_id:
                break
            if token > self.eos_id:
                out.append(int(token))
        return self._sp.decode(out)
