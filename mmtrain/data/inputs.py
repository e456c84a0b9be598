"""Caption inputs: expand files, folders, globs and list files into image paths in a stable order, and stream them
decoded in batches (``caption`` and ``index`` read image folders of any size this way)."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmtrain.data.images import ImageRejected, ResizeSpec, load_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image paths for ``inputs`` and the inputs that matched nothing, as ``(input, reason)``.

    A ``.txt`` file lists one path per line (blank lines and ``#`` comments skipped); a relative path is taken from
    the list's folder, or from the working directory when it exists only there. A ``.jsonl`` file lists images with
    prompts (see :func:`prompted_list`).
    Folders are searched recursively for image suffixes; globs are expanded. Duplicates are dropped.
    """
    found: list[Path] = []
    missing: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if any(ch in item for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True))
            found += matches or []
            if not matches:
                missing.append((item, "glob matched no file"))
        elif path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.suffix.lower() == ".txt" and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    found.append(_list_entry(path, line))
        elif path.suffix.lower() == ".jsonl" and path.is_file():
            found += list(prompted_list(path))
        else:
            found.append(path)  # a missing file is reported when it is read
    unique = list(dict.fromkeys(found))
    return unique, missing


def prompted_list(list_file: Path) -> dict[Path, list[str]]:
    """The images of a JSONL input list (``{"image": PATH, "prompt": TEXT}`` a line; paths as in a ``.txt`` list)
    with each one's prompts, once each in first-seen order; an image may come on several lines."""
    from mmtrain.data.sources.table import jsonl_rows
    from mmtrain.errors import UserError

    prompts: dict[Path, list[str]] = {}
    for number, row in jsonl_rows(list_file):
        image, prompt = row.get("image"), row.get("prompt", "")
        if not isinstance(image, str) or not image.strip() or not isinstance(prompt, str):
            raise UserError(f'{list_file}:{number}: expected {{"image": PATH, "prompt": TEXT}}, got {str(row)[:80]}')
        own = prompts.setdefault(_list_entry(list_file, image.strip()), [])
        if prompt.strip() not in own:
            own.append(prompt.strip())
    return prompts


def input_prompts(inputs: list[str]) -> dict[Path, list[str]] | None:
    """Each image's prompts from the JSONL lists among ``inputs``; None when there is no such list."""
    lists = [Path(item) for item in inputs if item.lower().endswith(".jsonl") and Path(item).is_file()]
    if not lists:
        return None
    prompts: dict[Path, list[str]] = {}
    for list_file in lists:
        for image, own in prompted_list(list_file).items():
            known = prompts.setdefault(image, [])
            known += [p for p in own if p not in known]
    return prompts


def _list_entry(list_file: Path, line: str) -> Path:
    """A path from a list file: absolute as is; relative from the list's folder, else from the working directory."""
    entry = Path(line)
    if entry.is_absolute():
        return entry
    beside_list = list_file.parent / entry
    return entry if entry.exists() and not beside_list.exists() else beside_list


@dataclass
class ImageBatch:
    """Consecutive inputs of :func:`stream_images`, decoded.

    Attributes:
        positions: input index of each decoded image.
        paths: their paths.
        images: uint8 (B, H, W, 3), or None when no image of the batch could be read.
        failed: ``(path, reason)`` of the inputs of the batch that could not be read, in input order.
    """

    positions: list[int]
    paths: list[Path]
    images: Any
    failed: list[tuple[str, str]]


def stream_images(
    paths: list[Path], spec: ResizeSpec, *, batch_size: int, num_workers: int = 0
) -> Iterator[ImageBatch]:
    """Decode and resize ``paths`` in order, ``batch_size`` inputs at a time, in ``num_workers`` processes (0: here).

    At most ``2 * num_workers`` batches are decoded ahead, so memory does not grow with the number of inputs; an
    unreadable image is reported in its batch's ``failed`` and the others are kept.
    """
    from torch.utils.data import DataLoader

    loader = DataLoader(
        _ImageFiles(paths, spec),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_collate_images,
        prefetch_factor=2 if num_workers else None,
    )
    yield from loader


class _ImageFiles:
    """Map-style: item ``i`` is ``(i, path, image or None, reason or None)`` for the ``i``-th path."""

    def __init__(self, paths: list[Path], spec: ResizeSpec) -> None:
        self.paths, self.spec = paths, spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Path, np.ndarray | None, str | None]:
        path = self.paths[index]
        try:
            return index, path, load_image(path, self.spec), None
        except ImageRejected as err:
            return index, path, None, err.reason


def _collate_images(items: list[tuple[int, Path, np.ndarray | None, str | None]]) -> ImageBatch:
    import torch

    kept = [(i, path, image) for i, path, image, _ in items if image is not None]
    images = torch.from_numpy(np.stack([image for _, _, image in kept])) if kept else None  # (B, H, W, 3)
    failed = [(str(path), reason) for _, path, _, reason in items if reason is not None]
    return ImageBatch([i for i, _, _ in kept], [path for _, path, _ in kept], images, failed)
