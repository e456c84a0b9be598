"""A Hugging Face causal LM as the captioner's decoder: the image goes in as prefix embeddings before the text, or,
in an LM whose architecture has cross-attention layers (GPT-2), as a memory they attend to.

The LM is loaded with ``AutoModelForCausalLM.from_pretrained`` from a hub name or a local folder. The fusion's
prefix (B, P, D) and the text's own embeddings are joined into ``inputs_embeds``; a fusion's memory (B, M, D) goes in
as ``encoder_hidden_states`` (see :mod:`mmtrain.models.hf_cross_attention`). Generation runs on the LM's own KV cache.
The LM may be frozen, or adapted with LoRA through peft (only the adapters train); cross-attention layers, new to the
LM, always train. Its weights are never re-initialised by the captioner (``initialises_itself``).

State dict names do not depend on LoRA: peft's ``base_layer`` wrapper is left out of them, so a checkpoint of a run
without adapters initialises a run with them (``init_from``), and the adapters start as peft makes them
(:mod:`mmtrain.models.hf_lora`).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.hf_cross_attention import PREFIX_FUSIONS, add_cross_attention
from mmtrain.models.hf_lora import BASE, add_base_layer, add_lora, drop_base_layer
from mmtrain.tokens import HF_EXTRA, require_local_or_cached

if TYPE_CHECKING:
    from mmtrain.models.fusion.base import FusionOutput

log = logging.getLogger(__name__)


@dataclass
class HFCache:
    """The LM's own cache (``past_key_values``) and what the decoding strategies read of it."""

    past: Any = None
    length: int = 0  # positions cached (prefix + text)
    group: int = 1  # text rows per image row (beam search sets it; the LM's cache is per row already)
    memory: Tensor | None = None  # (N, M, D) the cross-attention memory of each row, which every step passes again

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of the cache (beam search); the LM's cache reorders its cross-attention part too."""
        self.past.reorder_cache(index)
        if self.memory is not None:
            self.memory = self.memory.index_select(0, index)  # (N', M, D)


