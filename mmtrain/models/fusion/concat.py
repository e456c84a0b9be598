"""Early fusion: one transformer over [image tokens; text tokens] with a prefix-LM mask."""

from __future__ import annotations

from torch import Tensor, nn

from mmtrain.models.fusion.base import FusionOutput, TokenMerge, grid_coords, grid_position_embedding


class ConcatFusion(nn.Module):
    """Projects every image token into the decoder's input sequence; image tokens see each other fully.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner).
        merge: merge each ``merge`` x ``merge`` block of the image grid into one token before the decoder (see
            :class:`TokenMerge`); every decoder layer then runs ``merge**2`` fewer image tokens.
    """

    uses_cross_attention = False

    def __init__(self, *, in_dim: int, d_model: int, num_tokens: int, merge: int = 1) -> None:
        super().__init__()
        self.merge = TokenMerge(num_tokens, in_dim, merge)
        self.proj = nn.Sequential(nn.LayerNorm(self.merge.out_dim), nn.Linear(self.merge.out_dim, d_model))
        self.type_embed = nn.Parameter(grid_position_embedding(self.merge.num_tokens, d_model))  # (N', D) positions
        self.register_buffer("coords", grid_coords(self.merge.num_tokens), persistent=False)  # (N', 2)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        prefix = self.proj(self.merge(image_tokens)) + self.type_embed  # (B, N', D)
        return FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=True, coords=self.coords)
