"""An exponential moving average (EMA) of a model's weights, kept beside the model and saved in its checkpoints."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class WeightEMA(nn.Module):
    """A frozen copy of ``model`` whose weights follow ``decay * ema + (1 - decay) * weights`` after each step.

    Up to ``start_step`` the copy takes the weights as they are (early weights move too fast to be worth averaging).
    Floating-point parameters and buffers are averaged; integer buffers (e.g. BatchNorm's batch counter) are copied.
    As a submodule of the LightningModule its weights land in the checkpoint's ``state_dict`` under ``ema.model.``,
    and its count of steps under ``ema._extra_state``, so a resumed run continues the same average.

    Args:
        model: the model to average; copied once, here.
        decay: weight of the running average at each step, in (0, 1).
        start_step: steps before averaging starts.
    """

    def __init__(self, model: nn.Module, *, decay: float, start_step: int = 0) -> None:
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema.decay must be in (0, 1) or null, got {decay}")
        self.model = copy.deepcopy(model).requires_grad_(False)
        self.decay, self.start_step, self.step = float(decay), int(start_step), 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold ``model``'s weights into the average; call once after each optimizer step."""
        self.step += 1
        target, seen = self.model.state_dict(), set()
        for name, current in model.state_dict().items():
            averaged = target[name]
            if averaged.data_ptr() in seen:  # tied weights appear under several names: average them once
                continue
            seen.add(averaged.data_ptr())
            if current.is_floating_point() and self.step > self.start_step:
                averaged.lerp_(current, 1.0 - self.decay)
            else:
                averaged.copy_(current)

    def get_extra_state(self) -> dict[str, Any]:
        return {"step": self.step}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
