"""mmtrain caption: caption images with a trained model; unreadable images are reported and skipped."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from mmtrain.errors import EXIT_PARTIAL, UserError

log = logging.getLogger("mmtrain.caption")


def _load_images(paths: list[Path], size: int, mode: str):
    """Decode what can be decoded; return (kept paths, uint8 arrays, [(path, reason)] failures)."""
    from mmtrain.data.images import ImageRejected, ResizeSpec, load_image

    spec = ResizeSpec(size=size, mode=mode)
    kept, arrays, failed = [], [], []
    for path in paths:
        try:
            arrays.append(load_image(path, spec))
            kept.append(path)
        except ImageRejected as err:
            failed.append((str(path), err.reason))
    return kept, arrays, failed


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} captions")
    table.add_column("image", overflow="fold")
    table.add_column("caption")
    for row in rows:
        table.add_row(row["file"], row["caption"])
    Console(stderr=False).print(table)


def _caption_all(model, arrays: list, decoding, batch_size: int) -> list[list[str]]:
    """Captions per image; a batch that runs out of accelerator memory is halved and retried."""
    import numpy as np
    import torch

    from mmtrain.models.oom import map_batches_halving
    from mmtrain.progress import progress_bar

    def caption_batch(batch: list) -> list[list[str]]:
        images = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8
        return model.caption(images, decoding)

    with torch.inference_mode(), progress_bar("captioning", len(arrays)) as advance:
        return map_batches_halving(caption_batch, arrays, batch_size, on_done=advance)


def _write_outputs(cfg: DictConfig, rows: list[dict], skipped: list[tuple[str, str]], references) -> None:
    from mmtrain.io import write_json, write_jsonl

    out = Path(cfg.out)
    write_jsonl(out / "captions.jsonl", rows)
    write_json(out / "results.json", [{"image_id": r["image_id"], "caption": r["caption"]} for r in rows])
    if skipped:
        write_jsonl(out / "skipped.jsonl", ({"input": i, "reason": r} for i, r in skipped))
    if cfg.html:
        from mmtrain.outputs.coco import references_by_file
        from mmtrain.outputs.gallery import write_gallery

        matched = references_by_file([r["file"] for r in rows], references) if references else None
        page = write_gallery(
            cfg.html, rows, references=matched, title=f"mmtrain captions: {Path(cfg.ckpt).name}", embed=cfg.html_embed
        )
        print(f"mmtrain caption: wrote gallery {page}", file=sys.stderr)


def run(cfg: DictConfig) -> list[dict]:
    from hydra.utils import instantiate

    from mmtrain.data.inputs import expand_inputs
    from mmtrain.models.loading import load_model
    from mmtrain.outputs.coco import assign_image_ids, load_references

    inputs = list(cfg.inputs) if isinstance(cfg.inputs, (list, ListConfig)) else [str(cfg.inputs)]
    paths, unmatched = expand_inputs([str(i) for i in inputs])
    references = load_references(cfg.references) if cfg.references else None
    model = load_model(cfg.ckpt).to(cfg.device)
    resize = model.extra.get("resize", {})
    size = int(resize.get("size", model.captioner.encoder.img_size))
    kept, arrays, failed = _load_images(paths, size, resize.get("mode", "center_crop"))
    for item, reason in unmatched + failed:
        print(f"mmtrain caption: skipped {item}: {reason}", file=sys.stderr)
    if not kept:
        raise UserError(
            f"no image could be captioned ({len(paths)} paths, {len(failed) + len(unmatched)} failed)",
            exit_code=EXIT_PARTIAL,
        )
    decoding = model.decoding if cfg.use_checkpoint_decoding else instantiate(cfg.decoding)
    captions = _caption_all(model, arrays, decoding, int(cfg.batch_size))
    image_ids = assign_image_ids(kept, references)
    rows = [
        {"file": str(path), "image_id": image_id, "caption": seqs[0], "captions": seqs}
        for path, image_id, seqs in zip(kept, image_ids, captions, strict=True)
    ]
    _write_outputs(cfg, rows, unmatched + failed, references)
    if cfg.table:
        _print_table(rows)
    else:
        for row in rows:
            print(json.dumps({"file": row["file"], "image_id": row["image_id"], "caption": row["caption"]}))
    return rows
