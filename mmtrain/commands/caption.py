"""mmtrain caption: caption images with a trained model; unreadable images are reported and skipped.

A JSONL input list (``{"image": PATH, "prompt": TEXT}`` a line) gives images their prompts: each (image, prompt)
gets a row whose caption continues the prompt, for a model trained on a store with per-sample prompts.

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
    prompted = any("prompt" in row for row in rows)
    if prompted:
        table.add_column("prompt")
    table.add_column("caption")
    for row in rows:
        table.add_row(row["file"], *([row.get("prompt", "")] if prompted else []), row["caption"])
    Console(stderr=False).print(table)


def _caption_stream(
    cfg: DictConfig, model, paths: list[Path], image_ids: list, decoding, prompts: dict | None = None
) -> tuple[list, list]:
    """Caption ``paths`` as workers decode them; append each finished batch's rows to ``OUT/captions.jsonl``.

    With ``prompts`` (each image's prompts, from a JSONL input list) an image gets one row per prompt, continuing it.
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
            if prompts is None:
                captions = [] if batch.images is None else map_batches_halving(caption_batch, batch.images, batch_size)
                done = [
                    {"file": str(path), "image_id": image_ids[i], "caption": seqs[0], "captions": seqs}
                    for i, path, seqs in zip(batch.positions, batch.paths, captions, strict=True)
                ]
            else:
                done = _answer_batch(model, batch, [image_ids[i] for i in batch.positions], prompts, decoding)
            if done:
                with open(sink, "a", encoding="utf-8") as handle:  # whole lines, one write per batch
                    handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in done))
            if not cfg.table:
                for row in done:
                    print(json.dumps({k: row[k] for k in ("file", "image_id", "prompt", "caption") if k in row}))
            rows += done
            advance(len(batch.failed) + len(done))
    return rows, failed


def _answer_batch(model, batch, image_ids: list, prompts: dict, decoding) -> list[dict]:
    """Rows of a decoded batch, one per (image, prompt); an image without a prompt is captioned from bos alone.

    The row's ``image_id`` is the pair's key, ``IMAGE_ID:n`` (see :mod:`mmtrain.data.prompts`).
    """
    from mmtrain.data.prompts import pair_key

    if batch.images is None:
        return []
    own = [prompts.get(path, [""]) for path in batch.paths]
    answers = model.caption_prompted(batch.images.permute(0, 3, 1, 2), own, decoding)  # (B, 3, H, W) uint8
    rows = []
    for path, image_id, texts, per_prompt in zip(batch.paths, image_ids, own, answers, strict=True):
        for index, (prompt, seqs) in enumerate(zip(texts, per_prompt, strict=True)):
            key = pair_key(image_id, index)
            rows.append({"file": str(path), "image_id": key, "prompt": prompt, "caption": seqs[0], "captions": seqs})
    return rows


def _write_outputs(cfg: DictConfig, rows: list[dict], skipped: list[tuple[str, str]], references) -> None:
    from mmtrain.io import write_json, write_jsonl

    out = Path(cfg.out)
    keys = ("image_id", "prompt", "caption")
    write_json(out / "results.json", [{k: r[k] for k in keys if k in r} for r in rows])
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

    from mmtrain.data.inputs import expand_inputs, input_prompts
    from mmtrain.models.loading import load_model
    from mmtrain.outputs.coco import assign_image_ids, load_references

    inputs = list(cfg.inputs) if isinstance(cfg.inputs, (list, ListConfig)) else [str(cfg.inputs)]
    paths, unmatched = expand_inputs([str(i) for i in inputs])
    for item, reason in unmatched:
        print(f"mmtrain caption: skipped {item}: {reason}", file=sys.stderr)
    references = load_references(cfg.references) if cfg.references else None
    model = load_model(cfg.ckpt).to(cfg.device)
    decoding = model.decoding if cfg.use_checkpoint_decoding else instantiate(cfg.decoding)
    image_ids = assign_image_ids(paths, references)
    rows, failed = _caption_stream(cfg, model, paths, image_ids, decoding, input_prompts([str(i) for i in inputs]))
    if not rows:
        raise UserError(
            f"no image could be captioned ({len(paths)} paths, {len(failed) + len(unmatched)} failed)",
            exit_code=EXIT_PARTIAL,
        )
    _write_outputs(cfg, rows, unmatched + failed, references)
    if cfg.table:
        _print_table(rows)
    return rows
