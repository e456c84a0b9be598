"""Write the shapes dataset to disk in the layout of a real COCO captions download.

```
root/
  annotations/captions_{split}{year}.json   # COCO captions: info, licenses, images, annotations
  annotations/scenes_{split}{year}.json     # ground truth: {image_id: scene with drawn boxes}
  {split}{year}/000000000001.jpg            # image ids are unique across splits
  shapes.json                               # parameters; "complete": true is written last
```

Every image is a pure function of ``(seed, image_id)``, so the same parameters give byte-identical files.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from mmtrain.data.shapes.grammar import MAX_CAPTIONS_PER_IMAGE, describe
from mmtrain.data.shapes.render import Box, draw, place, sample_scene
from mmtrain.data.shapes.scene import Scene
from mmtrain.errors import UserError
from mmtrain.io import write_bytes, write_json

DEFAULT_SPLITS = {"train": 8000, "val": 1000, "test": 1000}
STAMP_NAME = "shapes.json"
FORMAT_VERSION = 1
JPEG_QUALITY = 95
MIN_IMAGE_SIZE = 32
WRITER_THREADS = 8


def generate_shapes(
    root: str | Path,
    *,
    splits: Mapping[str, int] | None = None,
    image_size: int = 128,
    captions_per_image: int = 5,
    seed: int = 0,
    year: str = "2017",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Render the shapes dataset under ``root``, or do nothing if it is already there.

    Args:
        root: Dataset directory; created if missing. It must be empty or hold a shapes dataset, which is replaced
            when its parameters differ.
        splits: Number of images per split, in id order; defaults to ``DEFAULT_SPLITS``.
        image_size: Side of the square images in pixels.
        captions_per_image: Differently phrased captions per image (1 to ``MAX_CAPTIONS_PER_IMAGE``).
        seed: Same seed and parameters give byte-identical files.
        year: Suffix of file and folder names, as in ``captions_train2017.json``.
        show_progress: Show a progress bar per split.

    Returns:
        A summary: ``root``, ``generated`` (False when the dataset was already complete), ``params`` and, per split,
        ``images_dir``, ``annotations``, ``scenes``, ``num_images`` and ``num_captions``.

    Raises:
        UserError: On a bad parameter, or if ``root`` holds files that are not a shapes dataset.
    """
    root = Path(root)
    params = _validated_params(splits, image_size, captions_per_image, seed, year)
    stamp = _read_stamp(root)
    if stamp is not None and stamp.get("complete") and stamp.get("params") == params and _on_disk(root, params):
        return _summary(root, params, generated=False)
    if stamp is None and root.exists() and any(root.iterdir()):
        raise UserError(f"{root} is not empty and holds no {STAMP_NAME}; give an empty or new folder for data=shapes")
    if stamp is not None:
        _remove_outputs(root, stamp.get("params", {}))
    write_json(root / STAMP_NAME, {"params": params, "complete": False})
    first_id = 1
    for split, count in params["splits"].items():
        _write_split(root, split, range(first_id, first_id + count), params, show_progress)
        first_id += count
    write_json(root / STAMP_NAME, {"params": params, "complete": True})
    return _summary(root, params, generated=True)