class HFCausalLMDecoder(nn.Module):
    """A pretrained (or saved random-init) causal LM reading prefix embeddings or a cross-attention memory.

    Args:
        vocab_size: the tokenizer's vocabulary size (completed by the captioner); at most the LM's embedding rows.
        name_or_path: hub name or folder of the LM, as ``from_pretrained`` takes it.
        freeze: keep the LM's own weights fixed (the fusion and new cross-attention layers still train).
        lora: ``r`` (0: off), ``alpha``, ``dropout``, ``target_modules`` (None: peft's default for the architecture).
            With ``r`` > 0 only the adapters of the LM (and its cross-attention layers) train, whatever ``freeze``
            says.
        gradient_checkpointing: recompute the LM's activations in the backward pass (less memory, more time).
        pretrained: load the LM's weights; False builds it from its config only (a checkpoint supplies them).
        lm_config: the LM's config as a dict (fit records it in checkpoints); with ``pretrained=False`` the LM is built
            from it, so a checkpoint loads without ``name_or_path``'s folder.
        cross_attention: with cross-attention layers, for a fusion that gives a memory (completed by the captioner);
            an LM whose architecture has none is refused in one line.
    """

    initialises_itself = True  # the captioner leaves these weights as loaded, and builds this decoder once

    def __init__(
        self,
        *,
        vocab_size: int,
        name_or_path: str,
        freeze: bool = True,
        lora: dict | None = None,
        gradient_checkpointing: bool = False,
        pretrained: bool = True,
        lm_config: dict | None = None,
        cross_attention: bool = False,
    ) -> None:
        super().__init__()
        self.name_or_path = str(name_or_path)
        self.lm, new = load_lm(
            self.name_or_path, pretrained=pretrained, config=lm_config, cross_attention=cross_attention
        )
        self.lm.train()  # loaded in eval mode
        self.cross_attention = bool(new)
        self.d_model = self.lm.get_input_embeddings().embedding_dim
        rows = self.lm.get_input_embeddings().num_embeddings
        if vocab_size > rows:
            raise UserError(f"decoder.name_or_path={name_or_path}: tokenizer has {vocab_size} ids, the LM {rows}")
        self.lm.requires_grad_(not freeze)
        lora = dict(lora or {})
        if int(lora.get("r") or 0) > 0:
            add_lora(self.lm, lora)
        for name, param in self.lm.named_parameters():
            if name.replace(BASE, ".") in new:  # new layers: nothing pretrained to keep
                param.requires_grad_(True)
        if new and pretrained:
            log.info("%s: its %d cross-attention tensors are new, from random init; they train", name_or_path, len(new))
        if gradient_checkpointing:
            self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self._cache_arg = "cache" if "cache" in inspect.signature(self.lm.forward).parameters else "past_key_values"
        self.register_state_dict_post_hook(drop_base_layer)
        self.register_load_state_dict_pre_hook(add_base_layer)

    def check_fusion(self, fusion: nn.Module) -> None:
        """Refuse, in one line, a fusion that gives a memory when the LM was built without cross-attention."""
        if getattr(fusion, "uses_cross_attention", False) and not self.cross_attention:
            raise UserError(
                f"decoder=hf_causal_lm was built without cross-attention layers for this fusion: use {PREFIX_FUSIONS}"
            )

    def new_cache(self) -> HFCache:
        return HFCache()

    def forward(
        self, input_ids: Tensor, image: FusionOutput | None = None, *, group: int = 1, cache: HFCache | None = None
    ) -> Tensor:
        """Logits (N, T, V) for the text positions of ``input_ids`` (N, T) after the image's prefix (N/group, P, D),
        or attending to its memory (N/group, M, D).

        A fusion's ``prefix_bidirectional`` (prefix embeddings that see each other) is passed to the LM as a 4-D
        attention mask; the text is causal. With ``cache`` the call is a prefill: :meth:`step` then continues one
        token at a time (a new token sees every position, so steps need no mask).
        """
        text = self.lm.get_input_embeddings()(input_ids)  # (N, T, D)
        prefix = None if image is None else image.prefix
        memory = None if image is None or not self.cross_attention else image.memory
        inputs = {}
        if prefix is not None:
            prefix = prefix.to(text.dtype).repeat_interleave(group, dim=0)  # (N, P, D)
            text = torch.cat([prefix, text], dim=1)  # (N, P+T, D)
            if image.prefix_bidirectional:
                inputs["attention_mask"] = prefix_mask(prefix.shape[1], text.shape[:2], text.device)  # (N, 1, L, L)
        if memory is not None:
            inputs["encoder_hidden_states"] = memory.to(text.dtype).repeat_interleave(group, dim=0)  # (N, M, D)
        out = self._run(inputs_embeds=text, cache=cache, keep=input_ids.shape[1], **inputs)
        if cache is not None:
            cache.length, cache.group = text.shape[1], group
            cache.memory = inputs.get("encoder_hidden_states")
        return out  # (N, T, V)

    def step(self, input_ids: Tensor, cache: HFCache) -> Tensor:
        """Logits (N, V) for one new token per row (N, 1), extending ``cache``.

        The memory goes in again: the LM runs its cross-attention layers only when given one, and reads their keys
        and values from ``cache``.
        """
        memory = {} if cache.memory is None else {"encoder_hidden_states": cache.memory}
        logits = self._run(input_ids=input_ids, cache=cache, keep=1, **memory)  # (N, 1, V)
        cache.length += 1
        return logits[:, -1]

    def _run(self, *, cache: HFCache | None, keep: int, **inputs: Tensor) -> Tensor:
        """The LM's logits for its last ``keep`` positions, reading and refreshing ``cache`` when given."""
        kwargs = {self._cache_arg: None if cache is None else cache.past}
        out = self.lm(**inputs, **kwargs, use_cache=cache is not None, logits_to_keep=keep)
        if cache is not None:
            cache.past = out["cache"] if "cache" in out else out["past_key_values"]
        return out.logits

    @torch.no_grad()
    def merged_state_dict(self) -> dict[str, Tensor]:
        """The weights with every LoRA adapter folded into the layer it adapts (names as without LoRA)."""
        state = self.state_dict()
        for name, module in self.lm.named_modules():
            if hasattr(module, "get_delta_weight") and hasattr(module, "base_layer"):
                key = f"lm.{name}.weight"
                state[key] = state[key] + module.get_delta_weight("default").to(state[key].dtype)
        return {k: v for k, v in state.items() if ".lora_" not in k}


