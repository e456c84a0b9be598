"""Preprocess: source -> validated, cleaned, decoded, tokenizer-trained store (see :mod:`mmtrain.data.store`).

Images are decoded in shards by a worker pool. Each finished shard is saved under ``OUT/.work`` so that a run killed
part-way resumes from the shards it already has; the store and manifest are assembled from the shards, in source
order, so a resumed run produces the same checksums as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing as mp
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmtrain.data.images import ImageRejected, ResizeSpec, load_image, read_archive_member, resolve_inside
from mmtrain.data.loader import resolve_workers
from mmtrain.data.prompts import clean_text, prompt_references
from mmtrain.data.sources.base import Sample, SourceReport
from mmtrain.data.store import (
    FORMAT_VERSION,
    MANIFEST,
    ImageCoding,
    coco_references,
    config_hash,
    read_manifest,
    write_split,
)
from mmtrain.data.text import CaptionStats
from mmtrain.errors import UserError
from mmtrain.io import write_bytes, write_json, write_jsonl
from mmtrain.tokens import train_sentencepiece

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TextSpec:
    """Caption cleaning and tokenizer settings."""

    lowercase: bool = True
    max_words: int = 40
    vocab_size: int = 8000
    model_type: str = "bpe"


def _decode_shard(task: tuple[str, list[tuple[int, str, str, str | None]], ResizeSpec]) -> tuple[str, list]:
    """Decode one shard in a worker: ``[(image_id, root, file, archive)]`` -> arrays or rejection reasons."""
    shard_path, rows, spec = task
    results = []
    for image_id, root, file, archive in rows:
        try:
            source = read_archive_member(archive, file) if archive else resolve_inside(Path(root), file)
            results.append((image_id, load_image(source, spec), None))
        except ImageRejected as err:
            results.append((image_id, None, err.reason + (f": {err.detail}" if err.detail else "")))
    return shard_path, results


def _save_shard(path: Path, results: list) -> None:
    """Save decoded images (one .npy stack) then the shard's index; the index appearing marks it complete."""
    from mmtrain.io import atomic_open

    kept = [image for _, image, _ in results if image is not None]
    with atomic_open(path.with_suffix(".npy"), "wb") as handle:
        np.save(handle, np.stack(kept) if kept else np.zeros((0, 1, 1, 3), np.uint8), allow_pickle=False)
    write_json(path.with_suffix(".json"), [[image_id, reason] for image_id, _, reason in results], indent=None)


def _vocab_size(model: bytes) -> int:
    """The size of the trained vocabulary (SentencePiece stops below the asked size on a small corpus)."""
    from mmtrain.tokens import Tokenizer

    return Tokenizer(model).vocab_size


def _load_shard(path: Path) -> list:
    index = json.loads(path.with_suffix(".json").read_text())
    images = iter(np.load(path.with_suffix(".npy"), allow_pickle=False))
    return [(image_id, None if reason else next(images), reason) for image_id, reason in index]


