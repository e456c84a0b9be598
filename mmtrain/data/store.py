"""The training store: one LitData-optimised folder per split, a tokenizer, COCO ground truth and a manifest.

Layout of ``OUT``::

    manifest.json          written last: a store without it (or with another config hash) is not complete
    rejected.jsonl         one line per rejected image: split, image_id, file, reason
    tokenizer.model        SentencePiece, trained on the train split only
    {split}/               LitData chunks + index.json; items {image_id, image (H,W,3) uint8, captions (JSON list)}
    references_{split}.json  COCO captions ground truth with the raw captions, for metrics
    features/KEY/          optional feature cache (``preprocess features=true``, see :mod:`mmtrain.data.features`):
                           features.json (the key) + train/ with items {image_id, features (N,D) fp16, captions}
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from mmtrain.errors import UserError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def config_hash(config: dict) -> str:
    """Stable hash of the settings that change the stored bytes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_manifest(out_dir: Path) -> dict | None:
    """The manifest of a complete store, or None when there is none yet."""
    path = out_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: corrupt manifest ({err.msg}); delete the folder and preprocess again") from None


def write_split(
    out_dir: Path, split: str, items: Iterable[tuple[int, np.ndarray, list[str]]], *, count_hint: int = 0
) -> str:
    """Write one split's items into ``out_dir/split`` atomically (see :func:`write_items`).

    Returns:
        The sha256 checksum of the stored samples, in order.
    """
    digest = hashlib.sha256()

    def records() -> Iterator[dict]:
        for image_id, image, captions in items:
            text = json.dumps(captions, ensure_ascii=False)
            digest.update(f"{image_id}|{image.shape}|{text}|".encode())
            digest.update(image.tobytes())
            yield {"image_id": int(image_id), "image": image, "captions": text}

    write_items(out_dir / split, records(), count_hint=count_hint)
    return digest.hexdigest()


def write_items(final: Path, items: Iterable[dict], *, count_hint: int = 0) -> int:
    """Write dict items as a LitData folder ``final`` atomically (a temporary folder, then a rename).

    LitData hands whole chunks to DDP ranks, so a split is cut into at least 16 chunks (at most 256 items each) to
    give every rank of a small run its share.

    Returns:
        The number of items written.
    """
    from litdata.streaming.writer import BinaryWriter

    tmp = final.parent / f".tmp-{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    writer = BinaryWriter(str(tmp), chunk_size=max(1, min(256, -(-count_hint // 16))) if count_hint else 256)
    count = 0
    for index, item in enumerate(items):
        writer.add_item(index, item)
        count += 1
    if count:  # LitData's merge waits forever for the index of a writer that got no item
        writer.done()
        writer.merge()
    tmp.mkdir(parents=True, exist_ok=True)  # an empty split is an empty folder
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return count


def require_store(store_dir: str | Path) -> tuple[Path, dict]:
    """Check that ``store_dir`` holds a complete preprocessed store; return its path and manifest."""
    path = Path(store_dir)
    manifest = read_manifest(path)
    if manifest is None:
        raise UserError(f"{path}: no complete preprocessed store here (manifest.json missing); run mmtrain preprocess")
    return path, manifest


def coco_references(samples: list[tuple[int, str, list[str]]], description: str) -> dict:
    """COCO captions ground truth for ``(image_id, file, raw captions)`` rows."""
    images, annotations = [], []
    for image_id, file, captions in samples:
        images.append({"id": image_id, "file_name": file})
        for caption in captions:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "caption": caption})
    return {
        "info": {"description": description},
        "licenses": [],
        "type": "captions",
        "images": images,
        "annotations": annotations,
    }