def prefix_mask(prefix_len: int, shape: torch.Size, device: torch.device) -> Tensor:
    """Boolean mask (N, 1, L, L), True where attention is allowed: causal, and the prefix sees itself fully."""
    n, length = shape
    mask = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    mask[:prefix_len, :prefix_len] = True
    return mask.expand(n, 1, length, length)


def load_lm(
    name_or_path: str, *, pretrained: bool, config: dict | None = None, cross_attention: bool = False
) -> tuple[nn.Module, frozenset[str]]:
    """The causal LM at ``name_or_path``, with its weights, or (``pretrained=False``) built from its ``config`` dict
    when given, else from the config at ``name_or_path``; with ``cross_attention``, built with cross-attention layers.

    Returns:
        The LM, and the names of the parameters its cross-attention layers add (empty without them).
    """
    try:
        import peft  # noqa: F401 - checked here so that a missing extra is one line before any work
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError:
        raise UserError(HF_EXTRA) from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not pretrained and config:
        settings = {k: v for k, v in config.items() if k != "model_type"}
        lm_config = AutoConfig.for_model(config["model_type"], **settings)
        new = add_cross_attention(lm_config) if cross_attention else frozenset()
        return AutoModelForCausalLM.from_config(lm_config), new
    require_local_or_cached(name_or_path)
    try:
        lm_config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as err:
        raise UserError(f"decoder.name_or_path={name_or_path}: no causal LM could be loaded ({_first(err)})") from None
    new = add_cross_attention(lm_config) if cross_attention else frozenset()
    try:
        if pretrained:
            return AutoModelForCausalLM.from_pretrained(name_or_path, config=lm_config, dtype=torch.float32), new
        return AutoModelForCausalLM.from_config(lm_config, dtype=torch.float32), new
    except (OSError, ValueError) as err:
        raise UserError(f"decoder.name_or_path={name_or_path}: no causal LM could be loaded ({_first(err)})") from None


def _first(err: Exception) -> str:
    return (str(err).splitlines() or [""])[0][:160]


def bundle_config(model_config: dict) -> dict:
    """``model_config`` as a bundle saves it: the LM read from the bundle's ``lm`` folder, its LoRA merged."""
    decoder = dict(model_config["decoder"])
    decoder.update(name_or_path="lm", lora={**(decoder.get("lora") or {}), "r": 0}, lm_config=None)
    return {**model_config, "decoder": decoder}


def save_lm_files(decoder: HFCausalLMDecoder, tokenizer: Any, folder: Path) -> None:
    """Write the LM's config and the tokenizer's files (``save_pretrained``) to ``folder``, replaced whole."""
    import json
    import os
    import shutil
    import tempfile

    from tokenizers import Tokenizer as Backend
    from transformers import PreTrainedTokenizerFast

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".lm-", dir=folder.parent))
    record = json.loads(tokenizer.model_bytes)
    backend = Backend.from_str(record["tokenizer_json"])
    names = {key: backend.id_to_token(record[f"{key}_id"]) for key in ("bos", "eos", "pad")}
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=names["bos"], eos_token=names["eos"], pad_token=names["pad"]
    )
    fast.save_pretrained(staging)
    decoder.lm.config.save_pretrained(staging)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(staging, folder)


def record_lm_config(model_config: dict, decoder: nn.Module) -> None:
    """Put the LM's config into ``model_config``'s decoder node (saved in checkpoints), so that loading a checkpoint
    builds the LM without reading ``name_or_path`` again."""
    if isinstance(decoder, HFCausalLMDecoder):
        model_config["decoder"]["lm_config"] = decoder.lm.config.to_dict()
