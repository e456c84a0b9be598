"""Read and check COCO caption files: a results file (``[{"image_id", "caption"}]``) and a captions file.

Every problem becomes one :class:`UserError` line that names the file, counts each kind of problem and shows the
first few examples, so a user can fix a file in one go.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

from mmtrain.errors import UserError
from mmtrain.io import read_json

_EXAMPLES = 3


def _examples(items: list[Any]) -> str:
    shown = ", ".join(str(item) for item in items[:_EXAMPLES])
    return f"{shown}, ..." if len(items) > _EXAMPLES else shown


def _problem(label: str, items: list[Any]) -> str:
    return f"{len(items)} {label} (e.g. {_examples(items)})"


def load_results(path: str | Path) -> dict[Hashable, str]:
    """Read a COCO results file into image id -> caption, rejecting anything pycocoevalcap would choke on.

    Checks: a JSON list; each entry an object with an ``image_id`` (integer or string) and a string ``caption``;
    no image id twice; no empty caption.
    """
    data = read_json(path)
    if not isinstance(data, list):
        kind = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(data), "null")
        looks_like_captions = isinstance(data, dict) and "annotations" in data
        hint = " (this looks like a COCO captions file: pass it as the references)" if looks_like_captions else ""
        raise UserError(f'{path}: expected a JSON list of {{"image_id", "caption"}} objects, got a JSON {kind}{hint}')
    not_objects, no_id, bad_caption, empty, duplicates = [], [], [], [], []
    captions: dict[Hashable, str] = {}
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            not_objects.append(f"entry {index}")
            continue
        image_id = entry.get("image_id")
        if not isinstance(image_id, (int, str)) or isinstance(image_id, bool):
            no_id.append(f"entry {index}")
            continue
        caption = entry.get("caption")
        if not isinstance(caption, str):
            bad_caption.append(f"image {image_id}")
        elif not caption.strip():
            empty.append(f"image {image_id}")
        if image_id in captions:
            duplicates.append(image_id)
        captions[image_id] = caption
    problems = [
        _problem(label, items)
        for label, items in [
            ("entries are not objects", not_objects),
            ("entries have no integer or string image_id", no_id),
            ("captions are missing or not strings", bad_caption),
            ("captions are empty", empty),
            ("image ids appear more than once", sorted(set(duplicates), key=str)),
        ]
        if items
    ]
    if problems:
        raise UserError(f"{path}: bad results file: " + "; ".join(problems))
    if not captions:
        raise UserError(f"{path}: bad results file: it holds no captions")
    return captions


def load_references(path: str | Path) -> dict[Hashable, list[str]]:
    """Read a COCO captions file into image id -> reference captions, in the file's image order.

    The file needs ``annotations`` (objects with ``image_id`` and a string ``caption``); when it has ``images``,
    every image needs at least one caption and every caption a listed image.
    """
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise UserError(f'{path}: expected a COCO captions file: a JSON object with an "annotations" list')
    images = data.get("images")
    order: list[Hashable] = []
    if images is not None:
        if not isinstance(images, list) or not all(isinstance(im, dict) and "id" in im for im in images):
            raise UserError(f'{path}: "images" must be a list of objects with an "id"')
        order = [im["id"] for im in images]
    references: dict[Hashable, list[str]] = {image_id: [] for image_id in order}
    bad, unknown = [], []
    for index, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict) or not isinstance(annotation.get("caption"), str):
            bad.append(f"annotation {index}")
            continue
        image_id = annotation.get("image_id")
        if image_id not in references:
            if images is not None:
                unknown.append(image_id)
                continue
            references[image_id] = []
        references[image_id].append(annotation["caption"])
    without = [image_id for image_id, refs in references.items() if not refs]
    problems = [
        _problem(label, items)
        for label, items in [
            ("annotations lack a string caption", bad),
            ('annotations refer to images not in "images"', unknown),
            ("images have no caption", without),
        ]
        if items
    ]
    if problems:
        raise UserError(f"{path}: bad captions file: " + "; ".join(problems))
    if not references:
        raise UserError(f"{path}: bad captions file: it holds no captions")
    return references


def match_ids(
    results: dict[Hashable, str],
    references: dict[Hashable, list[str]],
    results_path: str | Path,
    references_path: str | Path,
    *,
    allow_partial: bool,
) -> tuple[list[Hashable], dict[str, int] | None]:
    """The image ids to score, in reference order, and a summary when only part of either file is used.

    Without ``allow_partial``, results must caption exactly the reference images (a UserError says what differs).
    """
    missing = [image_id for image_id in references if image_id not in results]
    extra = [image_id for image_id in results if image_id not in references]
    shared = [image_id for image_id in references if image_id in results]
    if not missing and not extra:
        return shared, None
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(references)} reference images have no caption (e.g. {_examples(missing)})"
        )
    if extra:
        problems.append(f"{len(extra)} image ids are not in {references_path} (e.g. {_examples(extra)})")
    if {str(k) for k in results} & {str(k) for k in references} and not shared:
        problems.append("image ids differ in type (strings vs integers)")
    if not allow_partial or not shared:
        advice = f"; pass allow_partial=true to score only the {len(shared)} images in both" if shared else ""
        raise UserError(f"{results_path}: " + "; ".join(problems) + advice)
    return shared, {"scored": len(shared), "missing": len(missing), "extra": len(extra)}
