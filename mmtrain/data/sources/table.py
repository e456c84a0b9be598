"""Captions in a table: a CSV (or TSV) file with a header, or JSONL with one object a line.

Each row names an image (a path relative to ``image_root``) and one caption; rows of the same image are grouped. A
JSONL row may also give a list of captions. With a ``prompt_column`` each row also gives the prompt its captions
answer (a question), kept beside them (see :mod:`mmtrain.data.prompts`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.errors import UserError

SPLITS = ("train", "val", "test")
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass
class _Image:
    """One image while rows are grouped: its id, split, captions and the line it was first seen on."""

    image_id: int | None
    split: str
    line: int
    captions: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)


def _open(path: Path):
    try:
        return open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise UserError(f"{path}: caption table not found") from None


def csv_rows(path: Path, required: list[str]) -> Iterator[tuple[int, dict]]:
    """``(line number, row)`` for each row of a CSV/TSV file whose header has every ``required`` column."""
    with _open(path) as handle:
        reader = csv.DictReader(handle, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        try:
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: no column {missing[0]!r} in the header (columns: {reader.fieldnames})")
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as err:
            raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except csv.Error as err:
            raise UserError(f"{path}:{reader.line_num}: {err}") from None


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a JSONL file."""
    with _open(path) as handle:
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError as err:
            raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{number}: invalid JSON at column {err.colno}: {err.msg}") from None
        if not isinstance(row, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


class CaptionTable:
    """Reads a CSV or JSONL caption table.

    Args:
        file: the table; ``.csv``/``.tsv`` are read as CSV with a header row, ``.jsonl``/``.ndjson``/``.json`` as JSONL.
        image_root: folder the image paths are relative to.
        image_column: the column (or JSON key) holding the image path.
        caption_column: the column holding the caption (in JSONL, a caption or a list of captions).
        split_column: the column holding ``train``/``val``/``test``; None puts every image in ``split``.
        id_column: the column holding an integer image id; None numbers images 1, 2, ... in first-seen order.
        split: the split of every image when there is no ``split_column``.
        file_format: ``csv`` or ``jsonl``, when the file name's suffix does not say.
        prompt_column: the column holding each row's prompt (e.g. a question whose answers are the captions); None:
            no prompts.
    """

    def __init__(
        self,
        *,
        file: str,
        image_root: str,
        image_column: str = "image",
        caption_column: str = "caption",
        split_column: str | None = None,
        id_column: str | None = None,
        split: str = "train",
        file_format: str | None = None,
        prompt_column: str | None = None,
    ) -> None:
        self.file, self.image_root = Path(file), Path(image_root)
        self.image_column, self.caption_column = image_column, caption_column
        self.split_column, self.id_column, self.split = split_column, id_column, split
        self.prompt_column = prompt_column
        self.file_format = file_format or FORMATS.get(self.file.suffix.lower())
        if self.file_format not in ("csv", "jsonl"):
            raise UserError(f"{self.file}: cannot tell csv from jsonl by the name; set file_format to csv or jsonl")
        if split not in SPLITS:
            raise UserError(f"split must be one of {list(SPLITS)}, got {split!r}")

    def read(self) -> tuple[list[Sample], SourceReport]:
        """One sample per distinct image path, in first-seen order, with all its captions."""
        images: dict[str, _Image] = {}
        owners: dict[int, str] = {}
        for line, row in self._rows():
            file, captions = self._value(line, row, self.image_column), self._captions(line, row)
            image = images.get(file)
            if image is None:
                image = images[file] = self._new_image(line, row, file, owners)
                if image.image_id is not None:
                    owners[image.image_id] = file
            else:
                self._check_same(line, row, file, image)
            image.captions += captions
            if self.prompt_column:
                image.prompts += [self._prompt(line, row)] * len(captions)
        ids = [index if image.image_id is None else image.image_id for index, image in enumerate(images.values(), 1)]
        samples = [
            Sample(image_id, file, self.image_root, image.captions, image.split, prompts=self._prompts(image))
            for image_id, (file, image) in zip(ids, images.items(), strict=True)
        ]
        return samples, SourceReport()

    def _rows(self) -> Iterator[tuple[int, dict]]:
        if self.file_format == "jsonl":
            return jsonl_rows(self.file)
        columns = [self.image_column, self.caption_column, self.split_column, self.id_column, self.prompt_column]
        return csv_rows(self.file, [column for column in columns if column])

    def _value(self, line: int, row: dict, column: str) -> str:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise UserError(f"{self.file}:{line}: missing {column!r}")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise UserError(f"{self.file}:{line}: {column!r} must be text, got {str(value)[:60]}")
        return str(value).strip()

    def _prompts(self, image: _Image) -> list[str] | None:
        return image.prompts if self.prompt_column else None

    def _prompt(self, line: int, row: dict) -> str:
        """The row's prompt; a row without one names the option, so a misspelt column is found at once."""
        column = self.prompt_column
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise UserError(f"{self.file}:{line}: missing the prompt {column!r} (data.source.prompt_column={column})")
        return self._value(line, row, column)

    def _captions(self, line: int, row: dict) -> list[str]:
        value = row.get(self.caption_column)
        if isinstance(value, list) and value and all(isinstance(c, str) and c.strip() for c in value):
            return list(value)
        return [self._value(line, row, self.caption_column)]

    def _split(self, line: int, row: dict) -> str:
        if self.split_column is None:
            return self.split
        split = self._value(line, row, self.split_column)
        if split not in SPLITS:
            raise UserError(f"{self.file}:{line}: split {split!r} is not one of {list(SPLITS)}")
        return split

    def _image_id(self, line: int, row: dict) -> int | None:
        if self.id_column is None:
            return None
        value = self._value(line, row, self.id_column)
        try:
            return int(value)
        except ValueError:
            raise UserError(f"{self.file}:{line}: {self.id_column!r} must be an integer, got {value!r}") from None

    def _new_image(self, line: int, row: dict, file: str, owners: dict[int, str]) -> _Image:
        image = _Image(self._image_id(line, row), self._split(line, row), line)
        if image.image_id is not None and image.image_id in owners:
            other = owners[image.image_id]
            raise UserError(f"{self.file}:{line}: image id {image.image_id} already names {other!r}, not {file!r}")
        return image

    def _check_same(self, line: int, row: dict, file: str, image: _Image) -> None:
        """A later row of an image must agree with its first row on split and id."""
        split, image_id = self._split(line, row), self._image_id(line, row)
        if split != image.split:
            raise UserError(
                f"{self.file}:{line}: {file!r} is in {split!r} here but {image.split!r} on line {image.line}"
            )
        if image_id != image.image_id:
            raise UserError(
                f"{self.file}:{line}: {file!r} has id {image_id} here but {image.image_id} on line {image.line}"
            )
