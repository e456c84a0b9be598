"""Benchmark the data path on real COCO photos; prints one JSON object a line, each with both sides and the ratio.

The photos are ../shared/data/coco_tiny100 (100 real COCO images with 5 captions each): 95 go to train, repeated
``--repeats`` times under distinct file names and ids, and 5 to val. Three comparisons, each measured in this run:

- ``training_loader``: images/s of an epoch of ``mmtrain fit``'s training loader over the preprocessed store (uint8
  images, captions tokenized) against a torchvision ImageFolder-style Dataset that decodes each original JPEG and
  resizes it (shorter side, centre crop) per sample. Same batch size, same output size, both read in the training
  process (fit's training loader has no worker processes).
- ``preprocess_workers``: images/s of the whole ``mmtrain preprocess`` run (validation, decoding and resizing,
  tokenizer, store writing) with 1 decoding process and with 2, in shards of 64 images.
- ``feature_cache_epoch``: seconds of one training epoch with a frozen encoder (``encoder.freeze=all``, fit's own
  module, loader and Lightning trainer, validation off), training from the feature cache against running the encoder.
  The one-off cost of writing the cache is reported beside it.

Usage: python scripts/bench_data.py [--data ../shared/data] [--repeats 2] [--batch-size 32] [--size 224]
       [--encoder vit_base_patch16_224]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
VAL_IMAGES = 5


def emit(name: str, unit: str, ours: tuple[str, float], peer: tuple[str, float], target: float, **details) -> None:
    """Print one comparison: both sides, the ratio (ours over peer; for seconds, peer over ours) and the target."""
    ratio = ours[1] / peer[1] if unit.endswith("/s") else peer[1] / ours[1]
    row = {"bench": name, "unit": unit, ours[0]: round(ours[1], 2), peer[0]: round(peer[1], 2)}
    row.update({"ratio": round(ratio, 2), "target": target, "met": ratio >= target, **details})
    print(json.dumps(row), flush=True)


def coco_photos(coco: Path) -> list[tuple[str, list[str]]]:
    """(path under ``coco``, captions) for every photo of coco_tiny100, in file order."""
    photos = []
    for split in ("train", "val"):
        annotations = json.loads((coco / "annotations" / f"captions_{split}2017.json").read_text(encoding="utf-8"))
        files = {image["id"]: image["file_name"] for image in annotations["images"]}
        captions: dict[int, list[str]] = {}
        for annotation in annotations["annotations"]:
            captions.setdefault(annotation["image_id"], []).append(annotation["caption"])
        photos += [(f"{split}2017/{files[i]}", captions[i]) for i in sorted(files)]
    return photos


def write_table(coco: Path, work: Path, repeats: int) -> tuple[Path, list[Path]]:
    """A JSONL caption table over links to the photos; returns it and the training files (links) in order."""
    rows, train_files = [], []
    photos = coco_photos(coco)
    for index, (file, captions) in enumerate(photos):
        for copy in range(1 if index < VAL_IMAGES else repeats):
            link = work / "images" / f"r{copy}" / file
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(coco / file)
            split = "val" if index < VAL_IMAGES else "train"
            rows.append({"image": str(link.relative_to(work / "images")), "caption": captions, "split": split})
            if split == "train":
                train_files.append(link)
    table = work / "captions.jsonl"
    table.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return table, train_files


def preprocess(table: Path, work: Path, out: Path, size: int, workers: int) -> tuple[float, float, int]:
    """Run the whole preprocess into ``out``; return (seconds, seconds of its decoding stage, images kept)."""
    from mmtrain.data.images import ResizeSpec
    from mmtrain.data.preprocess import Preprocessor, TextSpec
    from mmtrain.data.sources.table import CaptionTable

    source = CaptionTable(file=str(table), image_root=str(work / "images"), split_column="split")
    preprocessor = Preprocessor(
        source=source,
        out_dir=str(out),
        resize=ResizeSpec(size=size, mode="center_crop"),
        text=TextSpec(vocab_size=500),
        num_workers=workers,
        shard_size=64,
    )
    decode, decode_seconds = preprocessor._decode, []

    def timed_decode(by_split):
        started = time.perf_counter()
        try:
            return decode(by_split)
        finally:
            decode_seconds.append(time.perf_counter() - started)

    preprocessor._decode = timed_decode
    started = time.perf_counter()
    manifest = preprocessor.run()
    images = sum(split["images"] for split in manifest["splits"].values())
    return time.perf_counter() - started, decode_seconds[0], images


class JpegFolder(torch.utils.data.Dataset):
    """The peer: an ImageFolder-style Dataset that opens, decodes and resizes each JPEG when it is read."""

    def __init__(self, files: list[Path], size: int) -> None:
        from torchvision import transforms

        self.files = files
        self.transform = transforms.Compose(
            [transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), index  # (3, size, size) uint8


def epoch_rate(batches) -> tuple[float, int]:
    """(images/s, images) of one pass over ``batches``, each a Batch or an (images, ids) pair."""
    started, count = time.perf_counter(), 0
    for batch in batches:
        count += len(batch.image_ids) if hasattr(batch, "image_ids") else len(batch[1])
    return count / (time.perf_counter() - started), count


def bench_loader(store: Path, train_files: list[Path], batch_size: int, size: int) -> None:
    from mmtrain.data.datamodule import CaptionDataModule

    datamodule = CaptionDataModule(store=str(store), batch_size=batch_size, captions_per_image=2)

    def store_batches():
        for batch in datamodule.train_dataloader():
            yield datamodule.on_before_batch_transfer(batch, 0)  # the step's captions, as in fit

    jpeg = torch.utils.data.DataLoader(
        JpegFolder(train_files, size), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True
    )
    epoch_rate(store_batches()), epoch_rate(jpeg)  # warm the page cache and the allocator on both sides
    store_rate, images = epoch_rate(store_batches())
    jpeg_rate, _ = epoch_rate(jpeg)
    emit(
        "training_loader",
        "images/s",
        ("store", store_rate),
        ("jpeg_decode_resize", jpeg_rate),
        5.0,
        images=images,
        batch_size=batch_size,
        size=size,
        workers=0,
    )


def fit_parts(store: Path, encoder: str, batch_size: int, feature_cache: bool):
    """fit's datamodule and module for a frozen ``encoder`` (random weights: the same work as pretrained ones)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from mmtrain.cli import CONFIG_DIR
    from mmtrain.commands import fit

    overrides = [
        "data=coco2017",
        f"data.store={store}",
        "encoder=vit_b16",
        f"encoder.model_name={encoder}",
        "encoder.pretrained=false",
        "encoder.freeze=all",
        f"datamodule.batch_size={batch_size}",
        f"feature_cache={str(feature_cache).lower()}",
        "trainer.max_steps=100000",
        "trainer.limit_val_batches=0",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("fit", overrides=overrides)
    torch.manual_seed(int(cfg.seed))
    datamodule = instantiate(cfg.datamodule)
    module = fit.build_module(cfg, datamodule)
    return cfg, datamodule, module


def timed_epoch(datamodule, module) -> float:
    """Seconds of one training epoch through a Lightning trainer (no validation, logging or checkpoints)."""
    import pytorch_lightning as pl

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.started = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.seconds = time.perf_counter() - self.started

    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=datamodule)
    return timer.seconds


