"""Q-Former-style fusion: learned queries cross-attend to image tokens; their outputs become the memory."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtrain.models.fusion.base import FusionOutput, grid_position_embedding


class QFormerFusion(nn.Module):
    """A few learned queries read the image through cross-attention layers; the decoder cross-attends to them.

    This compresses N image tokens to ``num_queries`` (BLIP-2's bottleneck) before the decoder sees them.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner).
        num_queries: learned queries.
        num_layers: query transformer depth.
        num_heads: attention heads.
    """

    uses_cross_attention = True

    def __init__(
        self,
        *,
        in_dim: int,
        d_model: int,
        num_tokens: int,
        num_queries: int = 16,
        num_layers: int = 2,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        self.pos = nn.Parameter(grid_position_embedding(num_tokens, d_model))  # (N, D)
        self.queries = nn.Parameter(torch.zeros(num_queries, d_model))  # (Q, D)
        nn.init.trunc_normal_(self.queries, std=0.02)
        layer = nn.TransformerDecoderLayer(d_model, num_heads, 4 * d_model, 0.0, batch_first=True, norm_first=True)
        self.net = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        memory = self.proj(image_tokens) + self.pos  # (B, N, D)
        queries = self.queries.expand(memory.shape[0], -1, -1)  # (B, Q, D)
        out = self.norm(self.net(queries, memory))  # (B, Q, D)
        return FusionOutput(memory=out, prefix=None, prefix_bidirectional=False)
