"""Image-text retrieval recall (R@1/5/10 both ways) from embeddings, in bounded memory.

Similarity is the dot product (pass L2-normalized embeddings for cosine). A query's rank is the number of candidates
scoring strictly higher than its best correct match, so ties count in the query's favour. Texts are queried against
all images (text-to-image: its one image is correct); images are queried against all texts (image-to-text: any of its
texts is correct). Similarities are computed ``chunk`` queries at a time, so memory stays at ``chunk * max(N_img,
N_txt)`` floats.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmtrain.errors import UserError


def _check(image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_to_image: np.ndarray) -> None:
    if image_embeddings.ndim != 2 or text_embeddings.ndim != 2:
        raise UserError(
            f"retrieval needs 2-D embeddings, got images {image_embeddings.shape} and texts {text_embeddings.shape}"
        )
    if image_embeddings.shape[1] != text_embeddings.shape[1]:
        raise UserError(
            f"image and text embeddings differ in width: {image_embeddings.shape[1]} vs {text_embeddings.shape[1]}"
        )
    if text_to_image.shape != (len(text_embeddings),):
        raise UserError(
            f"text_to_image needs one image index per text: {text_to_image.shape} for {len(text_embeddings)} texts"
        )
    if len(text_to_image) and (text_to_image.min() < 0 or text_to_image.max() >= len(image_embeddings)):
        raise UserError(f"text_to_image has indices outside 0..{len(image_embeddings) - 1}")


def text_to_image_ranks(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_to_image: np.ndarray, *, chunk: int = 1024
) -> np.ndarray:
    """Rank (0 = best) of each text's image among all images, shape (N_txt,)."""
    ranks = np.empty(len(text_embeddings), dtype=np.int64)
    for start in range(0, len(text_embeddings), chunk):
        sims = text_embeddings[start : start + chunk] @ image_embeddings.T  # (chunk, N_img)
        correct = sims[np.arange(len(sims)), text_to_image[start : start + chunk]]
        ranks[start : start + chunk] = (sims > correct[:, None]).sum(axis=1)
    return ranks


def image_to_text_ranks(
    image_embeddings: np.ndarray, text_embeddings: np.ndarray, text_to_image: np.ndarray, *, chunk: int = 1024
) -> np.ndarray:
    """Rank (0 = best) of each image's best-placed text among all texts, shape (N_img,); -1 for images without text."""
    ranks = np.full(len(image_embeddings), -1, dtype=np.int64)
    for start in range(0, len(image_embeddings), chunk):
        sims = image_embeddings[start : start + chunk] @ text_embeddings.T  # (chunk, N_txt)
        own = text_to_image[None, :] == np.arange(start, start + len(sims))[:, None]  # (chunk, N_txt)
        best = np.where(own, sims, -np.inf).max(axis=1)
        has_text = own.any(axis=1)
        ranks[start : start + len(sims)] = np.where(has_text, (sims > best[:, None]).sum(axis=1), -1)
    return ranks


def retrieval_recall(
    image_embeddings: np.ndarray,
    text_embeddings: np.ndarray,
    text_to_image: Sequence[int] | np.ndarray,
    *,
    ks: Sequence[int] = (1, 5, 10),
    chunk: int = 1024,
) -> dict[str, float]:
    """Recall@K for text-to-image and image-to-text retrieval.

    Args:
        image_embeddings: Shape (N_img, D).
        text_embeddings: Shape (N_txt, D).
        text_to_image: For each text, the index of its image, shape (N_txt,).
        ks: The K values.
        chunk: Queries scored at once.

    Returns:
        ``t2i_R@K`` and ``i2t_R@K`` for each K (fractions in [0, 1]), and ``rsum`` (their sum, in percent, as
        retrieval papers report it). Images without any text are left out of image-to-text recall.
    """
    images = np.asarray(image_embeddings, dtype=np.float32)
    texts = np.asarray(text_embeddings, dtype=np.float32)
    mapping = np.asarray(text_to_image, dtype=np.int64)
    _check(images, texts, mapping)
    t2i = text_to_image_ranks(images, texts, mapping, chunk=chunk)
    i2t = image_to_text_ranks(images, texts, mapping, chunk=chunk)
    i2t = i2t[i2t >= 0]
    out: dict[str, float] = {}
    for k in ks:
        out[f"t2i_R@{k}"] = float(np.mean(t2i < k)) if len(t2i) else 0.0
        out[f"i2t_R@{k}"] = float(np.mean(i2t < k)) if len(i2t) else 0.0
    out["rsum"] = 100.0 * sum(out[f"{side}_R@{k}"] for side in ("t2i", "i2t") for k in ks)
    return out
