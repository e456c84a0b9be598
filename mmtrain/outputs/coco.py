"""COCO image ids for caption outputs, and COCO caption references matched to image files.

``mmtrain caption`` writes a ``results.json`` that ``mmtrain eval results=... references=...`` can score: its image ids
must be COCO's. They come from the references file (by file name) or from the file name itself
(``000000012448.jpg``, ``COCO_val2014_000000008775.jpg``).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

_COCO_STEM = re.compile(r"(?:COCO_[A-Za-z]+\d*_)?(\d+)")


@dataclass(frozen=True)
class CocoReferences:
    """Reference captions of a COCO captions file.

    Attributes:
        captions: Image id to its reference captions.
        ids_by_file: Basename of ``file_name`` to image id.
    """

    captions: dict[Hashable, list[str]]
    ids_by_file: dict[str, Hashable]

    def image_id(self, file: str | Path) -> Hashable | None:
        """The id of ``file`` by its basename, else by the COCO id its name carries, if it has references."""
        path = Path(file)
        if path.name in self.ids_by_file:
            return self.ids_by_file[path.name]
        image_id = coco_image_id(path)
        return image_id if image_id in self.captions else None


def coco_image_id(file: str | Path) -> int | None:
    """The COCO image id a file name carries (``000000012448.jpg`` -> 12448), or None."""
    match = _COCO_STEM.fullmatch(Path(file).stem)
    return int(match.group(1)) if match else None


def assign_image_ids(files: Sequence[str | Path], references: CocoReferences | None = None) -> list[Hashable]:
    """Image ids for ``files``: the COCO ids (from ``references`` or the names) when all have one and they are unique.

    Otherwise every file gets its input index, so that ids never collide.
    """
    ids = [references.image_id(f) if references is not None else None for f in files]
    ids = [known if known is not None else coco_image_id(f) for known, f in zip(ids, files, strict=True)]
    if ids and all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return ids
    return list(range(len(files)))


def load_references(path: str | Path) -> CocoReferences:
    """Read a COCO captions file (checked by :mod:`mmtrain.metrics.coco_files`) with its ``file_name`` to id map."""
    from mmtrain.io import read_json
    from mmtrain.metrics.coco_files import load_references as load_captions

    captions = load_captions(path)
    images = read_json(path).get("images") or []
    ids_by_file = {
        Path(str(image["file_name"])).name: image["id"]
        for image in images
        if isinstance(image, dict) and image.get("file_name") and image["id"] in captions
    }
    return CocoReferences(captions, ids_by_file)


def references_by_file(files: Sequence[str | Path], references: CocoReferences) -> dict[str, list[str]]:
    """The reference captions of each file that has some, keyed by the file as given."""
    matched = {}
    for file in files:
        image_id = references.image_id(file)
        if image_id is not None and references.captions.get(image_id):
            matched[str(file)] = references.captions[image_id]
    return matched
