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


def grid_side(num_tokens: int) -> int:
    """Side of the square token grid in ``num_tokens``, allowing up to 8 leading extra tokens (a ViT's class or
    register tokens); 0 when the tokens are not such a grid."""
    import math

    side = math.isqrt(num_tokens)
    return side if num_tokens - side * side <= 8 else 0


def grid_position_embedding(num_tokens: int, dim: int) -> Tensor:
    """Fixed 2-D sine-cosine positions (num_tokens, dim) for a square token grid, rows then columns.

    Image tokens from a CNN carry little absolute position, and a small learned embedding starts near zero; these
    give every token its row and column from the first step, which spatial relations ("left of") depend on. Extra
    leading tokens (a ViT's class token) get zeros.
    """

    import torch

    side = grid_side(num_tokens)
    out = torch.zeros(num_tokens, dim)
    if side == 0 or dim < 4:
        return out
    quarter = dim // 4
    freqs = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1)))
    coords = torch.arange(side, dtype=torch.float32)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    angles_r = rows.reshape(-1, 1) * freqs  # (side*side, quarter)
    angles_c = cols.reshape(-1, 1) * freqs
    grid = torch.cat([angles_r.sin(), angles_r.cos(), angles_c.sin(), angles_c.cos()], dim=1)  # (side*side, 4q)
    out[num_tokens - side * side :, : grid.shape[1]] = grid
    return out
