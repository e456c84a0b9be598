"""The captioner: encoder -> fusion -> decoder, plus an optional contrastive head."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from mmtrain.models.decoder import KVCache, TransformerDecoder, init_weights
from mmtrain.models.encoders import TimmEncoder
from mmtrain.models.fusion.base import FusionOutput
from mmtrain.tokens import TextIds


class CaptionerOutput(NamedTuple):
    logits: Tensor  # (B*C, T, V)
    fused: FusionOutput
    image_emb: Tensor | None  # (B, E) when the model has a contrastive head


class Captioner(nn.Module):
    """Composes an image encoder, a fusion module and a decoder LM.

    ``fusion`` and ``decoder`` arrive as partials and are completed here with the dimensions only known at build
    time (encoder width and token count, vocabulary size), so configs never repeat a number.

    Args:
        encoder: the image encoder.
        fusion: partial of a fusion module taking ``in_dim``, ``d_model`` and ``num_tokens``.
        decoder: partial of :class:`TransformerDecoder` taking ``vocab_size`` and ``cross_attention``.
        vocab_size: tokenizer vocabulary size.
        contrastive: optional partial of :class:`ContrastiveHead` (``image_dim``, ``text_dim``) for retrieval.
    """

    def __init__(
        self,
        *,
        encoder: TimmEncoder,
        fusion: Callable[..., nn.Module],
        decoder: Callable[..., TransformerDecoder],
        vocab_size: int,
        contrastive: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        # A decoder built once (a loaded LM) learns now, from the fusion's class, whether it reads a memory; the
        # others are probed plain and rebuilt below, as they always were (the same random draws).
        reads_memory = _built_class(decoder, "initialises_itself") and _built_class(fusion, "uses_cross_attention")
        probe_decoder = decoder(vocab_size=vocab_size, cross_attention=reads_memory)
        d_model = probe_decoder.d_model
        self.fusion = fusion(in_dim=encoder.out_dim, d_model=d_model, num_tokens=encoder.num_tokens)
        pretrained = getattr(probe_decoder, "initialises_itself", False)  # a loaded LM: built once, weights kept
        cross = self.fusion.uses_cross_attention
        self.decoder = probe_decoder if pretrained else decoder(vocab_size=vocab_size, cross_attention=cross)
        self.decoder.check_fusion(self.fusion)  # a combination of options that means nothing is an error
        self.vocab_size = vocab_size
        self.ids = TextIds()  # bos, eos, pad and prompt ids; set from the tokenizer by whoever builds the captioner
        init_weights(self.fusion)
        if not pretrained:
            init_weights(self.decoder)
        self.contrastive = contrastive(image_dim=encoder.out_dim, text_dim=d_model) if contrastive else None

    def normalize(self, images: Tensor) -> Tensor:
        """uint8 images (B, 3, H, W) -> the encoder's normalised float input (B, 3, H, W)."""
        return self.encoder.normalize(images)

    def image_tokens(self, images: Tensor | None, tokens: Tensor | None = None) -> Tensor:
        """Encoder tokens (B, N, D) of normalised ``images``, or the precomputed ``tokens`` cast to float.

        Precomputed tokens come from a feature cache of this (frozen) encoder; the encoder's forward is skipped.
        """
        return self.encoder(images) if tokens is None else tokens.float()

    def encode(self, images: Tensor | None, *, tokens: Tensor | None = None) -> FusionOutput:
        """Fuse images (B, 3, H, W), or their precomputed encoder tokens (B, N, D), into what the decoder reads."""
        return self.fusion(self.image_tokens(images, tokens))

    def forward(
        self, images: Tensor | None, input_ids: Tensor, captions_per_image: int = 1, *, tokens: Tensor | None = None
    ) -> CaptionerOutput:
        """Teacher-forced logits for ``input_ids`` (B*C, T), C consecutive rows per image.

        The image side is ``images`` (B, 3, H, W) or, from a feature cache, their encoder ``tokens`` (B, N, D).
        """
        tokens = self.image_tokens(images, tokens)  # (B, N, D)
        fused = self.fusion(tokens)
        image_emb = self.contrastive.embed_images(tokens) if self.contrastive is not None else None
        return CaptionerOutput(self.decode(fused, input_ids, captions_per_image), fused, image_emb)

    def embed_images(self, images: Tensor) -> Tensor:
        """Unit image embeddings (B, E) from the contrastive head."""
        return self.contrastive.embed_images(self.encoder(images))

    def embed_texts(self, input_ids: Tensor) -> Tensor:
        """Unit caption embeddings (N, E) from the contrastive head."""
        return self.contrastive.embed_texts(self.decoder, input_ids)

    def decode(self, fused: FusionOutput, input_ids: Tensor, group: int, cache: KVCache | None = None) -> Tensor:
        """Decoder logits for ``input_ids`` given fused image inputs, ``group`` text rows per image."""
        return self.decoder(input_ids, fused, group=group, cache=cache)

    def start(self, fused: FusionOutput, bos: Tensor, group: int) -> tuple[Tensor, KVCache]:
        """Prefill the KV cache with the image and the bos token (and prompt); return the next-token logits (N, V)."""
        cache = self.decoder.new_cache() if hasattr(self.decoder, "new_cache") else KVCache()
        logits = self.decode(fused, bos, group, cache)  # (N, 1, V)
        return logits[:, -1], cache

    @torch.no_grad()
    def generate(self, images: Tensor, **decoding) -> list[list[list[int]]]:
        """Token ids per image, ``num_return_sequences`` per image; see :mod:`mmtrain.models.generation`."""
        from mmtrain.models.generation import generate

        return generate(self, images, **decoding)


def _built_class(partial: Callable, name: str) -> bool:
    """The class attribute ``name`` of what ``partial`` (a Hydra ``_partial_`` node, a class) builds; False if none."""
    return bool(getattr(getattr(partial, "func", partial), name, False))