def _validated_params(
    splits: Mapping[str, int] | None, image_size: int, captions_per_image: int, seed: int, year: str
) -> dict[str, Any]:
    splits = dict(DEFAULT_SPLITS if splits is None else splits)
    if not splits:
        raise UserError("splits is empty; give at least one split, e.g. {'train': 1000}")
    for split, count in splits.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(split)):
            raise UserError(f"split name {split!r} must be lower-case letters, digits or '_'")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise UserError(f"split {split!r} needs a whole number of images >= 0, got {count!r}")
    if not isinstance(image_size, int) or image_size < MIN_IMAGE_SIZE:
        raise UserError(f"image_size must be an integer >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    if not isinstance(captions_per_image, int) or not 1 <= captions_per_image <= MAX_CAPTIONS_PER_IMAGE:
        raise UserError(
            f"captions_per_image must be between 1 and {MAX_CAPTIONS_PER_IMAGE}, got {captions_per_image!r}"
        )
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be an integer >= 0, got {seed!r}")
    if not re.fullmatch(r"[A-Za-z0-9]*", str(year)):
        raise UserError(f"year must be letters and digits, e.g. '2017', got {year!r}")
    return {
        "version": FORMAT_VERSION,
        "splits": splits,
        "image_size": image_size,
        "captions_per_image": captions_per_image,
        "seed": seed,
        "year": str(year),
    }


def _paths(root: Path, split: str, year: str) -> dict[str, Path]:
    return {
        "images_dir": root / f"{split}{year}",
        "annotations": root / "annotations" / f"captions_{split}{year}.json",
        "scenes": root / "annotations" / f"scenes_{split}{year}.json",
    }


def _read_stamp(root: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((root / STAMP_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        return {}  # a broken stamp of ours: treat as an incomplete dataset
    return stamp if isinstance(stamp, dict) else {}


def _on_disk(root: Path, params: dict[str, Any]) -> bool:
    """Cheap check that nothing was deleted since the stamp was written."""
    for split, count in params["splits"].items():
        paths = _paths(root, split, params["year"])
        if not (paths["annotations"].is_file() and paths["scenes"].is_file() and paths["images_dir"].is_dir()):
            return False
        if sum(1 for _ in paths["images_dir"].glob("*.jpg")) != count:
            return False
    return True


def _remove_outputs(root: Path, params: dict[str, Any]) -> None:
    """Delete what an earlier (different or unfinished) run wrote, so no stale file survives."""
    (root / STAMP_NAME).unlink(missing_ok=True)
    for split in params.get("splits", {}):
        paths = _paths(root, split, str(params.get("year", "")))
        shutil.rmtree(paths["images_dir"], ignore_errors=True)
        paths["annotations"].unlink(missing_ok=True)
        paths["scenes"].unlink(missing_ok=True)


def _write_split(root: Path, split: str, image_ids: range, params: dict[str, Any], show_progress: bool) -> None:
    paths = _paths(root, split, params["year"])
    size, per_image = params["image_size"], params["captions_per_image"]
    images, annotations, scenes = [], [], {}
    with _BackgroundWriter() as writer:
        for image_id in _track(image_ids, f"shapes {split}", show_progress):
            jpeg, scene, boxes, captions = render_image(params["seed"], image_id, size, per_image)
            writer.write(paths["images_dir"] / _file_name(image_id), jpeg)
            images.append(_coco_image(image_id, _file_name(image_id), size))
            first = (image_id - 1) * per_image + 1
            annotations += [{"id": first + k, "image_id": image_id, "caption": c} for k, c in enumerate(captions)]
            scenes[str(image_id)] = _scene_json(scene, boxes)
    write_json(paths["annotations"], _coco_captions(images, annotations, params["year"]), indent=None)
    write_json(paths["scenes"], scenes, indent=None)


class _BackgroundWriter:
    """Atomic file writes on a few threads, so each write's fsync overlaps drawing the next images.

    At most ``max_pending`` writes are in flight; leaving the ``with`` block waits for all of them and re-raises the
    first error.
    """

    def __init__(self, threads: int = WRITER_THREADS, max_pending: int = 256) -> None:
        self._pool = ThreadPoolExecutor(threads)
        self._pending: deque[Future[None]] = deque()
        self._max_pending = max_pending

    def write(self, path: Path, data: bytes) -> None:
        self._pending.append(self._pool.submit(write_bytes, path, data))
        while len(self._pending) > self._max_pending:
            self._pending.popleft().result()

    def __enter__(self) -> _BackgroundWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._pending.popleft().result()
        finally:
            self._pool.shutdown(cancel_futures=True)


def render_image(
    seed: int, image_id: int, image_size: int, captions_per_image: int
) -> tuple[bytes, Scene, list[Box], list[str]]:
    """Sample, draw and caption one image; a pure function of its arguments.

    Returns:
        The JPEG bytes, the drawn scene (canonical), one box per scene object and the captions.
    """
    rng = np.random.default_rng([seed, image_id])
    scene = sample_scene(rng)
    boxes = place(scene, rng, image_size)
    image = draw(scene, boxes, rng, image_size)
    captions = describe(scene, captions_per_image, rng)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buffer.getvalue(), scene, boxes, captions


def _scene_json(scene: Scene, boxes: list[Box]) -> dict[str, Any]:
    obj = scene.to_json()
    for shape, box in zip(obj["objects"], boxes, strict=True):
        shape["box"] = [round(v, 2) for v in (box.x0, box.y0, box.x1, box.y1)]
    return obj


def _coco_image(image_id: int, file_name: str, size: int) -> dict[str, Any]:
    return {
        "id": image_id,
        "file_name": file_name,
        "width": size,
        "height": size,
        "license": 1,
        "coco_url": "",
        "flickr_url": "",
        "date_captured": "",
    }


def _coco_captions(images: list[dict], annotations: list[dict], year: str) -> dict[str, Any]:
    info = {
        "description": "mmtrain synthetic shapes captions",
        "version": str(FORMAT_VERSION),
        "year": int(year) if year.isdigit() else year,
        "contributor": "mmtrain",
        "url": "",
        "date_created": "",
    }
    licenses = [{"id": 1, "name": "Public Domain (procedurally generated)", "url": ""}]
    return {"info": info, "licenses": licenses, "images": images, "annotations": annotations}


def _file_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def _track(items: range, description: str, enabled: bool) -> Iterable[int]:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description)


def _summary(root: Path, params: dict[str, Any], *, generated: bool) -> dict[str, Any]:
    splits = {}
    for split, count in params["splits"].items():
        paths = {key: str(path) for key, path in _paths(root, split, params["year"]).items()}
        splits[split] = {**paths, "num_images": count, "num_captions": count * params["captions_per_image"]}
    return {"root": str(root), "generated": generated, "params": params, "splits": splits}
