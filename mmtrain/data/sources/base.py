"""The record every source yields, whatever the format it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Sample:
    """One image and its captions, as a source found them (captions raw, not yet cleaned).

    Attributes:
        image_id: integer id, unique within the dataset.
        file: image path relative to ``image_root``, as written in the annotation file.
        image_root: folder the file name is resolved against; a file may not escape it.
        captions: the human captions, raw.
        split: ``train``, ``val`` or ``test``.
        archive: a tar shard holding the image as member ``file`` (WebDataset), or None for a plain file.
    """

    image_id: int
    file: str
    image_root: Path
    captions: list[str]
    split: str
    archive: str | None = None


@dataclass
class SourceReport:
    """What a source noticed while reading annotations: counts and a few examples, for the manifest."""

    captions_for_unknown_images: int = 0
    images_without_captions: int = 0
    warnings: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)  # per-source data carried to the store (e.g. shapes scenes)
