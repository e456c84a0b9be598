"""Cross-attention layers in a Hugging Face causal LM, where its architecture has them.

Whether an LM takes them is read from the model, not from a list of names: its config is asked for them
(``add_cross_attention``, as transformers' ``VisionEncoderDecoderModel`` does), and the architecture honours that when
the model so built has parameters the plain one lacks and its forward takes ``encoder_hidden_states``. GPT-2 and its
family do; Llama, Qwen, OPT and most decoder-only LMs do not. The new layers are not in a pretrained checkpoint: they
start from random init and always train.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from mmtrain.errors import UserError

PREFIX_FUSIONS = "fusion=prefix, concat, clipcap_mlp, clipcap_transformer or llava_projector"


def add_cross_attention(config: Any) -> frozenset[str]:
    """Ask ``config`` (the LM's ``PretrainedConfig``, changed in place) for cross-attention layers.

    Both models are built on the meta device (no memory, no weights) to compare their parameters.

    Returns:
        The names of the parameters the layers add (as ``named_parameters`` of the LM gives them).

    Raises:
        UserError: in one line, naming the fusions that work, when the architecture has no such layers.
    """
    from transformers import AutoModelForCausalLM

    plain = copy.deepcopy(config)
    plain.add_cross_attention = False
    config.add_cross_attention = True
    with torch.device("meta"):
        shaped = AutoModelForCausalLM.from_config(config)
        names = {n for n, _ in shaped.named_parameters()} - {
            n for n, _ in AutoModelForCausalLM.from_config(plain).named_parameters()
        }
    if not names or "encoder_hidden_states" not in inspect.signature(shaped.forward).parameters:
        raise UserError(
            f"decoder=hf_causal_lm: {type(shaped).__name__} ({config.model_type}) has no cross-attention layers for "
            f"fusion=cross_attention or qformer: use {PREFIX_FUSIONS}"
        )
    return frozenset(names)
