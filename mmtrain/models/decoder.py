"""A transformer language model with tied embeddings, optional cross-attention and a KV cache.

The decoder reads token ids and what the fusion made of the image (:class:`FusionOutput`): an optional *prefix*
(embeddings placed before the text, from prefix or early fusion) and an optional cross-attention *memory*.
Sequences that share one image are grouped: ``group`` consecutive text rows belong to one image row, so beams and
several captions per image never copy the image. Cross-attention folds the group into the query axis; a prefix never
attends to the text, so its hidden states are computed once per image and only its keys/values are shared.

Options that were tried for one dataset live in :mod:`mmtrain.models.research`, as subclasses of these modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrain.errors import UserError
from mmtrain.models.attention import Attention

if TYPE_CHECKING:
    from mmtrain.models.fusion.base import FusionOutput


@dataclass
class KVCache:
    """Per-layer self-attention keys/values, and cross-attention keys/values computed once per image."""

    self_kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # each (N, H, L, dh)
    cross_kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)  # each (B, H, M, dh)
    length: int = 0  # positions already cached (prefix + text)
    group: int = 1  # text rows per image row
    rows: dict[str, Tensor] = field(default_factory=dict)  # other per-row state of a block, (N, ...) each

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append new keys/values (N, H, T, dh) of ``layer``; return all of that layer's (N, H, L+T, dh)."""
        if layer < len(self.self_kv):
            past_k, past_v = self.self_kv[layer]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            self.self_kv[layer] = (k, v)
        else:
            self.self_kv.append((k, v))
        return k, v

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of every per-row state (beam search); cross K/V is per image, untouched."""
        self.self_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.self_kv]
        self.rows = {name: state.index_select(0, index) for name, state in self.rows.items()}


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP.

    Args:
        attention: makes each attention from (d_model, num_heads, dropout); a subclass of :class:`Attention`.
    """

    def __init__(
        self,
        *,
        d_model: int,
        num_heads: int,
        mlp_ratio: float,
        dropout: float,
        cross_attention: bool,
        attention: Callable[[int, int, float], Attention] = Attention,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = attention(d_model, num_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model) if cross_attention else None
        self.cross_attn = attention(d_model, num_heads, dropout) if cross_attention else None
        self.norm3 = nn.LayerNorm(d_model)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(
        self, x: Tensor, mask: Tensor | None, cache: KVCache | None, layer: int, cross_kv: tuple | None, group: int
    ) -> Tensor:
        """Text rows ``x`` (N, T, D) attending causally (``mask``) to themselves and to what ``cache`` holds."""
        x = x + self.attend_self(self.norm_text(x, cache, layer), mask, cache, layer)
        return self.cross_and_mlp(x, cross_kv, group)

    def norm_text(self, x: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        """The text (N, T, D) as self-attention reads it (a subclass may transform it further)."""
        return self.norm1(x)

    def prefix_keys_values(self, prefix: Tensor, image: FusionOutput) -> tuple[nn.Module, Tensor, Tensor, Tensor]:
        """The block whose weights the prefix (B, P, D) goes through, the normalised prefix, its keys and values
        (B, H, P, dh). Here the text's own weights; a subclass may give the prefix weights of its own."""
        hp = self.norm1(prefix)
        return self, hp, *self.self_attn.keys_values(hp)

    def attend_self(self, h: Tensor, mask: Tensor | None, cache: KVCache | None, layer: int) -> Tensor:
        q = self.self_attn.queries(h)  # (N, H, T, dh)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            k, v = cache.extend(layer, k, v)  # (N, H, L, dh)
        return self.self_attn.attend(q, k, v, mask if h.shape[1] > 1 else None)  # one new query sees all: no mask

    def cross_and_mlp(self, x: Tensor, cross_kv: tuple[Tensor, Tensor] | None, group: int) -> Tensor:
        if self.cross_attn is not None and cross_kv is not None:
            x = x + self.cross_attn.cross(self.norm2(x), cross_kv, group)
        return x + self.mlp(self.norm3(x))

    def forward_with_prefix(
        self,
        prefix: Tensor,
        text: Tensor,
        image: FusionOutput,
        *,
        layer: int,
        text_mask: Tensor,
        cache: KVCache | None,
        cross_kv: tuple[Tensor, Tensor] | None,
        group: int,
        update_prefix: bool,
    ) -> tuple[Tensor, Tensor]:
        """One block over a per-image ``prefix`` (B, P, D) and its ``group`` text rows each, ``text`` (B*G, T, D).

        The prefix attends only to itself (fully when ``image.prefix_bidirectional``, else causally); each text row
        attends to its image's prefix and causally to itself through ``text_mask`` (T, P+T). Without
        ``update_prefix`` (the last block: nothing reads its prefix output) the prefix comes back unchanged.
        """
        own, hp, kp, vp = self.prefix_keys_values(prefix, image)  # kp, vp: (B, H, P, dh)
        ht = self.norm_text(text, cache, layer)
        text = text + attend_text(self.self_attn, ht, kp, vp, text_mask, cache, group)
        text = self.cross_and_mlp(text, cross_kv, group)
        if not update_prefix:
            return prefix, text
        causal = not image.prefix_bidirectional
        prefix = prefix + own.self_attn.attend(own.self_attn.queries(hp), kp, vp, None, causal=causal)
        return own.cross_and_mlp(prefix, cross_kv, 1), text


def attend_text(
    attn: Attention, ht: Tensor, kp: Tensor, vp: Tensor, text_mask: Tensor, cache: KVCache | None, group: int
) -> Tensor:
    """Self-attention of normalised text ``ht`` (B*G, T, D) over its image's prefix keys/values (B, H, P, dh) and
    itself; the joined keys/values start the layer's cache."""
    kt, vt = attn.keys_values(ht)  # (B*G, H, T, dh)
    k = torch.cat([kp.repeat_interleave(group, dim=0), kt], dim=2)  # (B*G, H, P+T, dh)
    v = torch.cat([vp.repeat_interleave(group, dim=0), vt], dim=2)
    if cache is not None:
        cache.self_kv.append((k, v))
    return attn.attend(attn.queries(ht), k, v, text_mask)


class TransformerDecoder(nn.Module):
    """Transformer LM with learned positions, tied input/output embeddings and an incremental step.

    Args:
        vocab_size: size of the tokenizer's vocabulary (completed by the captioner).
        d_model: width.
        num_layers: number of blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``d_model``.
        dropout: dropout in attention and MLP.
        max_len: the longest prefix + caption, in positions.
        cross_attention: add a cross-attention sublayer to every block (completed by the captioner from the fusion).
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        d_model: int = 256,
        num_layers: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_len: int = 128,
        cross_attention: bool = True,
    ) -> None:
        super().__init__()
        if num_heads < 1 or d_model % num_heads:
            raise UserError(f"decoder.d_model={d_model} must be a multiple of decoder.num_heads={num_heads}")
        self.d_model, self.max_len = d_model, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        shape = {"d_model": d_model, "num_heads": num_heads, "mlp_ratio": mlp_ratio, "dropout": dropout}
        self.layers = nn.ModuleList(self.block(i, num_layers, cross_attention, **shape) for i in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.01)

    def block(self, index: int, num_layers: int, cross_attention: bool, **shape) -> Block:
        """The block at ``index`` of ``num_layers`` (a subclass may build another kind)."""
        return Block(cross_attention=cross_attention, **shape)

    def check_fusion(self, fusion: nn.Module) -> None:
        """Refuse, in one line, a fusion whose output this decoder cannot read; the plain decoder reads them all."""

    @property
    def cross_attention(self) -> bool:
        return self.layers[0].cross_attn is not None

    def logits(self, h: Tensor) -> Tensor:
        return F.linear(self.norm(h), self.embed.weight)  # tied output embedding

    def cross_kv(self, image: FusionOutput | None) -> list[tuple[Tensor, Tensor] | None]:
        """Each layer's cross-attention keys/values of ``image.memory`` (B, M, D), computed once per image."""
        if image is None or image.memory is None or not self.cross_attention:
            return [None] * len(self.layers)
        return [layer.cross_attn.keys_values(image.memory) for layer in self.layers]

    def _run(self, x: Tensor, mask: Tensor | None, cache: KVCache | None, cross: list, group: int) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, mask, cache, i, cross[i], group)
        return x

    def _embed(self, input_ids: Tensor, start: int) -> Tensor:
        """Token plus position embeddings (N, T, D) of ``input_ids`` (N, T) placed from position ``start``."""
        end = start + input_ids.shape[1]
        if end > self.max_len:
            raise ValueError(f"sequence of {end} positions exceeds decoder.max_len={self.max_len}")
        return self.drop(self.embed(input_ids) + self.pos(torch.arange(start, end, device=input_ids.device)))

    def forward(
        self, input_ids: Tensor, image: FusionOutput | None = None, *, group: int = 1, cache: KVCache | None = None
    ) -> Tensor:
        """Logits (N, T, V) for the text positions of ``input_ids`` (N, T), given the fused ``image``.

        ``image.prefix`` (N/group, P, D) and ``image.memory`` (N/group, M, D) are per image; without ``image`` the
        decoder is a plain LM. With ``cache`` the call is a prefill: :meth:`step` then continues one token at a time.
        """
        cross = self.cross_kv(image)
        prefix = None if image is None else image.prefix
        p, t = (0 if prefix is None else prefix.shape[1]), input_ids.shape[1]
        if cache is not None:
            cache.cross_kv, cache.group, cache.length = cross, group, p + t
        if prefix is None:
            x = self._embed(input_ids, 0)  # (N, T, D)
            mask = prefix_lm_mask(0, t, bidirectional=False, device=x.device)
            return self.logits(self._run(x, mask, cache, cross, group))
        xt = self._embed(input_ids, p)  # (B*G, T, D)
        xp = self.drop(prefix.to(xt.dtype) + self.pos.weight[:p])  # (B, P, D)
        text_mask = prefix_lm_mask(p, t, bidirectional=image.prefix_bidirectional, device=xt.device)[p:]  # (T, P+T)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            xp, xt = layer.forward_with_prefix(
                xp,
                xt,
                image,
                layer=i,
                text_mask=text_mask,
                cache=cache,
                cross_kv=cross[i],
                group=group,
                update_prefix=i < last,
            )
        return self.logits(xt)

    def step(self, input_ids: Tensor, cache: KVCache) -> Tensor:
        """Logits (N, V) for one new token per row (N, 1), extending ``cache``."""
        x = self._embed(input_ids, cache.length)
        h = self._run(x, None, cache, cache.cross_kv, cache.group)
        cache.length += 1
        return self.logits(h[:, -1])


def prefix_lm_mask(prefix_len: int, text_len: int, *, bidirectional: bool, device: torch.device) -> Tensor:
    """Boolean attention mask (L, L), True where attention is allowed.

    Text is causal; the prefix sees itself fully when ``bidirectional`` (prefix-LM, early fusion), else causally.
    """
    total = prefix_len + text_len
    mask = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    if bidirectional and prefix_len:
        mask[:prefix_len, :prefix_len] = True
    return mask


def init_weights(module: nn.Module) -> None:
    """Truncated-normal init for linear layers, as in GPT-style LMs."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
