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
        prompts: the prompt of each caption, in the same order (a table's ``prompt_column``); None: no prompts.
    """

    image_id: int
    file: str
    image_root: Path
    captions: list[str]
    split: str
    archive: str | None = None
    prompts: list[str] | None = None


@dataclass
class SourceReport:
    """What a source noticed while reading annotations: counts and a few examples, for the manifest."""

    captions_for_unknown_images: int = 0
    images_without_captions: int = 0
    warnings: list[str] = field(default_factory=list)
    extras: dict = field(default_factory=dict)  # per-source data carried to the store (e.g. shapes scenes)


def hold_out(samples: list[Sample], *, val_fraction: float, test_fraction: float, seed: int) -> list[Sample]:
    """Move a seeded share of the train images to val and test, for a source that has no such split.

    Whole images move, with all their captions, so the splits share no image. The draw depends only on the image ids
    and ``seed``: the same table gives the same splits on every machine.
    """
    import random

    from mmtrain.errors import UserError

    wanted = {"val": float(val_fraction), "test": float(test_fraction)}
    for split, fraction in wanted.items():
        if not 0.0 <= fraction < 1.0:
            raise UserError(f"data.{split}_fraction={fraction}: expected a fraction in [0, 1)")
        present = sum(s.split == split for s in samples)
        if fraction > 0 and present:
            raise UserError(
                f"data.{split}_fraction={fraction}: the source already has a {split} split ({present} images); "
                f"set data.{split}_fraction=0"
            )
    if sum(wanted.values()) >= 1.0:
        raise UserError(f"data.val_fraction + data.test_fraction = {sum(wanted.values())}: nothing left to train on")
    train = sorted((s for s in samples if s.split == "train"), key=lambda s: s.image_id)
    random.Random(seed).shuffle(train)
    start = 0
    for split, fraction in wanted.items():
        count = max(1, round(fraction * len(train))) if fraction > 0 and len(train) > 1 else 0
        for sample in train[start : start + count]:
            sample.split = split
        start += count
    return samples


class HeldOut:
    """A source whose train images are partly held out as val and test (see :func:`hold_out`)."""

    def __init__(self, *, source, val_fraction: float = 0.0, test_fraction: float = 0.0, seed: int = 0) -> None:
        self.source, self.val_fraction, self.test_fraction, self.seed = source, val_fraction, test_fraction, seed

    def read(self) -> tuple[list[Sample], SourceReport]:
        samples, report = self.source.read()
        fractions = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction}
        return hold_out(samples, **fractions, seed=self.seed), report
