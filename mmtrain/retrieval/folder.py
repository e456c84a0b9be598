"""The index folder on disk: unit image embeddings, the file list and ``manifest.json``.

Layout of ``INDEX``::

    manifest.json            written last: the commit point; names the data files of the current generation
    embeddings-GEN.npy       (N, E) unit vectors, float16 or float32, row i belongs to line i of the file list
    files-GEN.jsonl          one line per image: {"file", "size", "mtime_ns"} (absolute path, for incremental runs)
    faiss-GEN.index          optional: an approximate FAISS index over the embeddings (large indexes only)

Data files are never overwritten: each update writes a new generation beside the old one (each file atomically),
then replaces the manifest, then deletes the old generation. A reader that opens the manifest always finds a whole,
consistent generation; a crash at any point leaves the previous one in use.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mmtrain.errors import UserError
from mmtrain.io import atomic_open, read_json, write_json

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class Entry:
    """One indexed image: its absolute path and the size and modification time it had when it was embedded."""

    file: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Entry:
        stat = path.stat()
        return cls(str(path.resolve()), int(stat.st_size), int(stat.st_mtime_ns))


@dataclass
class IndexFolder:
    """What an index folder holds, as read from its manifest."""

    root: Path
    manifest: dict
    entries: list[Entry]
    embeddings: np.ndarray  # (N, E) unit vectors

    @property
    def files(self) -> list[str]:
        return [entry.file for entry in self.entries]

    def data_path(self, key: str) -> Path | None:
        """The file of the current generation named by manifest key ``key`` (e.g. "faiss"), if there is one."""
        name = (self.manifest.get("files") or {}).get(key)
        return self.root / name if name else None


def read_folder(root: str | Path, *, mmap: bool = True) -> IndexFolder:
    """Read the index at ``root``; a folder that is not a whole index is one ``UserError`` naming what is wrong."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        what = "no such folder" if not root.exists() else f"not an mmtrain index (no {MANIFEST})"
        raise UserError(f"{root}: {what}; build one with: mmtrain index ckpt=CKPT inputs=[DIR/] out={root}")
    manifest = read_json(root / MANIFEST, "index manifest")
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{root / MANIFEST}: not an index manifest of format version {FORMAT_VERSION}")
    names = manifest.get("files") or {}
    try:
        embeddings = np.load(root / names["embeddings"], mmap_mode="r" if mmap else None)
        lines = (root / names["list"]).read_text(encoding="utf-8").splitlines()
        entries = [Entry(**json.loads(line)) for line in lines if line.strip()]
    except (KeyError, OSError, ValueError, TypeError) as err:
        raise UserError(f"{root}: index data unreadable ({type(err).__name__}: {str(err)[:120]})") from None
    count, dim = int(manifest.get("images", -1)), int(manifest.get("embed_dim", -1))
    if embeddings.shape != (count, dim) or len(entries) != count:
        raise UserError(
            f"{root}: index data do not match its manifest ({count} images of width {dim}; "
            f"embeddings {tuple(embeddings.shape)}, {len(entries)} files)"
        )
    return IndexFolder(root, manifest, entries, embeddings)


def write_folder(
    root: str | Path, manifest: dict, entries: list[Entry], embeddings: np.ndarray, *, faiss_index: bytes | None = None
) -> dict:
    """Write a new generation of the index at ``root`` and commit it by replacing the manifest.

    Args:
        root: The index folder (created when missing).
        manifest: Model and checkpoint fields; counts, names and the generation are filled in here.
        entries: One per row of ``embeddings``.
        embeddings: (N, E) unit vectors in float16 or float32.
        faiss_index: A serialised FAISS index over ``embeddings``, stored beside them.

    Returns:
        The manifest as written.
    """
    root = Path(root)
    if str(embeddings.dtype) not in DTYPES:
        raise ValueError(f"index embeddings must be one of {DTYPES}, got {embeddings.dtype}")
    if len(entries) != len(embeddings):
        raise ValueError(f"{len(entries)} files for {len(embeddings)} embeddings")
    previous = _current_names(root)
    generation = _next_generation(root)
    names = {"embeddings": f"embeddings-{generation:04d}.npy", "list": f"files-{generation:04d}.jsonl"}
    with atomic_open(root / names["embeddings"], "wb") as handle:
        np.save(handle, np.ascontiguousarray(embeddings))
    with atomic_open(root / names["list"]) as handle:
        handle.writelines(json.dumps(asdict(entry), ensure_ascii=False) + "\n" for entry in entries)
    if faiss_index is not None:
        names["faiss"] = f"faiss-{generation:04d}.index"
        with atomic_open(root / names["faiss"], "wb") as handle:
            handle.write(faiss_index)
    full = {
        **manifest,
        "format_version": FORMAT_VERSION,
        "generation": generation,
        "images": len(entries),
        "embed_dim": int(embeddings.shape[1]) if embeddings.ndim == 2 else 0,
        "dtype": str(embeddings.dtype),
        "files": names,
    }
    write_json(root / MANIFEST, full)
    for name in previous - set(names.values()):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()
    return full


def _current_names(root: Path) -> set[str]:
    """Data files of the committed generation and any left over by an interrupted update (to delete after)."""
    patterns = ("embeddings-*.npy", "files-*.jsonl", "faiss-*.index")
    return {path.name for pattern in patterns for path in root.glob(pattern)} if root.is_dir() else set()


def _next_generation(root: Path) -> int:
    stems = (name.split("-", 1)[1].split(".", 1)[0] for name in _current_names(root))
    return max((int(stem) for stem in stems if stem.isdigit()), default=0) + 1
