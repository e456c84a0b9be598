"""Build or grow an index folder: embed the images not yet in it, keep the rows of those that did not change."""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmtrain.errors import EXIT_PARTIAL, UserError
from mmtrain.retrieval.folder import DTYPES, MANIFEST, Entry, IndexFolder, read_folder, write_folder


@dataclass
class BuildReport:
    """What one ``mmtrain index`` run did."""

    images: int = 0  # in the index after the run
    added: int = 0
    kept: int = 0
    removed: int = 0  # files that were indexed and are gone from disk (or changed, and were embedded again)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)
    written: bool = False
    backend: str = "exact"

    def as_dict(self) -> dict:
        return {**self.__dict__, "skipped": len(self.skipped)}


def text_lowercase(model) -> bool:
    """Whether the model's training captions were lowercased (read from its store's manifest; True if unknown)."""
    store = model.extra.get("store")
    manifest = Path(str(store)) / "manifest.json" if store else None
    if manifest is None or not manifest.is_file():
        return True
    try:
        return bool(json.loads(manifest.read_text(encoding="utf-8")).get("text", {}).get("lowercase", True))
    except (OSError, ValueError):
        return True


def _describe(model, ckpt: str | Path, digest: str) -> dict:
    """The manifest's model and checkpoint fields."""
    config = model.model_config
    return {
        "model": {
            "encoder": config.get("encoder", {}).get("model_name"),
            "fusion": str(config.get("fusion", {}).get("_target_", "")).rsplit(".", 1)[-1],
            "decoder_width": config.get("decoder", {}).get("d_model"),
            "trained_on": model.extra.get("data"),
        },
        "checkpoint": {"path": str(Path(ckpt).resolve()), "sha256": digest},
        "text": {"lowercase": text_lowercase(model), "max_tokens": 64},
        "resize": {"size": model.captioner.encoder.img_size, **(model.extra.get("resize") or {})},
    }


def same_checkpoint(old: IndexFolder, ckpt: str | Path, digest: str) -> None:
    """Refuse to mix embeddings of two models in one index, or to search an index with another model."""
    built = old.manifest.get("checkpoint", {})
    if built.get("sha256") != digest:
        raise UserError(
            f"{old.root} was built with checkpoint {built.get('path')} (sha256 {built.get('sha256')}), "
            f"not {ckpt} (sha256 {digest}); use that checkpoint, or another index folder for this one"
        )


def _plan(old: IndexFolder | None, paths: list[Path]) -> tuple[list[int], list[Path], int]:
    """(old rows to keep, paths to embed, count removed): unchanged indexed files keep their rows."""
    rows_kept, current = [], {}
    for row, entry in enumerate(old.entries if old is not None else []):
        path = Path(entry.file)
        if path.is_file() and Entry.of(path) == entry:
            rows_kept.append(row)
            current[entry.file] = row
    todo, seen = [], set(current)
    for path in paths:  # new or changed files, each once however it was named
        if str(path.resolve()) not in seen:
            seen.add(str(path.resolve()))
            todo.append(path)
    return rows_kept, todo, (len(old.entries) if old is not None else 0) - len(rows_kept)


def build_index(
    *,
    ckpt: str | Path,
    inputs: list[str],
    out: str | Path,
    dtype: str = "float32",
    batch_size: int = 64,
    workers: int = 2,
    device: str = "auto",
    backend: str = "auto",
) -> BuildReport:
    """Embed the images of ``inputs`` into the index folder ``out``, adding to what it already holds.

    Files indexed before keep their rows when their size and modification time are unchanged; changed files are
    embedded again and files gone from disk are dropped. Unreadable images are reported and skipped.
    """
    from mmtrain.data.inputs import expand_inputs
    from mmtrain.models.loading import load_model
    from mmtrain.progress import progress_bar
    from mmtrain.retrieval.backends import choose_backend
    from mmtrain.retrieval.embed import checkpoint_digest, embed_image_files, require_contrastive

    if dtype not in DTYPES:
        raise UserError(f"dtype={dtype}: choose float16 or float32")
    out = Path(out)
    old = read_folder(out, mmap=False) if (out / MANIFEST).is_file() else None
    paths, unmatched = expand_inputs([str(i) for i in inputs])
    model = load_model(ckpt).to(device)
    require_contrastive(model, ckpt)
    digest = checkpoint_digest(ckpt)
    if old is not None:
        same_checkpoint(old, ckpt, digest)
    rows_kept, todo, removed = _plan(old, paths)
    with progress_bar("embedding images", len(todo)) as advance:
        positions, embeddings, failed = embed_image_files(
            model, todo, batch_size=batch_size, workers=workers, on_batch=advance
        )
    report = BuildReport(added=len(positions), kept=len(rows_kept), removed=removed)
    report.skipped = unmatched + failed
    if old is None and not positions:
        raise UserError(
            f"no image could be indexed ({len(paths)} paths, {len(report.skipped)} failed)", exit_code=EXIT_PARTIAL
        )
    report.images = len(rows_kept) + len(positions)
    changed = positions or removed or old is None or old.manifest.get("dtype") != dtype
    name, approximate = choose_backend(backend, report.images)
    report.backend = f"{name} (approximate)" if approximate else name
    if not changed:
        return report
    parts = ([old.embeddings[rows_kept]] if old is not None else []) + [embeddings]
    vectors = np.concatenate([p.astype(dtype) for p in parts])  # (N, E)
    entries = ([old.entries[r] for r in rows_kept] if old is not None else []) + [Entry.of(todo[i]) for i in positions]
    manifest = _describe(model, ckpt, digest)
    manifest["created"] = (old.manifest.get("created") if old else None) or _now()
    manifest["updated"] = _now()
    faiss_bytes = None
    if approximate:
        searcher, trained_at = _approximate_index(old, rows_kept, vectors)
        manifest["faiss"] = {"index": searcher.kind, "nprobe": int(searcher.index.nprobe), "trained_at": trained_at}
        faiss_bytes = searcher.to_bytes()
    write_folder(out, manifest, entries, vectors, faiss_index=faiss_bytes)
    report.written = True
    return report


def _approximate_index(old: IndexFolder | None, rows_kept: list[int], vectors: np.ndarray):
    """(IVF index over ``vectors``, rows it was trained at): the old one grown when the index only grew and has not
    doubled since its lists were trained (k-means at a million rows takes minutes), else a new one."""
    from mmtrain.retrieval.backends import FaissSearch

    stored = old.data_path("faiss") if old is not None else None
    trained_at = int((old.manifest.get("faiss") or {}).get("trained_at", 0)) if old is not None else 0
    only_grew = old is not None and rows_kept == list(range(len(old.entries)))
    if stored is not None and stored.is_file() and only_grew and len(vectors) < 2 * trained_at:
        searcher = FaissSearch.from_bytes(stored.read_bytes())
        searcher.index.add(np.ascontiguousarray(vectors[len(rows_kept) :], dtype=np.float32))
        return searcher, trained_at
    return FaissSearch.build(vectors, approximate=True), len(vectors)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def print_skipped(report: BuildReport, command: str = "index") -> None:
    for item, reason in report.skipped:
        print(f"mmtrain {command}: skipped {item}: {reason}", file=sys.stderr)
