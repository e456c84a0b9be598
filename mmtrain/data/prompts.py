"""Per-sample prompts (question -> answer data): each caption of a store may come with its own prompt.

A store made from a table with a ``prompt_column`` keeps, beside each image's JSON list of ``captions``, a parallel
JSON list of ``prompts`` (the i-th caption answers the i-th prompt), and its manifest says ``"prompts": true``.

What is generated and scored is one (image, prompt) pair: the image's distinct prompts, in first-seen order, give
pair ``n`` the key ``"IMAGE_ID:n"``; its references are the captions given with that prompt. The references file
of such a store lists pairs as its images (``{"id": "17:0", "image_id": 17, "file_name": ..., "prompt": ...}``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mmtrain.data.store import captions_file
from mmtrain.data.text import CaptionStats, normalize_caption


@dataclass
class CleanText:
    """An image's cleaned captions, their prompts (None without a prompt column) and the raw captions kept."""

    captions: list[str]
    prompts: list[str] | None
    raw: list[str]


def clean_text(
    captions: list[str], prompts: list[str] | None, stats: CaptionStats, *, lowercase: bool, max_words: int
) -> CleanText:
    """Normalise captions (dropping empty ones, counted in ``stats``) and, beside them, their prompts.

    A prompt is normalised like a caption but never cut; a caption dropped takes its prompt with it.
    """
    kept, kept_prompts, raw = [], [], []
    for index, caption in enumerate(captions):
        cleaned, truncated = normalize_caption(caption, lowercase=lowercase, max_words=max_words)
        if not cleaned:
            stats.empty_dropped += 1
            continue
        stats.truncated += int(truncated)
        stats.kept += 1
        kept.append(cleaned)
        raw.append(caption)
        if prompts is not None:
            kept_prompts.append(normalize_caption(prompts[index], lowercase=lowercase)[0])
    return CleanText(kept, kept_prompts if prompts is not None else None, raw)


def distinct_prompts(prompts: list[str]) -> list[str]:
    """An image's prompts once each, in first-seen order: pair ``n`` of the image is the n-th."""
    return list(dict.fromkeys(prompts))


def pair_key(image_id: int, index: int) -> str:
    """The results and references key of an image's ``index``-th distinct prompt."""
    return f"{image_id}:{index}"


def prompt_references(samples: list[tuple[int, str, CleanText]], description: str) -> dict:
    """COCO captions ground truth whose images are (image, prompt) pairs: each pair's raw captions."""
    images, annotations = [], []
    for image_id, file, text in samples:
        prompts = distinct_prompts(text.prompts or [])
        for index, prompt in enumerate(prompts):
            key = pair_key(image_id, index)
            images.append({"id": key, "image_id": image_id, "file_name": file, "prompt": prompt})
            for caption, own in zip(text.raw, text.prompts or [], strict=True):
                if own == prompt:
                    annotations.append({"id": len(annotations) + 1, "image_id": key, "caption": caption})
    return captions_file(images, annotations, description)
