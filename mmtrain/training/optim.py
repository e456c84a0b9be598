"""AdamW parameter groups and the warmup-then-cosine schedule."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, *, lr: float, encoder_lr: float | None, weight_decay: float) -> list[dict]:
    """AdamW groups: no decay on norms, biases and embeddings; the encoder may have its own learning rate."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "embed" in name or "pos" in name.split(".")[-1] or "queries" in name
        groups.setdefault((name.startswith("encoder."), no_decay), []).append(param)
    out = []
    for (is_encoder, no_decay), params in sorted(groups.items()):
        group_lr = encoder_lr if (is_encoder and encoder_lr is not None) else lr
        out.append({"params": params, "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay})
    return out


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine decay to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / max(1, warmup_steps)
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, *, lr: float, encoder_lr: float | None, weight_decay: float, betas=(0.9, 0.999)):
    return torch.optim.AdamW(
        param_groups(model, lr=lr, encoder_lr=encoder_lr, weight_decay=weight_decay), betas=tuple(betas)
    )
