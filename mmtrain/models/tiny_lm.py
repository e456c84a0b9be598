"""A small random-init GPT-2 and a byte-level BPE tokenizer trained on captions, saved as a Hugging Face folder.

For trying ``decoder=hf_causal_lm`` without the hub (``experiment=shapes_hf_prefix``, ``scripts/make_tiny_lm.py``)
and for the tests: the folder loads through the same ``from_pretrained`` path as a downloaded model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

END = "<|endoftext|>"  # GPT-2's one special token: bos, eos and (mmtrain pads with eos) padding


def write_tiny_lm(
    captions: Iterable[str],
    out: str | Path,
    *,
    vocab_size: int = 512,
    n_embd: int = 32,
    n_layer: int = 2,
    n_head: int = 2,
    n_positions: int = 128,
    dropout: float = 0.1,
    seed: int = 0,
) -> Path:
    """Train the tokenizer on ``captions``, build a GPT-2 of this shape with random weights, save both to ``out``.

    The byte-level alphabet takes 256 ids and the special token one: ``vocab_size`` must be well above 257 for the
    tokenizer to learn merges (words); at 257 or below it is character-level, and captions get 4-5x longer.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(list(captions), trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=END, eos_token=END)
    end = tokenizer.convert_tokens_to_ids(END)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_positions=n_positions,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=end,
        eos_token_id=end,
    )
    torch.manual_seed(seed)
    out = Path(out)
    GPT2LMHeadModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
