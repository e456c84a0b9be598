"""Embed image files and texts with a model's contrastive head; identify the checkpoint that did it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mmtrain.data.images import ResizeSpec
from mmtrain.data.inputs import stream_images
from mmtrain.data.text import normalize_caption
from mmtrain.errors import UserError
from mmtrain.models.loading import LoadedModel
from mmtrain.tokens import PAD_ID

MAX_TEXT_TOKENS = 64  # as in training's retrieval evaluation


def require_contrastive(model: LoadedModel, ckpt: str | Path) -> None:
    """A model without a contrastive head cannot embed images and texts into one space: say how to train one."""
    if model.captioner.contrastive is None:
        raise UserError(
            f"{ckpt}: this model has no contrastive head, so it cannot index or search images; "
            "train one with objective=xe_itc (e.g. experiment=shapes_itc)"
        )


def checkpoint_digest(path: str | Path) -> str:
    """sha256 (first 16 hex digits) of a checkpoint file, or of a bundle's ``model.safetensors``."""
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    digest = hashlib.sha256()
    try:
        with open(weights, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    except OSError as err:
        raise UserError(f"{path}: cannot read the checkpoint ({err.strerror or err})") from None
    return digest.hexdigest()[:16]


def resize_spec(model: LoadedModel) -> ResizeSpec:
    """How the model's training images were sized, so indexed images look the same to it."""
    resize = model.extra.get("resize") or {}
    return ResizeSpec(
        size=int(resize.get("size", model.captioner.encoder.img_size)), mode=resize.get("mode", "center_crop")
    )


@torch.inference_mode()
def embed_image_files(
    model: LoadedModel,
    paths: Sequence[Path],
    *,
    batch_size: int = 64,
    workers: int = 2,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[int], np.ndarray, list[tuple[str, str]]]:
    """Unit embeddings of the images that decode, streamed: loader workers decode, batches run on the device.

    Returns:
        Positions in ``paths`` that were embedded, their embeddings (M, E) float32 in that order, and
        ``(path, reason)`` for each file that could not be read.
    """
    positions, chunks, failed = [], [], []
    for batch in stream_images(list(paths), resize_spec(model), batch_size=batch_size, num_workers=workers):
        failed += batch.failed
        if batch.images is not None:
            images = batch.images.permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
            chunks.append(model.captioner.embed_images(model.pixels(images)).float().cpu().numpy())  # (B, E)
            positions += batch.positions
        if on_batch:
            on_batch(len(batch.positions) + len(batch.failed))
    width = model.captioner.contrastive.image_proj[-1].out_features
    return positions, np.concatenate(chunks) if chunks else np.zeros((0, width), np.float32), failed


@torch.inference_mode()
def embed_texts(
    model: LoadedModel, texts: Sequence[str], *, lowercase: bool = True, batch_size: int = 256
) -> np.ndarray:
    """Unit text embeddings (N, E) float32; texts are normalised and tokenised as the training captions were."""
    chunks = []
    for start in range(0, len(texts), batch_size):
        rows = [
            model.tokenizer.encode(normalize_caption(text, lowercase=lowercase)[0], max_len=MAX_TEXT_TOKENS)
            for text in texts[start : start + batch_size]
        ]
        ids = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)  # (B, T)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        chunks.append(model.captioner.embed_texts(ids.to(model.device)).float().cpu().numpy())  # (B, E)
    return np.concatenate(chunks)
