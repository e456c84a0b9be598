"""ClipCap's mappers (Mokady et al., 2021): the image's global embedding becomes K prefix embeddings for an LM.

Both read one vector per image, the CLIP embedding in the paper. Here that is the encoder's class token when it has
one (a CLIP ViT from timm, whose final norm it has been through), otherwise the mean of its tokens. timm's CLIP tower
stops before CLIP's linear image projection (768 -> 512 for ViT-B/32); the mapper's first linear layer takes its
place, so nothing is lost. SigLIP has no class token: its attention-pooling head is dropped, and the mean is used.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import FusionOutput, grid_side

POOLS = ("auto", "cls", "mean")


def uses_class_token(num_tokens: int, pool: str) -> bool:
    """Whether ``pool`` reads the class token (the first of ``num_tokens``) rather than the mean of all tokens.

    ``auto`` reads it when the tokens are a square grid after some leading extra tokens (a ViT's class token).
    """
    if pool not in POOLS:
        raise UserError(f"fusion.pool must be one of {', '.join(POOLS)}, got {pool!r}")
    has_class_token = num_tokens - grid_side(num_tokens) ** 2 > 0 and grid_side(num_tokens) > 0
    if pool == "cls" and not has_class_token:
        raise UserError(
            f"fusion.pool=cls needs an encoder with a class token (a CLIP ViT); this one gives {num_tokens} grid "
            "tokens: use fusion.pool=mean"
        )
    return pool == "cls" or (pool == "auto" and has_class_token)


class ClipCapMLP(nn.Module):
    """ClipCap's MLP mapper: Linear -> tanh -> Linear from the global embedding to K embeddings at once.

    The hidden width is ``K * d_model / 2``, as in ClipCap, so the mapper is large (32M parameters for K=10 from
    CLIP ViT-B/32's 768 into GPT-2's 768). The paper pairs it with a fine-tuned LM.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: encoder tokens per image (completed by the captioner); decides where the global embedding is.
        prefix_len: K, the number of prefix embeddings.
        pool: ``auto`` (the class token when there is one, else the mean), ``cls`` or ``mean``.
    """

    uses_cross_attention = False

    def __init__(self, *, in_dim: int, d_model: int, num_tokens: int, prefix_len: int = 10, pool: str = "auto") -> None:
        super().__init__()
        self.class_token = uses_class_token(num_tokens, pool)
        self.prefix_len, self.d_model = prefix_len, d_model
        hidden = d_model * prefix_len // 2
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, d_model * prefix_len))

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        embedding = image_tokens[:, 0] if self.class_token else image_tokens.mean(dim=1)  # (B, C)
        prefix = self.net(embedding).view(-1, self.prefix_len, self.d_model)  # (B, K, D)
        return FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=False)


class ClipCapTransformer(nn.Module):
    """ClipCap's transformer mapper, the one paired with a frozen LM.

    The global embedding is projected to ``clip_len`` tokens; K learned constant tokens follow them through a
    transformer (8 layers, 8 heads, ReLU MLPs of twice the width, pre-norm, as ClipCap's); the outputs at the constant
    positions are the prefix. ClipCap's README trains it with K = clip_len = 40.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: encoder tokens per image (completed by the captioner).
        prefix_len: K, the number of learned constants and of prefix embeddings.
        clip_len: tokens the global embedding is projected to.
        num_layers: transformer depth.
        num_heads: attention heads; must divide ``d_model``.
        mlp_ratio: MLP width over ``d_model``.
        pool: ``auto``, ``cls`` or ``mean`` (see :class:`ClipCapMLP`).
    """

    uses_cross_attention = False

    def __init__(
        self,
        *,
        in_dim: int,
        d_model: int,
        num_tokens: int,
        prefix_len: int = 10,
        clip_len: int = 10,
        num_layers: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 2.0,
        pool: str = "auto",
    ) -> None:
        super().__init__()
        if num_heads < 1 or d_model % num_heads:
            raise UserError(f"fusion.num_heads={num_heads} must divide the decoder width d_model={d_model}")
        self.class_token = uses_class_token(num_tokens, pool)
        self.clip_len, self.d_model = clip_len, d_model
        self.linear = nn.Linear(in_dim, clip_len * d_model)
        self.prefix_const = nn.Parameter(torch.randn(prefix_len, d_model))  # (K, D), unit normal as ClipCap's
        layer = nn.TransformerEncoderLayer(
            d_model, num_heads, int(d_model * mlp_ratio), 0.0, activation="relu", batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        embedding = image_tokens[:, 0] if self.class_token else image_tokens.mean(dim=1)  # (B, C)
        b = embedding.shape[0]
        projected = self.linear(embedding).view(b, self.clip_len, self.d_model)  # (B, L, D)
        seq = torch.cat([projected, self.prefix_const.expand(b, -1, -1)], dim=1)  # (B, L+K, D)
        prefix = self.transformer(seq)[:, self.clip_len :]  # (B, K, D)
        return FusionOutput(memory=None, prefix=prefix, prefix_bidirectional=False)
