"""Expand caption inputs (files, folders, globs, list files) into image paths, in a stable order."""

from __future__ import annotations

import glob
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def expand_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image paths for ``inputs`` and the inputs that matched nothing, as ``(input, reason)``.

    A ``.txt`` file lists one path per line (blank lines and ``#`` comments skipped); a relative path is taken from
    the list's folder, or from the working directory when it exists only there.
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
        else:
            found.append(path)  # a missing file is reported when it is read
    unique = list(dict.fromkeys(found))
    return unique, missing


def _list_entry(list_file: Path, line: str) -> Path:
    """A path from a list file: absolute as is; relative from the list's folder, else from the working directory."""
    entry = Path(line)
    if entry.is_absolute():
        return entry
    beside_list = list_file.parent / entry
    return entry if entry.exists() and not beside_list.exists() else beside_list
