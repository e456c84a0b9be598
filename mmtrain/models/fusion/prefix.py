"""Prefix fusion (ClipCap-style): a mapper turns the image into K prefix embeddings for a decoder-only LM."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.fusion.base import FusionOutput, TokenMerge, grid_coords, grid_position_embedding, grid_side


class PrefixFusion(nn.Module):
    """Maps image tokens to ``prefix_len`` embeddings placed before the caption.

    ``mapper="mlp"`` pools the tokens and expands the pooled vector through an MLP (ClipCap's MLP mapper);
    ``mapper="transformer"`` lets ``prefix_len`` learned queries read all tokens through a small transformer
    (ClipCap's transformer mapper), which keeps spatial detail; ``mapper="resampler"`` updates only the queries,
    which attend to each other and cross-attend to the image tokens (a Perceiver resampler), so the mapper's cost
    grows with ``prefix_len`` rather than with the number of image tokens.

    Args:
        in_dim: encoder token width (completed by the captioner).
        d_model: decoder width (completed by the captioner).
        num_tokens: number of image tokens (completed by the captioner; unused by the MLP mapper).
        prefix_len: K, the number of prefix embeddings.
        mapper: ``mlp``, ``transformer`` or ``resampler``.
        num_layers: transformer mapper depth.
        num_heads: transformer mapper heads.
        queries: ``learned`` (K constant queries, as ClipCap) or ``pooled`` (each query is a learned constant plus
            the average of one cell of a square grid over the image tokens, so query k starts out bound to region k;
            ``prefix_len`` must then be a square).
        bidirectional: let the prefix embeddings attend to each other in the decoder (a prefix-LM mask) instead of
            causally, as a GPT-style LM reads ClipCap's prefix.
        merge: merge each ``merge`` x ``merge`` block of the image grid into one token before the mapper (see
            :class:`TokenMerge`), so the transformer mapper runs ``merge**2`` fewer image tokens.
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
        queries: str = "learned",
        bidirectional: bool = False,
        merge: int = 1,
    ) -> None:
        super().__init__()
        self.merge = TokenMerge(num_tokens, in_dim, merge)
        num_tokens, in_dim = self.merge.num_tokens, self.merge.out_dim
        if mapper not in ("mlp", "transformer", "resampler"):
            raise UserError(f"fusion.mapper must be 'mlp', 'transformer' or 'resampler', got {mapper!r}")
        if queries not in ("learned", "pooled"):
            raise UserError(f"fusion.queries must be 'learned' or 'pooled', got {queries!r}")
        side = math.isqrt(prefix_len)
        if queries == "pooled" and side * side != prefix_len:
            raise UserError(f"fusion.queries=pooled needs a square fusion.prefix_len (4, 9, 16, ...), got {prefix_len}")
        if queries == "pooled" and not grid_side(num_tokens):
            raise UserError(f"fusion.queries=pooled needs a square grid of image tokens, got {num_tokens} tokens")
        if queries == "pooled" and mapper == "mlp":
            raise UserError("fusion.queries=pooled has no queries to start with fusion.mapper=mlp (it pools the image)")
        if mapper != "mlp" and (num_heads < 1 or d_model % num_heads):
            raise UserError(f"fusion.num_heads={num_heads} must divide the decoder width d_model={d_model}")
        self.prefix_len, self.d_model, self.mapper = prefix_len, d_model, mapper
        self.pool_side = side if queries == "pooled" else 0
        self.bidirectional = bidirectional
        self.proj = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, d_model))
        if mapper == "mlp":
            hidden = d_model * prefix_len // 2
            self.net = nn.Sequential(nn.Linear(d_model, hidden), nn.Tanh(), nn.Linear(hidden, d_model * prefix_len))
        else:
            self.queries = nn.Parameter(torch.zeros(prefix_len, d_model))  # (K, D)
            self.pos = nn.Parameter(grid_position_embedding(num_tokens, d_model))  # (N, D)
            nn.init.trunc_normal_(self.queries, std=0.02)
            # transformer: one stack over [queries; image tokens]; resampler: queries attend to the image tokens
            layer_type = nn.TransformerEncoderLayer if mapper == "transformer" else nn.TransformerDecoderLayer
            layer = layer_type(d_model, num_heads, 4 * d_model, 0.0, batch_first=True, norm_first=True)
            if mapper == "transformer":
                self.net = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
            else:
                self.net = nn.TransformerDecoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        # pooled queries start bound to the cells of a pool_side x pool_side grid: that is where they sit
        self.register_buffer("coords", grid_coords(prefix_len) if self.pool_side else None, persistent=False)

    def forward(self, image_tokens: Tensor) -> FusionOutput:
        x = self.proj(self.merge(image_tokens))  # (B, N', D)
        if self.mapper == "mlp":
            prefix = self.net(x.mean(dim=1)).view(-1, self.prefix_len, self.d_model)  # (B, K, D)
        else:
            x = x + self.pos
            queries = self.queries.expand(x.shape[0], -1, -1)  # (B, K, D)
            if self.pool_side:
                queries = queries + self._pool(x)
            if self.mapper == "transformer":
                prefix = self._transformer(torch.cat([queries, x], dim=1))  # (B, K, D)
            else:
                prefix = self.net(queries, x)  # (B, K, D)
        return FusionOutput(
            memory=None, prefix=self.norm(prefix), prefix_bidirectional=self.bidirectional, coords=self.coords
        )

    def _transformer(self, seq: Tensor) -> Tensor:
        """The transformer mapper over [queries; image tokens] (B, K+N, D); returns the queries' outputs (B, K, D).

        Only the queries' outputs are kept, so the last layer updates just them (the image tokens still lend it their
        keys and values): the same result as the full stack, without that layer's attention and MLP for N tokens.
        """
        *layers, last = self.net.layers
        for layer in layers:
            seq = layer(seq)
        h = last.norm1(seq)  # pre-norm layers (norm_first=True)
        q = seq[:, : self.prefix_len] + last.dropout1(
            last.self_attn(h[:, : self.prefix_len], h, h, need_weights=False)[0]
        )
        mlp = last.linear2(last.dropout(last.activation(last.linear1(last.norm2(q)))))
        return q + last.dropout2(mlp)

    def _pool(self, x: Tensor) -> Tensor:
        """Average the square grid of tokens in ``x`` (B, N, D) over ``pool_side`` x ``pool_side`` cells: (B, K, D).

        Leading tokens beyond the square (a ViT's class or register tokens) are left out of the pooling.
        """
        b, n, d = x.shape
        side = grid_side(n)
        grid = x[:, n - side * side :].transpose(1, 2).reshape(b, d, side, side)  # (B, D, S, S)
        pooled = nn.functional.adaptive_avg_pool2d(grid, self.pool_side)  # (B, D, s, s)
        return pooled.flatten(2).transpose(1, 2)  # (B, K, D)