class Preprocessor:
    """Runs the whole preprocess for one source into ``out_dir``.

    Args:
        source: an object with ``read() -> (samples, SourceReport)``.
        out_dir: the store folder.
        resize: image sizing.
        text: caption cleaning and tokenizer settings.
        num_workers: decoding processes: a count (0 decodes in this process) or ``auto`` (one per core).
        strict: any rejected image stops the run before anything is written.
        shard_size: images per resumable work unit.
        fingerprint: the source's settings, part of the config hash.
        check_content: also look for identical image bytes across splits (not only ids and paths).
        image_coding: how the store keeps images (default JPEG at quality 90; ``ImageCoding(format="raw")``).
        dataset: what the store is made from (name, source, root), recorded in the manifest for run records.
    """

    def __init__(
        self,
        *,
        source,
        out_dir: str,
        resize: ResizeSpec,
        text: TextSpec,
        num_workers: int | str = "auto",
        strict: bool = False,
        shard_size: int = 512,
        fingerprint: dict | None = None,
        check_content: bool = True,
        image_coding: ImageCoding | None = None,
        dataset: dict | None = None,
    ) -> None:
        self.source, self.out = source, Path(out_dir)
        self.resize, self.text, self.strict, self.shard_size = resize, text, strict, shard_size
        self.num_workers = resolve_workers(num_workers, key="num_workers")
        self.check_content = check_content
        self.coding = image_coding or ImageCoding()
        self.dataset = dataset
        hashed = {"fingerprint": fingerprint, "resize": resize, "text": text, "v": FORMAT_VERSION}
        if self.coding.format != "raw":  # raw stores keep the hash they had before stores could hold JPEG
            hashed["image"] = self.coding.describe()
        self.hash = config_hash(hashed)

    def run(self) -> dict:
        """Preprocess (or do nothing when a complete store with the same config hash exists); return the manifest."""
        existing = read_manifest(self.out)
        if existing is not None and existing.get("config_hash") == self.hash:
            log.info("%s is complete and up to date (config hash %s); nothing to do", self.out, self.hash)
            return existing
        samples, report = self.source.read()
        by_split = self._validate(samples)
        stats = {split: CaptionStats() for split in by_split}
        cleaned = {
            s.image_id: clean_text(
                s.captions, s.prompts, stats[s.split], lowercase=self.text.lowercase, max_words=self.text.max_words
            )
            for s in samples
        }
        decoded = self._decode(by_split)
        rejected = [(s, decoded[s.image_id][1]) for s in samples if decoded[s.image_id][1]]
        rejected += [
            (s, "no_captions") for s in samples if not decoded[s.image_id][1] and not cleaned[s.image_id].captions
        ]
        self._stop_if_mostly_missing(samples, rejected)
        if self.strict and rejected:
            shutil.rmtree(self.out / ".work", ignore_errors=True)
            s, reason = rejected[0]
            raise UserError(f"{s.image_root / s.file}: {reason} ({len(rejected)} rejected in all; strict=true)")
        return self._write(by_split, cleaned, decoded, rejected, stats, report)

    def _stop_if_mostly_missing(self, samples: list[Sample], rejected: list) -> None:
        """A wrong image root: write ``rejected.jsonl`` (every missing file) and stop with how many, where, e.g."""
        from mmtrain.data.validate import missing_images

        problem = missing_images(samples, {s.image_id: reason for s, reason in rejected})
        if problem:
            self.out.mkdir(parents=True, exist_ok=True)
            rows = ({"split": s.split, "image_id": s.image_id, "file": s.file, "reason": r} for s, r in rejected)
            write_jsonl(self.out / "rejected.jsonl", rows)
            raise UserError(f"{problem}; each is listed in {self.out / 'rejected.jsonl'}")

    def _validate(self, samples: list[Sample]) -> dict[str, list[Sample]]:
        by_split: dict[str, list[Sample]] = {split: [] for split in SPLITS}
        seen: dict[int, str] = {}
        clashes = []
        for sample in samples:
            if sample.split not in by_split:
                raise UserError(f"unknown split {sample.split!r} (use {list(SPLITS)})")
            if sample.image_id in seen:
                clashes.append(f"{sample.image_id} ({seen[sample.image_id]}/{sample.split})")
            seen[sample.image_id] = sample.split
            by_split[sample.split].append(sample)
        if clashes:
            raise UserError(f"{len(clashes)} image ids appear twice (in two splits or one), e.g. {clashes[:5]}")
        from mmtrain.data.validate import split_overlap

        overlap = split_overlap(samples, by_content=self.check_content)
        if overlap:
            raise UserError("the same image is in two splits: " + "; ".join(overlap[:5]))
        for split, items in by_split.items():
            log.info("%-5s %d images", split, len(items))
        return by_split

    def _decode(self, by_split: dict[str, list[Sample]]) -> dict[int, tuple[np.ndarray | None, str | None]]:
        from mmtrain.progress import progress_bar

        work = self.out / ".work" / self.hash
        tasks, done = [], []
        for split, samples in by_split.items():
            for start in range(0, len(samples), self.shard_size):
                path = work / f"{split}-{start // self.shard_size:06d}"
                chunk = samples[start : start + self.shard_size]
                rows = [(s.image_id, str(s.image_root), s.file, s.archive) for s in chunk]
                (done if path.with_suffix(".json").is_file() else tasks).append((str(path), rows, self.resize))
        results: dict[int, tuple] = {}
        for path, _, _ in done:
            results.update({i: (image, reason) for i, image, reason in _load_shard(Path(path))})
        total = sum(len(t[1]) for t in tasks)
        with progress_bar("decoding images", total) as advance:
            pool = mp.get_context("fork").Pool(self.num_workers) if self.num_workers else None
            with pool or contextlib.nullcontext():
                for path, shard in (pool.imap_unordered if pool else map)(_decode_shard, tasks):
                    _save_shard(Path(path), shard)
                    results.update({i: (image, reason) for i, image, reason in shard})
                    advance(len(shard))
        return results

    def _write(self, by_split, cleaned, decoded, rejected, stats, report: SourceReport) -> dict:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / MANIFEST).unlink(missing_ok=True)  # the store is incomplete from here until the end
        shutil.rmtree(self.out / "features", ignore_errors=True)  # feature caches of the images being replaced
        bad = {s.image_id for s, _ in rejected}
        kept = {split: [s for s in samples if s.image_id not in bad] for split, samples in by_split.items()}
        train_text = [c for s in kept["train"] for c in cleaned[s.image_id].captions]
        if not train_text:
            raise UserError("the train split has no usable image with captions; nothing to train a tokenizer on")
        has_prompts = any(text.prompts is not None for text in cleaned.values())
        train_text += [p for s in kept["train"] for p in dict.fromkeys(cleaned[s.image_id].prompts or [])]
        model = train_sentencepiece(train_text, vocab_size=self.text.vocab_size, model_type=self.text.model_type)
        write_bytes(self.out / "tokenizer.model", model)
        splits = {}
        for split, samples in kept.items():
            items = ((s.image_id, decoded[s.image_id][0], cleaned[s.image_id].captions) for s in samples)
            prompts = {s.image_id: cleaned[s.image_id].prompts for s in samples} if has_prompts else None
            checksum = write_split(self.out, split, items, count_hint=len(samples), coding=self.coding, prompts=prompts)
            if has_prompts:
                refs = prompt_references(
                    [(s.image_id, s.file, cleaned[s.image_id]) for s in samples], f"{split} references"
                )
            else:
                refs = coco_references([(s.image_id, s.file, s.captions) for s in samples], f"{split} references")
            write_json(self.out / f"references_{split}.json", refs, indent=None)
            reasons = Counter(r.split(":")[0] for s, r in rejected if s.split == split)
            splits[split] = {
                "images": len(samples),
                "captions": stats[split].as_dict(),
                "rejected": sum(reasons.values()),
                "rejected_by_reason": dict(reasons),
                "checksum": checksum,
            }
        for name, path in report.extras.items():
            shutil.copyfile(path, self.out / f".tmp-{name}")
            (self.out / f".tmp-{name}").replace(self.out / name)
        write_jsonl(
            self.out / "rejected.jsonl",
            ({"split": s.split, "image_id": s.image_id, "file": s.file, "reason": r} for s, r in rejected),
        )
        manifest = {
            "format_version": FORMAT_VERSION,
            "config_hash": self.hash,
            "splits": splits,
            "tokenizer": {
                "file": "tokenizer.model",
                "vocab_size": _vocab_size(model),
                "vocab_size_asked": self.text.vocab_size,
                "model_type": self.text.model_type,
            },
            "image_size": self.resize.size,
            "image": self.coding.describe(),
            "text": {"lowercase": self.text.lowercase, "max_words": self.text.max_words},
            "resize": {"size": self.resize.size, "mode": self.resize.mode, "max_pixels": self.resize.max_pixels},
            "source": {
                "captions_for_unknown_images": report.captions_for_unknown_images,
                "images_without_captions": report.images_without_captions,
                "warnings": report.warnings,
            },
            "extras": sorted(report.extras),
            "dataset": self.dataset,
            **({"prompts": True} if has_prompts else {}),
        }
        write_json(self.out / MANIFEST, manifest)
        shutil.rmtree(self.out / ".work", ignore_errors=True)
        return manifest
