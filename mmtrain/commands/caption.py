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


def run(cfg: DictConfig) -> list[dict]:
    import numpy as np
    import torch
    from hydra.utils import instantiate

    from mmtrain.data.inputs import expand_inputs
    from mmtrain.io import write_json, write_jsonl
    from mmtrain.models.loading import load_model

    inputs = list(cfg.inputs) if isinstance(cfg.inputs, (list, ListConfig)) else [str(cfg.inputs)]
    paths, unmatched = expand_inputs([str(i) for i in inputs])
    model = load_model(cfg.ckpt)
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
    rows = []
    with torch.inference_mode():
        for start in range(0, len(kept), int(cfg.batch_size)):
            batch = torch.from_numpy(np.stack(arrays[start : start + int(cfg.batch_size)])).permute(0, 3, 1, 2)
            for offset, captions in enumerate(model.caption(batch, decoding)):
                path = kept[start + offset]
                rows.append(
                    {"file": str(path), "image_id": start + offset, "caption": captions[0], "captions": captions}
                )
    out = Path(cfg.out)
    write_jsonl(out / "captions.jsonl", rows)
    write_json(out / "results.json", [{"image_id": r["image_id"], "caption": r["caption"]} for r in rows])
    if failed or unmatched:
        write_jsonl(out / "skipped.jsonl", ({"input": i, "reason": r} for i, r in unmatched + failed))
    if cfg.table:
        _print_table(rows)
    else:
        for row in rows:
            print(json.dumps({"file": row["file"], "caption": row["caption"]}))
    return rows
