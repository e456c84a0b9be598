"""Token ids and the SentencePiece tokenizer: the vocabulary that the data, the models and the trainer share.

A leaf module (standard library only at import; SentencePiece is imported when a tokenizer is made or trained), so
that ``mmtrain.data`` and ``mmtrain.models`` can both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


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
