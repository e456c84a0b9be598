"""A transformer language model with tied embeddings, optional cross-attention and a KV cache.

The decoder reads three things: token ids, an optional *prefix* (embeddings placed before the text, from prefix or
early fusion) and an optional cross-attention *memory* (image tokens). Sequences that share one image are grouped:
``group`` consecutive rows of the text batch belong to one memory row, and cross-attention folds them into the query
axis instead of copying the memory, so beams and multiple captions per image never duplicate image keys/values.
A prefix is likewise one row per image: it never attends to the text, so its hidden states are computed once per image
and only its keys/values are shared with the ``group`` text rows that follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class KVCache:
    """Per-layer self-attention keys/values plus cross-attention keys/values computed once per image."""

    self_kv: list[tuple[Tensor, Tensor]] = field(default_factory=list)  # each (N, H, L, dh)
    cross_kv: list[tuple[Tensor, Tensor] | None] = field(default_factory=list)  # each (B, H, M, dh)
    length: int = 0  # positions already cached (prefix + text)
    group: int = 1  # text rows per memory row
    mix: list[Tensor] = field(default_factory=list)  # per layer, the last kernel-1 text inputs of its token mixer

    def reorder(self, index: Tensor) -> None:
        """Keep rows ``index`` of the self-attention cache (beam search); cross K/V is per image, untouched."""
        self.self_kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.self_kv]
        self.mix = [m.index_select(0, index) for m in self.mix]


class TokenMix(nn.Module):
    """A causal depthwise convolution over the text positions, added to the block's normalised input.

    Each position then carries the few tokens before it, so the query of a function word ("is", "the") already holds
    the content words just written and can look them up in the image in the same block (Primer's depthwise
    convolutions; the "canon layers" of Physics of Language Models, part 4.1).
    """

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.weight = nn.Parameter(torch.randn(d_model, 1, kernel) * 0.1)

    def forward(self, h: Tensor, past: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mixed ``h`` (N, T, D) given the ``past`` (N, kernel-1, D) inputs before it; also the new past."""
        n, _, d = h.shape
        if past is None:
            past = h.new_zeros(n, self.kernel - 1, d)
        x = torch.cat([past, h], dim=1)  # (N, kernel-1+T, D)
        y = F.conv1d(x.transpose(1, 2), self.weight.to(h.dtype), groups=d).transpose(1, 2)  # (N, T, D)
        return h + y, x[:, x.shape[1] - (self.kernel - 1) :]


