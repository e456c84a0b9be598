"""Cross-attention fusion: decoder layers attend to projected image tokens."""

from __future__ import annotations

from torch import Tensor, nn

from mmtrain.models.fusion.base import FusionOutput, grid_coords, grid_position_embedding


class CrossAttentionFusion(nn.Module):
    """Projects image tokens to the decoder width and adds a learned position per token.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens, for the learned positions (completed by the captioner).
    """

    uses_cross_attention = True

    def __init__(self, *, in_dim: int, d_model: int, num_tokens: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model), nn.Dropout(dropout))
        self.pos = nn.Parameter(grid_position_embedding(num_tokens, d_model))  # (N, D), learnable from 2-D sincos
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("coords", grid_coords(num_tokens), persistent=False)  # (N, 2)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        memory = self.norm(self.proj(image_tokens) + self.pos)  # (B, N, D)
        return FusionOutput(memory=memory, prefix=None, prefix_bidirectional=False, coords=self.coords)
