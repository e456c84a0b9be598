"""Token ids and the SentencePiece tokenizer: the vocabulary that the data, the models and the trainer share.

A leaf module (standard library only at import; SentencePiece is imported when a tokenizer is made or trained), so
that ``mmtrain.data`` and ``mmtrain.models`` can both use it without importing each other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


class _Encoder:
    """What both tokenizers share: bos + the text's ids + eos, cut to a length with eos kept."""

    bos_id: int
    eos_id: int

    def tokens(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode(self, text: str, *, max_len: int = 0) -> list[int]:
        """Token ids of ``text`` with bos and eos; cut to ``max_len`` ids (eos kept) when positive."""
        ids = [self.bos_id, *self.tokens(text), self.eos_id]
        if max_len and len(ids) > max_len:
            ids = ids[: max_len - 1] + [self.eos_id]
        return ids


class Tokenizer(_Encoder):
    """A SentencePiece model with fixed special ids (pad 0, unk 1, bos 2, eos 3)."""

    pad_id, unk_id, bos_id, eos_id = PAD_ID, UNK_ID, BOS_ID, EOS_ID

    def __init__(self, model: str | Path | bytes) -> None:
        import sentencepiece as spm

        self.model_bytes = model if isinstance(model, bytes) else Path(model).read_bytes()
        self._sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def tokens(self, text: str) -> list[int]:
        """Ids of ``text`` alone, without bos or eos."""
        return self._sp.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the first eos and skipping special ids."""
        out = []
        for token in ids:
            if token == self.eos_id:
                break
            if token > self.eos_id:
                out.append(int(token))
        return self._sp.decode(out)


HF_FORMAT = "mmtrain-hf-tokenizer/1"
HF_EXTRA = "decoder=hf_causal_lm needs transformers, tokenizers and peft: pip install 'mmtrain[hf]'"


class HFTokenizer(_Encoder):
    """A Hugging Face fast tokenizer behind the interface of :class:`Tokenizer`.

    Built from a hub name or folder (``AutoTokenizer.from_pretrained``), or from its ``model_bytes``: a JSON record of
    the tokenizer's own ``tokenizer.json`` and its special ids, which checkpoints keep, so a checkpoint decodes without
    the LM's folder and a run trained with another tokenizer is refused as today's. A model without a pad token
    (GPT-2) pads with eos; the loss is masked by caption length, not by the pad id. Without a bos token (Qwen) eos
    starts the sequence.
    """

    unk_id = -1

    def __init__(self, source: str | Path | bytes) -> None:
        import json

        try:
            from tokenizers import Tokenizer as Backend
        except ImportError:
            from mmtrain.errors import UserError

            raise UserError(HF_EXTRA) from None
        if isinstance(source, bytes):
            record = json.loads(source.decode("utf-8"))
        else:
            record = _hf_record(str(source))
        self.model_bytes = json.dumps(record, sort_keys=True).encode("utf-8")  # content only: the folder may move
        self.bos_id, self.eos_id, self.pad_id = record["bos_id"], record["eos_id"], record["pad_id"]
        self._tok = Backend.from_str(record["tokenizer_json"])
        self._special = {self.bos_id, self.eos_id, self.pad_id}

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def tokens(self, text: str) -> list[int]:
        """Ids of ``text`` alone, without bos or eos."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, stopping at the first eos and skipping special ids."""
        out = []
        for token in ids:
            if token == self.eos_id:
                break
            if token not in self._special:
                out.append(int(token))
        return self._tok.decode(out, skip_special_tokens=True).strip()


def _hf_record(name_or_path: str) -> dict:
    """The JSON record of the fast tokenizer at ``name_or_path`` (see :class:`HFTokenizer`)."""
    from mmtrain.errors import UserError

    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UserError(HF_EXTRA) from None
    require_local_or_cached(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        detail = (str(err).splitlines() or [""])[0][:160]
        raise UserError(f"decoder.name_or_path={name_or_path}: no tokenizer could be loaded ({detail})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"decoder.name_or_path={name_or_path}: only fast (tokenizer.json) tokenizers are supported")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError(f"decoder.name_or_path={name_or_path}: the tokenizer has no eos token")
    bos = eos if tokenizer.bos_token_id is None else tokenizer.bos_token_id
    pad = eos if tokenizer.pad_token_id is None else tokenizer.pad_token_id
    return {
        "format": HF_FORMAT,
        "bos_id": int(bos),
        "eos_id": int(eos),
        "pad_id": int(pad),
        "tokenizer_json": tokenizer.backend_tokenizer.to_str(),
    }


def require_local_or_cached(name_or_path: str) -> None:
    """Refuse, in one line, a hub name that is neither a folder nor in the Hugging Face cache when the hub is off
    (``HF_HUB_OFFLINE=1``): otherwise ``from_pretrained`` would fail deep inside, or wait on the network."""
    import os

    if Path(name_or_path).is_dir() or os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("1", "true", "yes"):
        return
    from huggingface_hub import try_to_load_from_cache

    from mmtrain.errors import UserError

    cached = try_to_load_from_cache(name_or_path, "config.json")
    if not isinstance(cached, str):
        raise UserError(
            f"decoder.name_or_path={name_or_path}: not a folder and not in the Hugging Face cache, and HF_HUB_OFFLINE "
            "is set; give a local folder (save_pretrained) or download it first"
        )


def load_tokenizer(source: str | Path | bytes) -> Tokenizer | HFTokenizer:
    """The tokenizer of ``source``: serialised bytes (from a checkpoint or bundle) or a file, of either kind."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if data[:1] == b"{" and HF_FORMAT.encode() in data[:200]:
        return HFTokenizer(data)
    return Tokenizer(data)


@dataclass(frozen=True)
class TextIds:
    """The ids a captioner reads and writes around a caption: bos, eos, pad and the prompt after bos."""

    bos: int = BOS_ID
    eos: int = EOS_ID
    pad: int = PAD_ID
    prompt: tuple[int, ...] = ()

    @classmethod
    def of(cls, tokenizer: Tokenizer | HFTokenizer, prompt: str | None = None) -> TextIds:
        """The ids of ``tokenizer``, with ``prompt``'s tokens (none when empty)."""
        ids = tokenizer.tokens(prompt) if prompt else []
        return cls(tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tuple(ids))
