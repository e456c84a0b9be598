"""Early fusion: one transformer over [image tokens; text tokens] with a prefix-LM mask."""

from __future__ import annotations

from torch import Tensor, nn

from mmtrain.models.fusion.base import FusionOutput, grid_position_embedding


class ConcatFusion(nn.Module):
    """Projects every image token into the decoder's input sequence; image tokens see each other fully.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner).
    """

    uses_cross_attention = False

    def __init__(self, *, in_dim: int, d_model: int, num_tokens: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        self.type_embed = nn.Parameter(grid_position_embedding(num_tokens, d_model))  # (N, D) image positions

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        prefix = self.proj(image_tokens) + self.type_embed  # (B, N, D)
        return FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=True)
