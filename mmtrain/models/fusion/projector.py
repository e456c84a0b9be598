"""LLaVA's projector: every image token, through a small MLP, becomes one embedding of the LM's input sequence."""

from __future__ import annotations

from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import FusionOutput, TokenMerge, grid_coords, grid_side


class MLPProjector(nn.Module):
    """LLaVA-1.5's ``mlp2x_gelu`` projector: Linear -> GELU -> Linear per image token, into the LM's width.

    All image tokens become the prefix, which the LM reads causally, as LLaVA's does. With ``depth=1`` it is one linear
    layer (LLaVA-1's); with ``merge=2`` each 2x2 block of tokens is merged first (nanoVLM's pixel shuffle), so the LM
    reads a quarter of the tokens.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: encoder tokens per image (completed by the captioner).
        depth: linear layers, GELU between them.
        merge: merge each ``merge`` x ``merge`` block of the image grid into one token first (see :class:`TokenMerge`).
        class_token: keep a ViT's leading class token; LLaVA drops it (``mm_vision_select_feature: patch``).
    """

    uses_cross_attention = False

    def __init__(
        self, *, in_dim: int, d_model: int, num_tokens: int, depth: int = 2, merge: int = 1, class_token: bool = False
    ) -> None:
        super().__init__()
        if depth < 1:
            raise UserError(f"fusion.depth must be 1 or more, got {depth}")
        side = grid_side(num_tokens)
        self.skip = 0 if class_token or merge > 1 or side == 0 else num_tokens - side * side  # leading extra tokens
        self.merge = TokenMerge(num_tokens - self.skip, in_dim, merge)
        layers: list[nn.Module] = [nn.Linear(self.merge.out_dim, d_model)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(d_model, d_model)]
        self.net = nn.Sequential(*layers)
        self.num_tokens = self.merge.num_tokens  # prefix embeddings per image
        self.register_buffer("coords", grid_coords(self.num_tokens), persistent=False)  # (P, 2)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        prefix = self.net(self.merge(image_tokens[:, self.skip :]))  # (B, P, D)
        return FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=False, coords=self.coords)
