"""LoRA in a Hugging Face LM through peft, with state dict names that do not depend on it.

peft wraps each adapted layer, so ``x.weight`` becomes ``x.base_layer.weight``; the hooks here save it as ``x.weight``
and load it back into the wrapper, so a checkpoint of a run without adapters initialises a run with them.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn

from mmtrain.errors import UserError

BASE = ".base_layer."


def add_lora(lm: nn.Module, lora: dict) -> None:
    """Inject LoRA adapters into ``lm`` in place; only they train afterwards."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = lora.get("target_modules")
    config = LoraConfig(
        r=int(lora["r"]),
        lora_alpha=float(lora.get("alpha") or lora["r"]),
        lora_dropout=float(lora.get("dropout") or 0.0),
        target_modules=list(targets) if targets else None,
    )
    if config.target_modules is None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

        model_type = lm.config.model_type
        if model_type not in DEFAULTS:
            raise UserError(f"decoder.lora.target_modules: peft has no default for {model_type}; name the layers")
        config.target_modules = set(DEFAULTS[model_type])
    try:
        with warnings.catch_warnings():  # peft sets fan_in_fan_out itself for GPT-2's Conv1D, and says so
            warnings.simplefilter("ignore", UserWarning)
            inject_adapter_in_model(config, lm)
    except ValueError as err:
        raise UserError(f"decoder.lora: {(str(err).splitlines() or [''])[0][:160]}") from None
    for name, param in lm.named_parameters():
        param.requires_grad_(".lora_" in name)


def drop_base_layer(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
    """State dict hook: ``x.base_layer.weight`` (peft's wrapper) is saved as ``x.weight``."""
    for key in [k for k in state if k.startswith(prefix) and BASE in k]:
        state[key.replace(BASE, ".")] = state.pop(key)


def add_base_layer(module: nn.Module, state: dict, prefix: str, *args: Any) -> None:
    """Load pre-hook, the inverse of :func:`drop_base_layer` for the layers that carry an adapter now."""
    for real in [name for name, _ in _named_tensors(module) if BASE in name]:
        saved = prefix + real.replace(BASE, ".")
        if saved in state:
            state[prefix + real] = state.pop(saved)


def _named_tensors(module: nn.Module):
    yield from module.named_parameters(remove_duplicate=False)
    yield from module.named_buffers(remove_duplicate=False)
