"""Checks across splits that a source cannot make alone: the same image in train and in val or test.

An image can leak between splits under the same id, as the same file, or as a copy with another name. Copies are
found by content: only files whose size is shared by files of another split are hashed, so a clean dataset costs one
``stat`` per file.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor

from mmtrain.data.sources.base import Sample

EXAMPLES_PER_LINE = 3
THREADS = 8
Identity = tuple[str, str]  # (absolute file or archive path, member or "")


def identity(sample: Sample) -> Identity:
    """What names the stored bytes: the absolute file path, or the absolute archive path and the member in it."""
    if sample.archive:
        return os.path.abspath(sample.archive), sample.file
    return os.path.abspath(sample.image_root / sample.file), ""


def display(sample: Sample) -> str:
    """A name a person can find: ``ROOT/FILE`` or ``ARCHIVE:MEMBER``."""
    return f"{sample.archive}:{sample.file}" if sample.archive else str(sample.image_root / sample.file)


def _across_splits(samples: Iterable[Sample], key: Callable[[Sample], Hashable]) -> list[list[Sample]]:
    """Groups of samples sharing ``key`` whose members are in more than one split."""
    groups: dict[Hashable, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[key(sample)].append(sample)
    return [group for group in groups.values() if len({s.split for s in group}) > 1]


def _describe(what: str, group: list[Sample]) -> str:
    splits = " and ".join(sorted({s.split for s in group}))
    shown = ", ".join(f"{display(s)} ({s.split})" for s in group[:EXAMPLES_PER_LINE])
    more = f" and {len(group) - EXAMPLES_PER_LINE} more" if len(group) > EXAMPLES_PER_LINE else ""
    return f"{what} in {splits}: {shown}{more}"


def _sha1(handle) -> str:
    digest = hashlib.sha1()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _file_size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None  # missing files are rejected (and named) by preprocess


def _file_digest(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return _sha1(handle)
    except OSError:
        return None


def _archive_sizes(archive: str) -> dict[str, int]:
    try:
        with tarfile.open(archive) as tar:
            return {info.name: info.size for info in tar.getmembers() if info.isfile()}
    except (tarfile.TarError, OSError, EOFError):
        return {}


def _archive_digests(archive: str, members: set[str]) -> dict[str, str]:
    digests = {}
    try:
        with tarfile.open(archive) as tar:
            for info in tar.getmembers():
                handle = tar.extractfile(info) if info.name in members else None
                if handle is not None:
                    digests[info.name] = _sha1(handle)
    except (tarfile.TarError, OSError, EOFError):
        pass
    return digests


def _sizes(keys: list[Identity], pool: ThreadPoolExecutor) -> dict[Identity, int]:
    """Byte size of every readable file or archive member in ``keys``."""
    files = [key for key in keys if not key[1]]
    archives = sorted({archive for archive, member in keys if member})
    sizes = dict(zip(files, pool.map(_file_size, [path for path, _ in files]), strict=True))
    for archive, members in zip(archives, pool.map(_archive_sizes, archives), strict=True):
        sizes.update({(archive, name): size for name, size in members.items()})
    wanted = set(keys)
    return {key: size for key, size in sizes.items() if size is not None and key in wanted}


def _digests(keys: list[Identity], pool: ThreadPoolExecutor) -> dict[Identity, str]:
    """sha1 of every readable file or archive member in ``keys``; each archive is read once."""
    files = [key for key in keys if not key[1]]
    wanted: dict[str, set[str]] = defaultdict(set)
    for archive, member in keys:
        if member:
            wanted[archive].add(member)
    digests = dict(zip(files, pool.map(_file_digest, [path for path, _ in files]), strict=True))
    for archive, found in zip(wanted, pool.map(_archive_digests, wanted, wanted.values()), strict=True):
        digests.update({(archive, member): digest for member, digest in found.items()})
    return {key: digest for key, digest in digests.items() if digest is not None}


def _by_content(samples: list[Sample]) -> list[str]:
    by_identity: dict[Identity, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_identity[identity(sample)].append(sample)
    with ThreadPoolExecutor(THREADS) as pool:
        sizes = _sizes(list(by_identity), pool)
        same_size = _across_splits((s for key in sizes for s in by_identity[key]), lambda s: sizes[identity(s)])
        digests = _digests(list(dict.fromkeys(identity(s) for group in same_size for s in group)), pool)
    copies = _across_splits((s for key in digests for s in by_identity[key]), lambda s: digests[identity(s)])
    copies = [group for group in copies if len({identity(s) for s in group}) > 1]
    return [_describe("identical image bytes", group) for group in copies]


def split_overlap(samples: list[Sample], *, by_content: bool = True) -> list[str]:
    """One line per image found in more than one split: by image id, by file, and (``by_content``) by sha1 of the
    bytes, which catches copies under other names. Empty when the splits are disjoint.
    """
    problems = [
        _describe(f"image id {group[0].image_id}", group) for group in _across_splits(samples, lambda s: s.image_id)
    ]
    problems += [_describe("the same file", group) for group in _across_splits(samples, identity)]
    if by_content:
        problems += _by_content(samples)
    return problems


MOSTLY_MISSING = 0.5  # a split with more than this share of its images missing has a wrong image root


def missing_images(samples: list[Sample], reasons: dict[int, str]) -> str | None:
    """A one-line explanation when most images of a split are missing on disk, else None.

    Args:
        samples: every sample, in source order.
        reasons: rejection reason (``"missing: PATH"``, ...) by image id.
    """
    for split in ("train", "val", "test"):
        members = [s for s in samples if s.split == split]
        missing = [s for s in members if reasons.get(s.image_id, "").startswith("missing")]
        if members and len(missing) > MOSTLY_MISSING * len(members):
            roots = sorted({str(s.archive or s.image_root) for s in missing})
            where = roots[0] if len(roots) == 1 else f"{roots[0]} (and {len(roots) - 1} more roots)"
            examples = ", ".join(s.file for s in missing[:EXAMPLES_PER_LINE])
            return (
                f"{len(missing)} of the {len(members)} {split} images are missing under {where} "
                f"(e.g. {examples}); check the image root (data.source.image_root or data.root)"
            )
    return None