class Attention(nn.Module):
    """Multi-head attention over SDPA, usable as self- or cross-attention; ``keys_only`` builds just the keys/values
    (for tokens that are attended to but never attend).

    With ``coord_readout`` every value carries its token's image position (x, y), zero for text tokens, so each head
    also returns where in the image it looked (the attention-weighted mean position, a soft-argmax), and a linear
    layer adds those 2 x heads numbers to the output. "Left of" then needs only attention to the right shape.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float,
        qk_norm: bool = False,
        keys_only: bool = False,
        coord_readout: bool = False,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.coord_readout = coord_readout
        self.coord_out = nn.Linear(2 * num_heads, d_model) if coord_readout and not keys_only else None
        self.q = None if keys_only else nn.Linear(d_model, d_model)
        self.kv = nn.Linear(d_model, 2 * d_model)
        self.out = None if keys_only else nn.Linear(d_model, d_model)
        self.dropout = dropout
        # QK-norm: each head's queries and keys are layer-normalised, so attention logits are O(1) from the first step
        self.q_norm = nn.LayerNorm(d_model // num_heads) if qk_norm and not keys_only else None
        self.k_norm = nn.LayerNorm(d_model // num_heads) if qk_norm else None

    def split(self, x: Tensor) -> Tensor:
        n, t, d = x.shape
        return x.view(n, t, self.num_heads, d // self.num_heads).transpose(1, 2)  # (N, H, T, dh)

    def queries(self, x: Tensor) -> Tensor:
        """Per-head queries (N, H, T, dh) of ``x`` (N, T, D)."""
        q = self.split(self.q(x))
        return q if self.q_norm is None else self.q_norm(q)

    def keys_values(self, x: Tensor, coords: Tensor | None = None) -> tuple[Tensor, Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)
        k, v = self.split(k), self.split(v)
        if self.coord_readout:
            n, h, t, _ = v.shape
            c = v.new_zeros(n, h, t, 2) if coords is None else coords.to(v.dtype).expand(n, h, t, 2)
            v = torch.cat([v, c], dim=-1)
        return (k if self.k_norm is None else self.k_norm(k)), v

    def _project(self, y: Tensor) -> Tensor:
        """Per-head outputs (N, T, H, dh [+2]) -> (N, T, D); the last two channels are the coordinate readout."""
        n, t = y.shape[:2]
        if self.coord_out is None:
            return self.out(y.reshape(n, t, -1))
        return self.out(y[..., :-2].reshape(n, t, -1)) + self.coord_out(y[..., -2:].reshape(n, t, -1))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool = False) -> Tensor:
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)  # (N, H, T, dh)
        return self._project(y.transpose(1, 2))

    def cross(self, x: Tensor, kv: tuple[Tensor, Tensor], group: int) -> Tensor:
        """Cross-attend ``x`` (B*group, T, D) to per-image ``kv`` (B, H, M, dh) without copying the memory."""
        k, v = kv
        bg, t, _ = x.shape
        q = self.queries(x)  # (B*G, H, T, dh)
        q = q.view(bg // group, group, self.num_heads, t, -1).transpose(1, 2)  # (B, H, G, T, dh)
        q = q.reshape(bg // group, self.num_heads, group * t, -1)  # (B, H, G*T, dh)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        y = y.view(bg // group, self.num_heads, group, t, -1).permute(0, 2, 3, 1, 4)  # (B, G, T, H, dh)
        return self._project(y.reshape(bg, t, self.num_heads, -1))


class PrefixKeys(nn.Module):
    """The prefix expert of the last block: only the norm and key/value projection, as nothing reads its output."""

    def __init__(self, d_model: int, num_heads: int, qk_norm: bool, coord_readout: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = Attention(d_model, num_heads, 0.0, qk_norm, keys_only=True, coord_readout=coord_readout)


class DecoderLayer(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, MLP; optionally separate weights for the prefix.

    In the ``last`` block the prefix (image) stream only lends its keys/values to the text: its own attention and MLP
    are skipped, and its expert has only the key/value projection.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        mlp_ratio: float,
        dropout: float,
        cross_attention: bool,
        prefix_expert: bool = False,
        qk_norm: bool = False,
        last: bool = False,
        coord_readout: bool = False,
        token_mix: int = 0,
    ) -> None:
        super().__init__()
        self.last = last
        self.norm1 = nn.LayerNorm(d_model)
        self.mix = TokenMix(d_model, token_mix) if token_mix > 1 else None
        self.self_attn = Attention(d_model, num_heads, dropout, qk_norm, coord_readout=coord_readout)
        self.norm2 = nn.LayerNorm(d_model) if cross_attention else None
        self.cross_attn = (
            Attention(d_model, num_heads, dropout, qk_norm, coord_readout=coord_readout) if cross_attention else None
        )
        self.norm3 = nn.LayerNorm(d_model)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model), nn.Dropout(dropout))
        # The prefix's own weights (a modality expert): a second block of the same shape without cross-attention, or
        # in the last block only the norm and key/value projection (nothing reads the prefix's output there).
        self.prefix_expert: nn.Module | None = None
        if prefix_expert:
            self.prefix_expert = (
                PrefixKeys(d_model, num_heads, qk_norm, coord_readout)
                if last
                else DecoderLayer(
                    d_model, num_heads, mlp_ratio, dropout, False, qk_norm=qk_norm, coord_readout=coord_readout
                )
            )

    def forward(
        self,
        x: Tensor,
        mask: Tensor | None,
        cache: KVCache | None,
        layer: int,
        cross_kv: tuple[Tensor, Tensor] | None,
        group: int,
    ) -> Tensor:
        h = self.norm1(x)
        if self.mix is not None:
            past = cache.mix[layer] if cache is not None and layer < len(cache.mix) else None
            h, past = self.mix(h, past)
            if cache is not None:
                if layer < len(cache.mix):
                    cache.mix[layer] = past
                else:
                    cache.mix.append(past)
        q = self.self_attn.queries(h)  # (N, H, T, dh)
        k, v = self.self_attn.keys_values(h)
        if cache is not None:
            if layer < len(cache.self_kv):
                pk, pv = cache.self_kv[layer]
                k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
                cache.self_kv[layer] = (k, v)
            else:
                cache.self_kv.append((k, v))
        # A single new query attends to every cached position: no mask needed.
        x = x + self.self_attn.attend(q, k, v, mask if x.shape[1] > 1 else None)
        return self._cross_and_mlp(x, cross_kv, group)

    def _cross_and_mlp(self, x: Tensor, cross_kv: tuple[Tensor, Tensor] | None, group: int) -> Tensor:
        if self.cross_attn is not None and cross_kv is not None:
            x = x + self.cross_attn.cross(self.norm2(x), cross_kv, group)
        return x + self.mlp(self.norm3(x))

    def forward_with_prefix(
        self,
        prefix: Tensor,
        text: Tensor,
        *,
        bidirectional: bool,
        text_mask: Tensor,
        cache: KVCache | None,
        cross_kv: tuple[Tensor, Tensor] | None,
        group: int,
        coords: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One block over a per-image ``prefix`` (B, P, D) and its ``group`` text rows each, ``text`` (B*G, T, D).

        The prefix attends only to itself (fully when ``bidirectional``, else causally); each text row attends to its
        image's prefix keys/values and causally to itself through ``text_mask`` (T, P+T). With a prefix expert the
        prefix goes through the expert's weights, the text through the block's own. In the last block nothing reads
        the prefix's output, only its keys/values, so its attention and MLP are skipped and it comes back as is.
        """
        expert = self if self.prefix_expert is None else self.prefix_expert
        attn, pattn = self.self_attn, expert.self_attn
        hp, ht = expert.norm1(prefix), self.norm1(text)
        if self.mix is not None:
            ht, past = self.mix(ht, None)
            if cache is not None:
                cache.mix.append(past)
        kp, vp = pattn.keys_values(hp, coords)  # (B, H, P, dh)
        kt, vt = attn.keys_values(ht)  # (B*G, H, T, dh)
        k = torch.cat([kp.repeat_interleave(group, dim=0), kt], dim=2)  # (B*G, H, P+T, dh)
        v = torch.cat([vp.repeat_interleave(group, dim=0), vt], dim=2)
        if cache is not None:
            cache.self_kv.append((k, v))
        text = self._cross_and_mlp(text + attn.attend(attn.queries(ht), k, v, text_mask), cross_kv, group)
        if self.last:
            return prefix, text
        prefix = prefix + pattn.attend(pattn.queries(hp), kp, vp, None, causal=not bidirectional)
        return expert._cross_and_mlp(prefix, cross_kv, 1), text


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
        cross_attention: add a cross-attention sublayer to every block (set by the fusion).
        prefix_experts: give the prefix (prefix or early fusion's image embeddings) its own norms, attention
            projections and MLP in every block, while the text keeps the LM's (modality experts, as in VLMo and
            CogVLM's visual expert). Text still attends to the prefix; per-token compute is unchanged.
        qk_norm: layer-normalise each head's queries and keys before attention (QK-norm, as in ViT-22B and OLMo 2),
            in self- and cross-attention.
        coord_readout: every attention also reads the image position of what it attends to (see :class:`Attention`);
            positions come from the fusion (``FusionOutput.coords``).
        token_mix: kernel of a causal depthwise convolution over the text at the input of every block (see
            :class:`TokenMix`); 0 or 1: none.
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
        prefix_experts: bool = False,
        qk_norm: bool = False,
        coord_readout: bool = False,
        token_mix: int = 0,
    ) -> None:
        super().__init__()
        self.d_model, self.max_len = d_model, max_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(
                d_model,
                num_heads,
                mlp_ratio,
                dropout,
                cross_attention,
                prefix_experts,
                qk_norm,
                last=i == num_layers - 1,
                coord_readout=coord_readout,
                token_mix=token_mix,
            )
            for i in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.01)

    @property
    def cross_attention(self) -> bool:
        return self.layers[0].cross_attn is not None

    @property
    def prefix_experts(self) -> bool:
        return self.layers[0].prefix_expert is not None

    def logits(self, h: Tensor) -> Tensor:
        return F.linear(self.norm(h), self.embed.weight)  # tied output embedding

    def cross_kv(self, memory: Tensor | None, coords: Tensor | None = None) -> list[tuple[Tensor, Tensor] | None]:
        """Project ``memory`` (B, M, D), with its tokens' ``coords`` (M, 2), to each layer's cross-attention keys/values
        once."""
        if memory is None or not self.cross_attention:
            return [None] * len(self.layers)
        return [layer.cross_attn.keys_values(memory, coords) for layer in self.layers]

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
        self,
        input_ids: Tensor,
        *,
        prefix: Tensor | None = None,
        memory: Tensor | None = None,
        group: int = 1,
        prefix_bidirectional: bool = False,
        coords: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        """Logits (N, T, V) for the text positions of ``input_ids`` (N, T).

        ``prefix`` (N/group, P, D) and ``memory`` (N/group, M, D) are per image. With ``cache`` the call is a prefill:
        it fills the cache so that :meth:`step` can continue one token at a time.
        """
        cross = self.cross_kv(memory, coords)
        p, t = (0 if prefix is None else prefix.shape[1]), input_ids.shape[1]
        if cache is not None:
            cache.cross_kv, cache.group, cache.length = cross, group, p + t
        if prefix is None:
            x = self._embed(input_ids, 0)
            return self.logits(
                self._run(x, prefix_lm_mask(0, t, bidirectional=False, device=x.device), cache, cross, group)
            )
        xt = self._embed(input_ids, p)  # (B*G, T, D)
        xp = self.drop(prefix.to(xt.dtype) + self.pos.weight[:p])  # (B, P, D)
        text_mask = prefix_lm_mask(p, t, bidirectional=prefix_bidirectional, device=xt.device)[p:]  # (T, P+T)
        for i, layer in enumerate(self.layers):
            xp, xt = layer.forward_with_prefix(
                xp,
                xt,
                bidirectional=prefix_bidirectional,
                text_mask=text_mask,
                cache=cache,
                cross_kv=cross[i],
                group=group,
                coords=coords,
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
