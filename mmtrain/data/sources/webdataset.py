"""WebDataset tar shards as img2dataset writes them: ``KEY.jpg`` (or ``.png``/``.webp``) with ``KEY.txt`` or a
``KEY.json`` holding a ``caption`` field.

Shards are named by local paths, globs (``shards/*.tar``), brace patterns (``shard-{00000..00009}.tar``,
``{a,b}.tar``) or URLs. A URL (``http``, ``https``, ``s3`` and whatever else fsspec reads; ``http``, ``https`` and
``file`` without it) is downloaded once into a cache folder and read from there.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import re
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlparse

from mmtrain.data.remote import is_url
from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.errors import UserError
from mmtrain.io import atomic_open

log = logging.getLogger(__name__)
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
BRACE = re.compile(r"\{([^{}]*)\}")
RANGE = re.compile(r"(\d+)\.\.(\d+)")
MEMBER = re.compile(r"^((?:.*/)?[^./][^/]*?)\.([^/]*)$")  # KEY.EXT, KEY ending at the first dot of the base name
DEFAULT_CACHE = Path("~/.cache/mmtrain/shards")


def expand_braces(pattern: str) -> list[str]:
    """All names a brace pattern stands for, in order: ``a{1..3}`` -> a1 a2 a3, ``{x,y}.tar`` -> x.tar y.tar.

    Numeric ranges keep the zero padding of their bounds; braces nest only side by side, not inside each other.
    """
    match = BRACE.search(pattern)
    if match is None:
        return [pattern]
    head, body, tail = pattern[: match.start()], match[1], pattern[match.end() :]
    bounds = RANGE.fullmatch(body)
    if bounds:
        low, high = int(bounds[1]), int(bounds[2])
        padded = any(len(bound) > 1 and bound.startswith("0") for bound in (bounds[1], bounds[2]))
        width = max(len(bounds[1]), len(bounds[2])) if padded else 0
        step = 1 if high >= low else -1
        choices = [str(n).zfill(width) for n in range(low, high + step, step)]
    elif "," in body:
        choices = body.split(",")
    else:
        choices = ["{" + body + "}"]  # not a pattern: keep it literally
    return [head + choice + rest for choice in choices for rest in expand_braces(tail)]


def _open_url(url: str) -> IO[bytes]:
    try:
        import fsspec
    except ImportError:
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https", "file"):
            raise UserError(f"{url}: reading {scheme}:// shards needs fsspec (pip install fsspec s3fs)") from None
        from urllib.request import urlopen

        return urlopen(url, timeout=60)
    return fsspec.open(url, "rb").open()


def fetch(url: str, cache_dir: Path) -> Path:
    """The local copy of the shard at ``url``, downloaded into ``cache_dir`` unless a complete copy is there."""
    name = Path(urlparse(url).path).name or "shard.tar"
    target = cache_dir / f"{hashlib.sha1(url.encode()).hexdigest()[:12]}-{name}"
    if target.is_file():
        return target
    log.info("downloading %s -> %s", url, target)
    try:
        with _open_url(url) as source, atomic_open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except (OSError, ValueError, ImportError) as err:
        raise UserError(f"{url}: download failed ({type(err).__name__}: {err})") from None
    return target


def resolve_shards(patterns: Sequence[str], cache_dir: Path) -> list[Path]:
    """Local shard paths for ``patterns`` (braces expanded, globs sorted, URLs fetched), in the order given."""
    shards: list[Path] = []
    for pattern in patterns:
        for name in expand_braces(str(pattern)):
            if is_url(name):
                shards.append(fetch(name, cache_dir))
            elif glob.has_magic(name):
                matches = sorted(glob.glob(name))
                if not matches:
                    raise UserError(f"{name}: no shard matches this pattern")
                shards += [Path(match) for match in matches]
            elif Path(name).is_file():
                shards.append(Path(name))
            else:
                raise UserError(f"{name}: shard not found")
    return shards


def _member_caption(tar: tarfile.TarFile, shard: Path, info: tarfile.TarInfo, ext: str) -> list[str]:
    """The captions in one ``.txt`` or ``.json`` member (none when the json has no ``caption``)."""
    handle = tar.extractfile(info)
    try:
        text = (handle.read() if handle is not None else b"").decode("utf-8-sig").strip()
    except UnicodeDecodeError as err:
        raise UserError(f"{shard}:{info.name}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if ext == "txt" or not text:
        return [text] if text else []
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{shard}:{info.name}: invalid JSON at line {err.lineno} column {err.colno}") from None
    if not isinstance(record, dict):
        raise UserError(f"{shard}:{info.name}: expected a JSON object, got {type(record).__name__}")
    caption = record.get("caption")
    if caption is None or caption == "":
        return []
    if isinstance(caption, str):
        return [caption]
    if isinstance(caption, list) and all(isinstance(c, str) for c in caption):
        return caption
    raise UserError(f"{shard}:{info.name}: 'caption' must be text, got {str(caption)[:60]}")


def _group_members(tar: tarfile.TarFile) -> dict[str, dict[str, tarfile.TarInfo]]:
    """KEY -> {ext: member}, in archive order; directories and hidden files are skipped."""
    groups: dict[str, dict[str, tarfile.TarInfo]] = {}
    for info in tar.getmembers():
        match = MEMBER.match(info.name)
        if info.isfile() and match:
            groups.setdefault(match[1], {})[match[2].lower()] = info
    return groups


def read_shard(shard: Path, report: SourceReport) -> list[tuple[str, str, list[str]]]:
    """``(key, image member, captions)`` for each image in the shard; orphan captions are counted in ``report``."""
    rows = []
    try:
        with tarfile.open(shard) as tar:
            for key, members in _group_members(tar).items():
                image = next((members[ext] for ext in IMAGE_EXTS if ext in members), None)
                text = next((ext for ext in ("txt", "json") if ext in members), None)
                captions = _member_caption(tar, shard, members[text], text) if text else []
                if text == "txt" and not captions and "json" in members:
                    captions = _member_caption(tar, shard, members["json"], "json")
                if image is None:
                    report.captions_for_unknown_images += len(captions)
                    continue
                report.images_without_captions += not captions
                rows.append((key, image.name, captions))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise UserError(f"{shard}: not a readable tar shard ({err})") from None
    return rows


def image_ids(keys: list[str], numeric: bool) -> list[int]:
    """``int(KEY)`` when every key's base name is a number and those numbers are unique; else 1, 2, ... in order."""
    if numeric:
        names = [key.rsplit("/", 1)[-1] for key in keys]
        if all(name.isascii() and name.isdigit() for name in names):
            ids = [int(name) for name in names]
            if len(set(ids)) == len(ids):
                return ids
    return list(range(1, len(keys) + 1))


