"""Contrastive image-text head (ITC): pooled image tokens and the decoder's text-only pass in one embedding space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmtrain.tokens import EOS_ID


class ContrastiveHead(nn.Module):
    """Projects images and captions to unit vectors with a learnable temperature.

    The text side reads the decoder's hidden state at the caption's eos after a text-only pass (no image input), so
    captioning and retrieval share one language model, as in CoCa's unimodal text layers.

    Args:
        image_dim: encoder token width (completed by the captioner).
        text_dim: decoder width (completed by the captioner).
        embed_dim: shared embedding width.
        init_temperature: initial softmax temperature (CLIP uses 0.07).
    """

    def __init__(self, *, image_dim: int, text_dim: int, embed_dim: int = 128, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, embed_dim))
        self.text_proj = nn.Linear(text_dim, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / init_temperature)))

    def embed_images(self, image_tokens: Tensor) -> Tensor:
        return F.normalize(self.image_proj(image_tokens.mean(dim=1)), dim=-1)  # (B, E)

    def embed_texts(self, decoder, input_ids: Tensor) -> Tensor:
        """Unit text embeddings for ``input_ids`` (N, T) that start with bos and contain an eos."""
        x = decoder._embed(input_ids, 0)
        mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        h = decoder.norm(decoder._run(x, mask, None, [None] * len(decoder.layers), 1))  # (N, T, D)
        is_eos = input_ids == EOS_ID
        last = torch.where(is_eos.any(1), is_eos.float().argmax(1), torch.full_like(input_ids[:, 0], x.shape[1] - 1))
        return F.normalize(self.text_proj(h[torch.arange(len(h)), last]), dim=-1)  # (N, E)

    def loss(self, image_emb: Tensor, text_emb: Tensor) -> Tensor:
        """Symmetric InfoNCE over a batch of matching pairs (row i of each side belongs together)."""
        scale = self.logit_scale.clamp(max=math.log(100)).exp()
        logits = scale * image_emb @ text_emb.t()  # (B, B)
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
