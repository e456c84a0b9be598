"""The contract between image tokens and the decoder."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from torch import Tensor


class FusionOutput(NamedTuple):
    """What the decoder consumes: a cross-attention memory, prefix embeddings, or both."""

    memory: Tensor | None  # (B, M, D) for cross-attention
    prefix: Tensor | None  # (B, P, D) placed before the text
    prefix_bidirectional: bool  # prefix-LM mask (early fusion) instead of a causal prefix


class Fusion(Protocol):
    """Turns encoder tokens (B, N, in_dim) into what a decoder of width ``d_model`` reads."""

    uses_cross_attention: bool

    def __call__(self, image_tokens: Tensor) -> FusionOutput: ...
