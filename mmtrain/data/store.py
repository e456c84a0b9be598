"""The training store: one LitData-optimised folder per split, a tokenizer, COCO ground truth and a manifest.

Layout of ``OUT``::

    manifest.json          written last: a store without it (or with another config hash) is not complete
    rejected.jsonl         one line per rejected image: split, image_id, file, reason
    tokenizer.model        SentencePiece, trained on the train split only
    {split}/               LitData chunks + index.json; items {image_id, image, captions (JSON list)}, where image
                           is an (H,W,3) uint8 array (``image_format=raw``) or JPEG bytes (``image_format=jpeg``);
                           a store with per-sample prompts (manifest ``"prompts": true``) adds ``prompts`` (JSON
                           list, one per caption; see :mod:`mmtrain.data.prompts`)
    references_{split}.json  COCO captions ground truth with the raw captions, for metrics (with prompts: one
                           "image" per (image, prompt) pair)
    features/KEY/          optional feature cache (``preprocess features=true``, see :mod:`mmtrain.training.features`):
                           features.json (the key) + train/ with items {image_id, features (N,D) fp16, captions}
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmtrain.errors import UserError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
IMAGE_FORMATS = ("raw", "jpeg")
ENCODE_BLOCK = 256  # images JPEG-encoded together by a thread pool (Pillow releases the GIL while encoding)


@dataclass(frozen=True)
class ImageCoding:
    """How a store keeps its images.

    Attributes:
        format: ``raw`` (uint8 arrays: no decoding cost, 150 KB per 224 px image) or ``jpeg`` (bytes decoded by the
            loader, several times smaller; see docs/scaling.md for the measured trade).
        quality: JPEG quality, 1-95 (Pillow's useful range); ignored for ``raw``.
    """

    format: str = "jpeg"
    quality: int = 90

    def __post_init__(self) -> None:
        if self.format not in IMAGE_FORMATS:
            raise UserError(f"image_format: unknown format {self.format!r} (use one of {', '.join(IMAGE_FORMATS)})")
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 95:
            raise UserError(f"image_quality: must be a whole number from 1 to 95, got {self.quality!r}")

    def describe(self) -> dict:
        """The manifest's record of the format (and the config-hash part of a non-default one)."""
        return {"format": self.format, "quality": self.quality if self.format == "jpeg" else None}

    def encode(self, image: np.ndarray) -> np.ndarray | bytes:
        """What the store holds for an RGB uint8 (H, W, 3) image."""
        if self.format == "raw":
            return image
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=self.quality)
        return buffer.getvalue()


def item_image(item: dict) -> np.ndarray:
    """A stored item's image as RGB uint8 (H, W, 3), decoding JPEG bytes; raw arrays are returned as they are."""
    value = item["image"]
    if isinstance(value, np.ndarray):
        return value
    from PIL import Image

    with Image.open(io.BytesIO(value)) as image:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # convert("RGB") would copy


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
    out_dir: Path,
    split: str,
    items: Iterable[tuple[int, np.ndarray, list[str]]],
    *,
    count_hint: int = 0,
    coding: ImageCoding | None = None,
    prompts: dict[int, list[str]] | None = None,
) -> str:
    """Write one split's items into ``out_dir/split`` atomically (see :func:`write_items`), images coded by ``coding``.

    ``prompts`` (by image id, one per caption) are stored beside the captions when given.

    Returns:
        The sha256 checksum of the stored samples, in order: ids, shapes, captions and the stored image bytes (the
        raw pixels, or the JPEG bytes with the quality).
    """
    coding = coding or ImageCoding(format="raw")
    digest = hashlib.sha256()

    def records() -> Iterator[dict]:
        for image_id, image, captions, stored in _encoded(items, coding):
            text = json.dumps(captions, ensure_ascii=False)
            digest.update(f"{image_id}|{image.shape}|{text}|".encode())
            extra = {}
            if prompts is not None:
                extra["prompts"] = json.dumps(prompts[image_id], ensure_ascii=False)
                digest.update(f"{extra['prompts']}|".encode())
            if isinstance(stored, bytes):
                digest.update(f"jpeg{coding.quality}|".encode())
                digest.update(stored)
            else:
                digest.update(stored.tobytes())
            yield {"image_id": int(image_id), "image": stored, "captions": text, **extra}

    write_items(out_dir / split, records(), count_hint=count_hint)
    return digest.hexdigest()


def _encoded(items: Iterable[tuple[int, np.ndarray, list[str]]], coding: ImageCoding) -> Iterator[tuple]:
    """``(image_id, image, captions, stored)`` in order; JPEG encoding runs on a thread per core, a block at a time."""
    if coding.format == "raw":
        yield from ((i, image, captions, image) for i, image, captions in items)
        return
    block: list[tuple] = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for row in _with_end(iter(items)):
            if row is not None:
                block.append(row)
            if block and (row is None or len(block) == ENCODE_BLOCK):
                stored = list(pool.map(coding.encode, [image for _, image, _ in block]))
                yield from ((i, image, captions, s) for (i, image, captions), s in zip(block, stored, strict=True))
                block = []


def _with_end(items: Iterator) -> Iterator:
    """``items`` and then None, so the last partial block is flushed."""
    yield from items
    yield None


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


def open_split(source):
    """LitData's ``StreamingDataset`` over a split, in store order: a folder, or ``Dir(cache, URL)`` for a store URL.

    The cache budget is given explicitly: left unset, LitData works one out and logs it each time a loader is built
    (at every validation). For a URL it is 75% of the cache folder's free disk, LitData's own default; a local folder
    is read in place, so its budget is never used (1 TiB keeps LitData from warning about a small one).
    """
    from litdata import StreamingDataset

    if isinstance(source, (str, Path)):
        source, budget = str(source), 1 << 40
    else:
        Path(source.path).mkdir(parents=True, exist_ok=True)
        budget = int(0.75 * shutil.disk_usage(source.path).free)
    return StreamingDataset(source, shuffle=False, drop_last=False, max_cache_size=budget)


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
    return captions_file(images, annotations, description)


def captions_file(images: list[dict], annotations: list[dict], description: str) -> dict:
    """A COCO captions file (the layout of ``captions_{split}.json``) holding ``images`` and ``annotations``."""
    return {
        "info": {"description": description},
        "licenses": [],
        "type": "captions",
        "images": images,
        "annotations": annotations,
    }
