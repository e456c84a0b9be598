"""Retrieval evaluation for models with a contrastive head: embed a split's images and captions, report R@K."""

from __future__ import annotations

import numpy as np
import torch

from mmtrain.data.text import normalize_caption
from mmtrain.tokens import PAD_ID


@torch.no_grad()
def embed_images(loaded, loader) -> tuple[list[int], np.ndarray]:
    """Image ids and unit image embeddings (N, E) for every batch of ``loader``."""
    ids, chunks = [], []
    for batch in loader:
        chunks.append(loaded.captioner.embed_images(loaded.pixels(batch.images)).float().cpu().numpy())
        ids += batch.image_ids.tolist()
    return ids, np.concatenate(chunks)


@torch.no_grad()
def embed_captions(loaded, captions: list[str], *, lowercase: bool = True, batch_size: int = 256) -> np.ndarray:
    """Unit caption embeddings (N, E), captions normalised as in training."""
    chunks = []
    for start in range(0, len(captions), batch_size):
        rows = [
            loaded.tokenizer.encode(normalize_caption(c, lowercase=lowercase)[0], max_len=64)
            for c in captions[start : start + batch_size]
        ]
        ids = torch.full((len(rows), max(map(len, rows))), PAD_ID, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        chunks.append(loaded.captioner.embed_texts(ids.to(loaded.device)).float().cpu().numpy())
    return np.concatenate(chunks)


def retrieval_metrics(loaded, loader, references: dict[int, list[str]], *, lowercase: bool = True) -> dict[str, float]:
    """R@1/5/10 in both directions over a split (every reference caption is a text query)."""
    from mmtrain.metrics.retrieval import retrieval_recall

    image_ids, image_emb = embed_images(loaded, loader)
    index = {image_id: i for i, image_id in enumerate(image_ids)}
    texts, owners = [], []
    for image_id, captions in references.items():
        if image_id in index:
            texts += captions
            owners += [index[image_id]] * len(captions)
    text_emb = embed_captions(loaded, texts, lowercase=lowercase)
    return retrieval_recall(image_emb, text_emb, owners)
