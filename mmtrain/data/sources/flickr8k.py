"""Flickr8k in its original layout: ``Flickr8k.token.txt`` plus one list of image names per split.

Token lines read ``NAME.jpg#K<TAB>caption`` (K is the caption number, 0-4). The split lists
(``Flickr_8k.trainImages.txt``, ``Flickr_8k.devImages.txt``, ``Flickr_8k.testImages.txt``) hold one name a line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.errors import UserError

TOKEN_LINE = re.compile(r"^(?P<name>[^\t#]+)#(?P<k>\d+)\t(?P<caption>.*)$")


def _lines(path: Path, what: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each non-blank line, with a one-line ``UserError`` for an unreadable file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.rstrip("\r")


def read_tokens(path: Path) -> dict[str, list[str]]:
    """Image name -> captions in file order, from a ``Flickr8k.token.txt`` file."""
    captions: dict[str, list[str]] = {}
    for number, line in _lines(path, "caption file"):
        match = TOKEN_LINE.match(line)
        if match is None:
            raise UserError(f"{path}:{number}: expected 'NAME.jpg#N<TAB>caption', got {line[:80]!r}")
        captions.setdefault(match["name"].strip(), []).append(match["caption"].strip())
    return captions


def read_split_list(path: Path) -> list[str]:
    """Image names of one split list, in file order, each once."""
    names = [line.strip() for _, line in _lines(path, "split list")]
    return list(dict.fromkeys(names))


class Flickr8k:
    """Reads Flickr8k captions and the official split lists.

    Image ids are 1, 2, ... in the sorted order of every listed file name, so they do not depend on the order of
    the files or of the ``splits`` mapping.

    Args:
        captions: the ``Flickr8k.token.txt`` file.
        image_root: the folder holding the ``.jpg`` files (``Flicker8k_Dataset`` in the download).
        splits: our split name -> its list file, e.g. ``{train: .../Flickr_8k.trainImages.txt, val: ...devImages}``.
    """

    def __init__(self, *, captions: str, image_root: str, splits: Mapping[str, str]) -> None:
        self.captions, self.image_root = Path(captions), Path(image_root)
        self.splits = {str(split): Path(path) for split, path in splits.items()}

    def read(self) -> tuple[list[Sample], SourceReport]:
        """Every listed image with its captions, split by split in list order, plus what was noticed."""
        captions = read_tokens(self.captions)
        listed = self._listed()
        ids = {name: index for index, name in enumerate(sorted(listed), start=1)}
        report = SourceReport()
        report.captions_for_unknown_images = sum(len(c) for name, c in captions.items() if name not in listed)
        samples = []
        for name, split in listed.items():
            found = captions.get(name, [])
            report.images_without_captions += not found
            samples.append(Sample(ids[name], name, self.image_root, found, split))
        return samples, report

    def _listed(self) -> dict[str, str]:
        """Image name -> split, refusing a name listed in two splits."""
        listed: dict[str, str] = {}
        where: dict[str, Path] = {}
        for split, path in self.splits.items():
            for name in read_split_list(path):
                if name in listed:
                    raise UserError(f"{path}: {name} is also listed in {where[name]} ({listed[name]} split)")
                listed[name], where[name] = split, path
        return listed
