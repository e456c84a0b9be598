"""Prefix fusion (ClipCap-style): a mapper turns the image into K prefix embeddings for a decoder-only LM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtrain.models.fusion.base import FusionOutput, grid_position_embedding


class PrefixFusion(nn.Module):
    """Maps image tokens to ``prefix_len`` embeddings placed before the caption.

    ``mapper="mlp"`` pools the tokens and expands the pooled vector through an MLP (ClipCap's MLP mapper);
    ``mapper="transformer"`` lets ``prefix_len`` learned queries read all tokens through a small transformer
    (ClipCap's transformer mapper), which keeps spatial detail.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner; unused by the MLP mapper).
        prefix_len: K, the number of prefix embeddings.
        mapper: ``mlp`` or ``transformer``.
        num_layers: transformer mapper depth.
        num_heads: transformer mapper heads.
    """

    uses_cross_attention = False

    def __init__(
        self,
        *,
        in_dim: int,
        d_model: int,
        num_tokens: int,
        prefix_len: int = 10,
        mapper: str = "transformer",
        num_layers: int = 2,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        if mapper not in ("mlp", "transformer"):
            raise ValueError(f"fusion.mapper must be 'mlp' or 'transformer', got {mapper!r}")
        self.prefix_len, self.d_model, self.mapper = prefix_len, d_model, mapper
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        if mapper == "mlp":
            hidden = d_model * prefix_len // 2
            self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, d_model * prefix_len))
        else:
            self.queries = nn.Parameter(torch.zeros(prefix_len, d_model))  # (K, D)
            self.pos = nn.Parameter(grid_position_embedding(num_tokens, d_model))  # (N, D)
            nn.init.trunc_normal_(self.queries, std=0.02)
            layer = nn.TransformerEncoderLayer(d_model, num_heads, 4 * d_model, 0.0, batch_first=True, norm_first=True)
            self.net = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        x = self.proj(image_tokens)  # (B, N, D)
        if self.mapper == "mlp":
            prefix = self.net(x.mean(dim=1)).view(-1, self.prefix_len, self.d_model)  # (B, K, D)
        else:
            queries = self.queries.expand(x.shape[0], -1, -1)  # (B, K, D)
            prefix = self.net(torch.cat([queries, x + self.pos], dim=1))[:, : self.prefix_len]  # (B, K, D)
        return FusionOutput(memory=None, prefix=self.norm(prefix), prefix_bidirectional=False)
