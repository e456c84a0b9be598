"""COCO captions in the layout of a real download: ``ROOT/annotations/captions_{split}{year}.json``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.errors import UserError

REQUIRED_KEYS = ("images", "annotations")


def load_coco_captions(path: Path) -> dict:
    """Read and check a COCO captions file; a broken one is a one-line ``UserError`` naming the file."""
    from mmtrain.io import read_json

    data = read_json(path, "annotation file")
    if not isinstance(data, dict) or any(key not in data for key in REQUIRED_KEYS):
        have = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: not a COCO captions file (needs keys {list(REQUIRED_KEYS)}, has {have})")
    return data


def _check_images(path: Path, images: list) -> dict[int, str]:
    files: dict[int, str] = {}
    duplicates = []
    for image in images:
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise UserError(f"{path}: every entry of 'images' needs 'id' and 'file_name', got {str(image)[:80]}")
        if image["id"] in files:
            duplicates.append(image["id"])
        files[image["id"]] = image["file_name"]
    if duplicates:
        raise UserError(f"{path}: {len(duplicates)} duplicate image ids, e.g. {duplicates[:5]}")
    return files


class CocoCaptions:
    """Reads COCO caption splits (2014 or 2017 layout).

    Args:
        root: dataset root holding ``annotations/`` and the image folders.
        year: ``2014`` or ``2017`` (any suffix the files use).
        splits: our split name -> COCO split name, e.g. ``{train: train, val: val}``.
        prepare: optional callable run first with ``root`` (the built-in dataset generates itself through it).
    """

    def __init__(
        self, *, root: str, year: str = "2017", splits: dict[str, str], prepare: Callable | None = None
    ) -> None:
        self.root, self.year, self.splits, self.prepare = Path(root), str(year), dict(splits), prepare

    def annotation_path(self, coco_split: str) -> Path:
        return self.root / "annotations" / f"captions_{coco_split}{self.year}.json"

    def read(self) -> tuple[list[Sample], SourceReport]:
        """All samples of every configured split, in annotation order, plus what was noticed."""
        if self.prepare is not None:
            self.prepare(root=self.root)
        samples, report = [], SourceReport()
        for split, coco_split in self.splits.items():
            samples += self._read_split(split, coco_split, report)
        return samples, report

    def _read_split(self, split: str, coco_split: str, report: SourceReport) -> list[Sample]:
        path = self.annotation_path(coco_split)
        data = load_coco_captions(path)
        files = _check_images(path, data["images"])
        captions: dict[int, list[str]] = {image_id: [] for image_id in files}
        for ann in data["annotations"]:
            if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
                raise UserError(f"{path}: every annotation needs 'image_id' and 'caption', got {str(ann)[:80]}")
            if ann["image_id"] not in captions:
                report.captions_for_unknown_images += 1
                continue
            captions[ann["image_id"]].append(str(ann["caption"]))
        image_root = self.root / f"{coco_split}{self.year}"
        out = []
        for image_id, file in files.items():
            if not captions[image_id]:
                report.images_without_captions += 1
            out.append(Sample(int(image_id), file, image_root, captions[image_id], split))
        scenes = self.root / "annotations" / f"scenes_{coco_split}{self.year}.json"
        if scenes.is_file():
            report.extras[f"scenes_{split}.json"] = scenes
        return out
