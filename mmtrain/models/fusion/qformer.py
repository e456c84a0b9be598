"""Q-Former-style fusion: learned queries read the image; the decoder cross-attends to the queries' outputs."""

from __future__ import annotations

import math

from torch import Tensor

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.models.fusion.prefix import PrefixFusion


class QFormerFusion(PrefixFusion):
    """A few learned queries read the image through cross-attention layers; the decoder cross-attends to them.

    This compresses N image tokens to ``num_queries`` (BLIP-2's bottleneck) before the decoder sees them. The queries
    are prefix fusion's resampler mapper (one implementation); only where its output goes differs: a cross-attention
    memory here, embeddings before the text there.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner).
        num_queries: learned queries.
        num_layers: query transformer depth.
        num_heads: attention heads.
        queries: ``learned`` or ``pooled`` (see :class:`PrefixFusion`).
        merge: merge each ``merge`` x ``merge`` block of the image grid into one token before the queries read it.
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
        queries: str = "learned",
        merge: int = 1,
    ) -> None:
        if queries == "pooled" and math.isqrt(num_queries) ** 2 != num_queries:
            raise UserError(
                f"fusion.queries=pooled needs a square fusion.num_queries (4, 9, 16, ...), got {num_queries}"
            )
        super().__init__(
            in_dim=in_dim,
            d_model=d_model,
            num_tokens=num_tokens,
            prefix_len=num_queries,
            mapper="resampler",
            num_layers=num_layers,
            num_heads=num_heads,
            queries=queries,
            merge=merge,
        )

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        queries = super().forward(image_tokens).prefix  # (B, Q, D)
        return FusionOutput(memory=queries, prefix=None, prefix_bidirectional=False, coords=self.coords)
