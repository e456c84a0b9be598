"""mmtrain caption: caption images with a trained model; unreadable images are reported and skipped.

Images are decoded by loader workers while the model captions the previous batch, and each finished batch is appended
to ``OUT/captions.jsonl``, so memory stays bounded for a folder of any size; ``results.json`` (and ``skipped.jsonl``,
the gallery) are written whole at the end.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, ListConfig

from mmtrain.errors import EXIT_PARTIAL, UserError

log = logging.getLogger("mmtrain.caption")


def _print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} captions")
    table.add_column("image", overflow="fold")
    table.add_column("caption")
    for row in rows:
        table.add_row(row["file"], row["caption"])
    Console(stderr=False).print(table)


def _caption_stream(cfg: DictConfig, model, paths: list[Path], image_ids: list, decoding) -> tuple[list, list]:
    """Caption ``paths`` as workers decode them; append each finished batch's rows to ``OUT/captions.jsonl``.

    Returns the rows and the ``(path, reason)`` of the images that could not be read. A batch that runs out of
    accelerator memory is halved and retried.
    """
    import torch

    from mmtrain.data.images import ResizeSpec
    from mmtrain.data.inputs import stream_images
    from mmtrain.data.loader import resolve_workers
    from mmtrain.models.oom import map_batches_halving
    from mmtrain.progress import progress_bar

    resize = model.extra.get("resize", {})
    spec = ResizeSpec(
        size=int(resize.get("size", model.captioner.encoder.img_size)), mode=resize.get("mode", "center_crop")
    )
    workers = resolve_workers(cfg.num_workers, key="num_workers")
    batch_size = int(cfg.batch_size)
    rows, failed = [], []
    sink = Path(cfg.out) / "captions.jsonl"
    sink.parent.mkdir(parents=True, exist_ok=True)
    sink.unlink(missing_ok=True)  # rows of an earlier run in this folder

    def caption_batch(images) -> list[list[str]]:
        return model.caption(images.permute(0, 3, 1, 2), decoding)  # (B, 3, H, W) uint8

    with torch.inference_mode(), progress_bar("captioning", len(paths)) as advance:
        for batch in stream_images(paths, spec, batch_size=batch_size, num_workers=workers):
            for item, reason in batch.failed:
                print(f"mmtrain caption: skipped {item}: {reason}", file=sys.stderr)
            failed += batch.failed
            captions = [] if batch.images is None else map_batches_halving(caption_batch, batch.images, batch_size)
            done = [
                {"file": str(path), "image_id": image_ids[i], "caption": seqs[0], "captions": seqs}
                for i, path, seqs in zip(batch.positions, batch.paths, captions, strict=True)
            ]
            if done:
                with open(sink, "a", encoding="utf-8") as handle:  # whole lines, one write per batch
                    handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in done))
            if not cfg.table:
                for row in done:
                    print(json.dumps({"file": row["file"], "image_id": row["image_id"], "caption": row["caption"]}))
            rows += done
            advance(len(batch.failed) + len(done))
    return rows, failed


def _write_outputs(cfg: DictConfig, rows: list[dict], skipped: list[tuple[str, str]], references) -> None:
    from mmtrain.io import write_json, write_jsonl

    out = Path(cfg.out)
    write_json(out / "results.json", [{"image_id": r["image_id"], "caption": r["caption"]} for r in rows])
    if skipped:
        write_jsonl(out / "skipped.jsonl", ({"input": i, "reason": r} for i, r in skipped))
    if cfg.html:
        from mmtrain.outputs.coco import references_by_file
        from mmtrain.outputs.gallery import write_gallery

        matched = references_by_file([r["file"] for r in rows], references) if references else None
        if references and len(matched) < len(rows):  # matched by file name, or by the COCO id a name carries
            print(
                f"mmtrain caption: warning: {len(rows) - len(matched)} of {len(rows)} images have no references in "
                f"{cfg.references} (matched by file name); the gallery shows references for {len(matched)}",
                file=sys.stderr,
            )
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
    for item, reason in unmatched:
        print(f"mmtrain caption: skipped {item}: {reason}", file=sys.stderr)
    references = load_references(cfg.references) if cfg.references else None
    model = load_model(cfg.ckpt).to(cfg.device)
    decoding = model.decoding if cfg.use_checkpoint_decoding else instantiate(cfg.decoding)
    rows, failed = _caption_stream(cfg, model, paths, assign_image_ids(paths, references), decoding)
    if not rows:
        raise UserError(
            f"no image could be captioned ({len(paths)} paths, {len(failed) + len(unmatched)} failed)",
            exit_code=EXIT_PARTIAL,
        )
    _write_outputs(cfg, rows, unmatched + failed, references)
    if cfg.table:
        _print_table(rows)
    return rows
