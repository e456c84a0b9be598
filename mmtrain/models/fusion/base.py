"""The contract between image tokens and the decoder."""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol

from torch import Tensor

from mmtrain.errors import UserError


class FusionOutput(NamedTuple):
    """What the decoder consumes: a cross-attention memory, prefix embeddings, or both."""

    memory: Tensor | None  # (B, M, D) for cross-attention
    prefix: Tensor | None  # (B, P, D) placed before the text
    prefix_bidirectional: bool  # prefix-LM mask (early fusion) instead of a causal prefix
    coords: Tensor | None = None  # (P or M, 2): x, y in [-1, 1] of each prefix / memory token; None: no layout


class Fusion(Protocol):
    """Turns encoder tokens (B, N, in_dim) into what a decoder of width ``d_model`` reads."""

    uses_cross_attention: bool

    def __call__(self, image_tokens: Tensor) -> FusionOutput: ...


def grid_side(num_tokens: int) -> int:
    """Side of the square token grid in ``num_tokens``, allowing up to 8 leading extra tokens (a ViT's class or
    register tokens); 0 when the tokens are not such a grid."""
    side = math.isqrt(num_tokens)
    return side if num_tokens - side * side <= 8 else 0


def grid_coords(num_tokens: int) -> Tensor:
    """(num_tokens, 2) column and row of each token of a square grid, scaled to [-1, 1]; zeros for leading extra
    tokens (a ViT's class token), and all zeros when the tokens form no grid."""
    import torch

    side = grid_side(num_tokens)
    out = torch.zeros(num_tokens, 2)
    if side > 1:
        axis = torch.linspace(-1.0, 1.0, side)
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        out[num_tokens - side * side :] = torch.stack([cols.reshape(-1), rows.reshape(-1)], dim=1)
    return out


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


class TokenMerge:
    """Space-to-depth over a square token grid: each ``factor`` x ``factor`` block of tokens becomes one token whose
    features are the block's features side by side (Swin's patch merging, InternVL's pixel unshuffle).

    The token count falls by ``factor**2`` with nothing averaged away, so a fusion that runs its image tokens through
    transformer layers (early fusion, the prefix mapper) pays ``factor**2`` less for them. Leading extra tokens (a
    ViT's class token) are dropped when merging.

    Args:
        num_tokens: encoder tokens per image.
        in_dim: encoder token width.
        factor: block side (``fusion.merge``); 1 leaves the tokens as they are.
    """

    def __init__(self, num_tokens: int, in_dim: int, factor: int) -> None:
        if factor < 1:
            raise UserError(f"fusion.merge must be a positive integer, got {factor}")
        side = grid_side(num_tokens)
        if factor > 1 and (side == 0 or side % factor):
            raise UserError(
                f"fusion.merge={factor} needs a square grid of image tokens whose side it divides, got {num_tokens} tokens"
            )
        self.factor, self.side = factor, side
        self.num_tokens = num_tokens if factor == 1 else (side // factor) ** 2
        self.out_dim = in_dim * factor * factor

    def __call__(self, x: Tensor) -> Tensor:
        """(B, N, C) -> (B, N / factor**2, C * factor**2)."""
        f = self.factor
        if f == 1:
            return x
        b, n, c = x.shape
        s, m = self.side, self.side // f
        grid = x[:, n - s * s :].reshape(b, m, f, m, f, c).permute(0, 1, 3, 2, 4, 5)  # (B, m, m, f, f, C)
        return grid.reshape(b, m * m, f * f * c)