def bench_feature_cache(store: Path, encoder: str, batch_size: int) -> None:
    from mmtrain.commands import fit
    from mmtrain.training.features import write_feature_cache

    cfg, datamodule, module = fit_parts(store, encoder, batch_size, feature_cache=True)
    started = time.perf_counter()
    folder = write_feature_cache(store, module.captioner.encoder, batch_size=batch_size)
    build_seconds = time.perf_counter() - started
    fit.use_feature_cache(cfg, datamodule, module)
    assert datamodule.train_dir == folder / "train", "fit did not pick up the feature cache"
    cached = timed_epoch(datamodule, module)
    _, live_datamodule, live_module = fit_parts(store, encoder, batch_size, feature_cache=False)
    live = timed_epoch(live_datamodule, live_module)
    images = len(live_datamodule.train_dataloader()) * batch_size
    emit(
        "feature_cache_epoch",
        "s",
        ("feature_cache", cached),
        ("frozen_encoder", live),
        5.0,
        encoder=encoder,
        images=images,
        batch_size=batch_size,
        cache_build_s=round(build_seconds, 2),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", help="real data folder; relative to the repo root")
    parser.add_argument("--repeats", type=int, default=2, help="copies of each training photo")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--encoder", default="vit_base_patch16_224", help="timm model frozen in the epoch benchmark")
    args = parser.parse_args()
    data = Path(args.data) if Path(args.data).is_absolute() else ROOT / args.data
    coco = data / "coco_tiny100"
    if not coco.is_dir():
        print(json.dumps({"skipped": f"{coco} is absent: the benchmark needs real photos from ../shared/data"}))
        return 0
    import logging

    logging.disable(logging.INFO)  # the JSON lines are the output
    print(
        json.dumps(
            {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
        )
    )
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        work = Path(tmp)
        table, train_files = write_table(coco.resolve(), work, args.repeats)
        one, decode_one, images = preprocess(table, work, work / "store1", args.size, workers=1)
        two, decode_two, _ = preprocess(table, work, work / "store2", args.size, workers=2)
        emit(
            "preprocess_workers",
            "images/s",
            ("workers_2", images / two),
            ("workers_1", images / one),
            1.6,
            images=images,
            decode_stage_images_per_s={
                "workers_1": round(images / decode_one, 2),
                "workers_2": round(images / decode_two, 2),
            },
        )
        bench_loader(work / "store2", train_files, args.batch_size, args.size)
        bench_feature_cache(work / "store2", args.encoder, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
