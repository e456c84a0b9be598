"""Karpathy split files (``dataset_coco.json``, ``dataset_flickr8k.json``, ``dataset_flickr30k.json``).

Each file lists ``images[]`` with ``filename`` (plus ``filepath`` such as ``val2014`` for COCO), ``split`` in
``train``/``restval``/``val``/``test``, ``sentences[].raw`` and an id: ``cocoid`` for COCO, ``imgid`` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.errors import UserError

KARPATHY_SPLITS = ("train", "restval", "val", "test")
RESTVAL_TARGETS = ("train", "val", "drop")
DATASET_LABELS = {"coco": "COCO", "flickr8k": "Flickr8k", "flickr30k": "Flickr30k"}


def load_karpathy(path: Path) -> list:
    """The ``images`` list of a Karpathy split file; a broken file is a one-line ``UserError`` naming it."""
    from mmtrain.io import read_json

    data = read_json(path, "Karpathy split file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: not a Karpathy split file (needs an 'images' list, has {have})")
    return data["images"]


def dataset_label(path: Path) -> str:
    """``dataset_coco.json`` -> ``COCO``: the name used in count warnings."""
    stem = path.stem.removeprefix("dataset_")
    return DATASET_LABELS.get(stem.lower(), stem)


def _image_id(path: Path, index: int, image: dict) -> int:
    raw = image.get("cocoid", image.get("imgid"))
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise UserError(f"{path}: images[{index}] needs an integer 'cocoid' or 'imgid', got {raw!r}") from None


def _captions(path: Path, index: int, image: dict) -> list[str]:
    sentences = image.get("sentences", [])
    if not isinstance(sentences, list) or not all(isinstance(s, dict) and "raw" in s for s in sentences):
        raise UserError(f"{path}: images[{index}].sentences must be a list of objects with 'raw'")
    return [str(sentence["raw"]) for sentence in sentences]


def _file(path: Path, index: int, image: dict) -> str:
    if not isinstance(image.get("filename"), str) or not image["filename"]:
        raise UserError(f"{path}: images[{index}] needs a 'filename', got {str(image)[:80]}")
    folder = image.get("filepath") or ""
    return f"{folder}/{image['filename']}" if folder else image["filename"]


class KarpathySplits:
    """Reads one Karpathy split file into samples.

    Args:
        file: the split file, e.g. ``ROOT/dataset_coco.json``.
        image_root: folder the ``filepath/filename`` of each image is resolved against.
        restval_to: where ``restval`` images go: ``train`` (the usual choice), ``val``, or ``drop``.
        expected_counts: images expected per split after ``restval`` is placed, e.g. ``{train: 113287}``; any other
            count adds a warning to the report (a truncated or edited file). None: no check.
    """

    def __init__(
        self,
        *,
        file: str,
        image_root: str,
        restval_to: str = "train",
        expected_counts: Mapping[str, int] | None = None,
    ) -> None:
        if restval_to not in RESTVAL_TARGETS:
            raise UserError(f"restval_to must be one of {list(RESTVAL_TARGETS)}, got {restval_to!r}")
        self.file, self.image_root, self.restval_to = Path(file), Path(image_root), restval_to
        self.expected_counts = {str(k): int(v) for k, v in (expected_counts or {}).items()}

    def read(self) -> tuple[list[Sample], SourceReport]:
        """Every image of the file (``restval`` placed as configured), in file order, plus what was noticed."""
        images = load_karpathy(self.file)
        samples, report, seen = [], SourceReport(), {}
        for index, image in enumerate(images):
            if not isinstance(image, dict):
                raise UserError(f"{self.file}: images[{index}] is not an object: {str(image)[:80]}")
            split = self._split(index, image)
            image_id = _image_id(self.file, index, image)
            if image_id in seen:
                raise UserError(f"{self.file}: image id {image_id} appears twice (images[{seen[image_id]}], [{index}])")
            seen[image_id] = index
            if split is None:
                continue
            captions = _captions(self.file, index, image)
            report.images_without_captions += not captions
            samples.append(Sample(image_id, _file(self.file, index, image), self.image_root, captions, split))
        report.warnings += self._count_warnings(samples)
        return samples, report

    def _split(self, index: int, image: dict) -> str | None:
        split = image.get("split")
        if split not in KARPATHY_SPLITS:
            raise UserError(
                f"{self.file}: images[{index}] has split {split!r}, expected one of {list(KARPATHY_SPLITS)}"
            )
        if split != "restval":
            return split
        return None if self.restval_to == "drop" else self.restval_to

    def _count_warnings(self, samples: list[Sample]) -> list[str]:
        label = dataset_label(self.file)
        warnings = []
        for split, expected in self.expected_counts.items():
            count = sum(sample.split == split for sample in samples)
            if count != expected:
                warnings.append(f"{split}: {count} images, expected {expected} for the Karpathy {label} split")
        return warnings