class WebDataset:
    """Reads image-caption pairs from WebDataset tar shards.

    Args:
        shards: a pattern or list of patterns (paths, globs, brace patterns, URLs) all in ``split``, or a mapping
            split -> pattern(s), e.g. ``{train: shards/train-*.tar, val: shards/val-0000.tar}``.
        split: the split of every shard when ``shards`` is not a mapping.
        cache_dir: where URLs are downloaded to (default ``~/.cache/mmtrain/shards``).
        numeric_ids: use the keys as image ids when they are unique numbers (img2dataset's are); otherwise, or when
            false, images are numbered 1, 2, ... in shard order.
    """

    def __init__(
        self,
        *,
        shards: str | Sequence[str] | Mapping[str, str | Sequence[str]],
        split: str = "train",
        cache_dir: str | None = None,
        numeric_ids: bool = True,
    ) -> None:
        raw = shards if isinstance(shards, Mapping) else {split: shards}
        self.shards = {str(name): [p] if isinstance(p, str) else [str(x) for x in p] for name, p in raw.items()}
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE.expanduser()
        self.numeric_ids = numeric_ids

    def read(self) -> tuple[list[Sample], SourceReport]:
        """Every image of every shard, split by split in shard and archive order, plus what was noticed."""
        report, rows = SourceReport(), []
        for split, patterns in self.shards.items():
            for shard in resolve_shards(patterns, self.cache_dir):
                rows += [(split, shard, *row) for row in read_shard(shard, report)]
        if not rows:
            report.warnings.append(f"no images found in the shards {self.shards}")
        ids = image_ids([key for _, _, key, _, _ in rows], self.numeric_ids)
        samples = [
            Sample(image_id, member, shard, captions, split, archive=str(shard))
            for image_id, (split, shard, _, member, captions) in zip(ids, rows, strict=True)
        ]
        return samples, report
