"""Benchmark the data path on real COCO photos; prints one JSON object a line, each with both sides and the ratio.

The photos are ../shared/data/coco_tiny100 (100 real COCO images with 5 captions each): 95 go to train, repeated
``--repeats`` times under distinct file names and ids, and 5 to val. The comparisons, each measured in this run:

- ``jpeg_store_size_ratio``: bytes of the train split's chunks in a raw store (uint8 arrays) over those of a JPEG
  store (``image_format=jpeg``, quality 90) of the same images; with the per-image decode cost of each.
- ``train_loader_workers_speedup``: images/s of fit's training loader over the JPEG store (read, JPEG decode,
  captions tokenized, the step's captions chosen) with ``num_workers=2`` against ``num_workers=0``, sides alternating
  over ``--rounds`` rounds, medians compared, at each of ``--workers-batch-sizes`` (the ratio reported is at 64, fit's
  default batch size; the others are in ``by_batch_size``: each batch costs a few milliseconds to hand from a worker to
  the training process whatever its size, so smaller batches gain less). Steady state: the clock starts at each epoch's first batch, so the
  workers' start (a fork per epoch, paid once per epoch of a real run) is reported beside it, not in the rate.
- ``training_loader``: images/s of an epoch of ``mmtrain fit``'s training loader over the raw store (uint8
  images, captions tokenized) against a torchvision ImageFolder-style Dataset that decodes each original JPEG and
  resizes it (shorter side, centre crop) per sample. Same batch size, same output size, both read in the training
  process.
- ``preprocess_workers``: images/s of the whole ``mmtrain preprocess`` run (validation, decoding and resizing,
  tokenizer, store writing) with 1 decoding process and with 2, in shards of 64 images.
- ``feature_cache_epoch``: seconds of one training epoch with a frozen encoder (``encoder.freeze=all``, fit's own
  module, loader and Lightning trainer, validation off), training from the feature cache against running the encoder.
  The one-off cost of writing the cache is reported beside it.

Usage: python scripts/bench_data.py [--data ../shared/data] [--repeats 24] [--batch-size 32] [--size 224]
       [--rounds 5] [--workers-batch-sizes 64,32] [--encoder vit_base_patch16_224] [--no-doc] [--from-json RUN.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
VAL_IMAGES = 5


RESULTS: list[dict] = []


def emit(name: str, unit: str, ours: tuple[str, float], peer: tuple[str, float], target: float, **details) -> None:
    """Print one comparison: both sides, the ratio (ours over peer; for seconds and bytes, peer over ours), target."""
    ratio = ours[1] / peer[1] if unit.endswith("/s") else peer[1] / ours[1]
    row = {"bench": name, "unit": unit, ours[0]: round(ours[1], 2), peer[0]: round(peer[1], 2)}
    row.update({"ratio": round(ratio, 2), "target": target, "met": ratio >= target, **details})
    RESULTS.append(row)
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


def preprocess(
    table: Path, work: Path, out: Path, size: int, workers: int, image_format: str = "raw"
) -> tuple[float, float, int]:
    """Run the whole preprocess into ``out``; return (seconds, seconds of its decoding stage, images kept)."""
    from mmtrain.data.images import ResizeSpec
    from mmtrain.data.preprocess import Preprocessor, TextSpec
    from mmtrain.data.sources.table import CaptionTable
    from mmtrain.data.store import ImageCoding

    source = CaptionTable(file=str(table), image_root=str(work / "images"), split_column="split")
    preprocessor = Preprocessor(
        source=source,
        out_dir=str(out),
        resize=ResizeSpec(size=size, mode="center_crop"),
        text=TextSpec(vocab_size=500),
        num_workers=workers,
        shard_size=64,
        image_coding=ImageCoding(format=image_format, quality=90),
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


def store_bytes(store: Path) -> int:
    """Bytes of the train split's chunk files."""
    return sum(path.stat().st_size for path in (store / "train").glob("*.bin"))


def decode_us(store: Path) -> float:
    """Median microseconds to turn one stored train item into RGB pixels (a JPEG decode, or nothing for raw)."""
    from mmtrain.data.store import item_image, open_split

    stream = open_split(store / "train")
    items = [stream[i] for i in range(len(stream))]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        for item in items:
            item_image(item)
        times.append((time.perf_counter() - started) / len(items) * 1e6)
    return statistics.median(times)


def bench_store_size(raw: Path, jpeg: Path, images: int) -> None:
    raw_bytes, jpeg_bytes = store_bytes(raw), store_bytes(jpeg)
    emit(
        "jpeg_store_size_ratio",
        "bytes",
        ("jpeg_q90", jpeg_bytes),
        ("raw", raw_bytes),
        5.0,
        train_images=images,
        kb_per_image={"raw": round(raw_bytes / images / 1024, 1), "jpeg_q90": round(jpeg_bytes / images / 1024, 1)},
        decode_us_per_image={"raw": round(decode_us(raw), 1), "jpeg_q90": round(decode_us(jpeg), 1)},
    )


def cpu_seconds() -> float:
    """CPU time of this process (the training process; loader workers are separate processes)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def loader_epoch(datamodule, loader, epoch: int) -> tuple[float, float, int, float]:
    """Epoch ``epoch`` of fit's training loader: (steady images/s after the first batch, seconds to the first,
    images, CPU milliseconds per image spent in the training process)."""
    loader.consumed = lambda: epoch * len(loader)
    cpu, started = cpu_seconds(), time.perf_counter()
    batches = iter(loader)
    first_batch = datamodule.on_before_batch_transfer(next(batches), 0)
    first = time.perf_counter()
    count = 0
    for batch in batches:
        count += len(datamodule.on_before_batch_transfer(batch, 0).image_ids)  # the step's captions, as in fit
    rate = count / (time.perf_counter() - first)
    images = count + len(first_batch.image_ids)
    return rate, first - started, images, (cpu_seconds() - cpu) * 1000 / images


def bench_loader_workers(jpeg: Path, batch_sizes: list[int], rounds: int) -> None:
    """The workers row at each of ``batch_sizes``; the headline ratio is the first (fit's default batch size)."""
    from mmtrain.data.datamodule import CaptionDataModule

    by_size = {}
    for batch_size in batch_sizes:
        sides = {}
        for workers in (0, 2):  # one loader per side for the whole run, as fit keeps one: workers start once
            datamodule = CaptionDataModule(
                store=str(jpeg), batch_size=batch_size, captions_per_image=2, num_workers=workers
            )
            sides[workers] = (datamodule, datamodule.train_dataloader())
        starts = {w: round(loader_epoch(*sides[w], 0)[1], 3) for w in (0, 2)}  # first epoch: start-up, page cache
        rates: dict[int, list[float]] = {0: [], 2: []}
        cpu_ms: dict[int, list[float]] = {0: [], 2: []}
        for epoch in range(1, rounds + 1):
            for workers in (0, 2):
                rate, _, images, cpu = loader_epoch(*sides[workers], epoch)
                rates[workers].append(round(rate, 1))
                cpu_ms[workers].append(round(cpu, 2))
        by_size[batch_size] = {
            "workers_2": statistics.median(rates[2]),
            "workers_0": statistics.median(rates[0]),
            "ratio": round(statistics.median(rates[2]) / statistics.median(rates[0]), 2),
            "per_round": {"workers_2": rates[2], "workers_0": rates[0]},
            "first_epoch_first_batch_s": {"workers_2": starts[2], "workers_0": starts[0]},
            "training_process_cpu_ms_per_image": {
                "workers_2": statistics.median(cpu_ms[2]),
                "workers_0": statistics.median(cpu_ms[0]),
            },
        }
        del sides  # stops this size's workers before the next size's start
    head = by_size[batch_sizes[0]]
    emit(
        "train_loader_workers_speedup",
        "images/s",
        ("workers_2", head["workers_2"]),
        ("workers_0", head["workers_0"]),
        1.6,
        store="jpeg_q90",
        images_per_epoch=images,
        batch_size=batch_sizes[0],
        rounds=rounds,
        per_round=head["per_round"],
        first_epoch_first_batch_s=head["first_epoch_first_batch_s"],
        training_process_cpu_ms_per_image=head["training_process_cpu_ms_per_image"],
        by_batch_size={
            str(size): {k: row[k] for k in ("workers_2", "workers_0", "ratio")} for size, row in by_size.items()
        },
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
    parser.add_argument("--repeats", type=int, default=24, help="copies of each training photo in the loader benches")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds of the loader-workers bench")
    parser.add_argument(
        "--workers-batch-sizes",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[64, 32],
        help="batch sizes of the loader-workers bench, comma-separated; the ratio reported is the first's (64: fit's"
        " default datamodule.batch_size)",
    )
    parser.add_argument("--encoder", default="vit_base_patch16_224", help="timm model frozen in the epoch benchmark")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--from-json", type=Path, help="write the docs section from a past run's last JSON line")
    parser.add_argument(
        "--remeasure-workers", action="store_true", help="with --from-json: measure the loader-workers row again"
    )
    args = parser.parse_args()
    data = Path(args.data) if Path(args.data).is_absolute() else ROOT / args.data
    if args.from_json:
        report = json.loads(args.from_json.read_text(encoding="utf-8").strip().splitlines()[-1])
        if args.remeasure_workers:
            report = remeasure_workers(report, data / "coco_tiny100", args)
            print(json.dumps(report), flush=True)
        if not args.no_doc:
            write_doc(report)
        return 0
    coco = data / "coco_tiny100"
    if not coco.is_dir():
        print(json.dumps({"skipped": f"{coco} is absent: the benchmark needs real photos from ../shared/data"}))
        return 0
    import logging

    logging.disable(logging.INFO)  # the JSON lines are the output
    load_before = os.getloadavg()[0]
    info = {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    print(json.dumps(info))
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        table, train_files = write_table(coco.resolve(), small, 2)
        one, decode_one, images = preprocess(table, small, small / "store1", args.size, workers=1)
        two, decode_two, _ = preprocess(table, small, small / "store2", args.size, workers=2)
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
        big_table, big_files = write_table(coco.resolve(), large, args.repeats)
        preprocess(big_table, large, large / "raw", args.size, workers=2)
        preprocess(big_table, large, large / "jpeg", args.size, workers=2, image_format="jpeg")
        bench_store_size(large / "raw", large / "jpeg", len(big_files))
        bench_loader_workers(large / "jpeg", args.workers_batch_sizes, args.rounds)
        bench_loader(small / "store2", train_files, args.batch_size, args.size)
        bench_feature_cache(small / "store2", args.encoder, args.batch_size)
    report = {**info, "size": args.size, "results": RESULTS}
    report["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    report["finished"] = time.strftime("%Y-%m-%d %H:%M %Z")
    print(json.dumps(report), flush=True)  # the whole run, last: --from-json reads it back
    if not args.no_doc:
        write_doc(report)
    return 0


def remeasure_workers(report: dict, coco: Path, args) -> dict:
    """``report`` with its train_loader_workers_speedup row measured again now (the rest is the past run's)."""
    import datetime

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        large = Path(tmp) / "large"
        big_table, _ = write_table(coco.resolve(), large, args.repeats)
        preprocess(big_table, large, large / "jpeg", args.size, workers=2, image_format="jpeg")
        load_before = os.getloadavg()[0]
        bench_loader_workers(large / "jpeg", args.workers_batch_sizes, args.rounds)
    row = {**RESULTS[-1], "measured": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")}
    row["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    results = [row if r["bench"] == row["bench"] else r for r in report["results"]]
    return {**report, "results": results}


TITLES = {
    "jpeg_store_size_ratio": "store size, bytes per train split: raw uint8 arrays / JPEG quality 90",
    "train_loader_workers_speedup": "fit's training loader over the JPEG store, batch 64, images/s: 2 workers vs in-process",
    "training_loader": "fit's training loader over the raw store vs decoding each JPEG file, images/s (in-process)",
    "preprocess_workers": "preprocess, images/s: 2 decoding processes vs 1",
    "feature_cache_epoch": "frozen-encoder epoch, s: from the feature cache vs running the encoder",
}


def write_doc(report: dict) -> None:
    """The run's rows and how they were measured, as the "data" section of docs/benchmarks.md."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from benchdoc import write_section

    rows = []
    for r in report["results"]:
        sides = [k for k in r if k not in ("bench", "unit", "ratio", "target", "met")][:2]
        rows.append(
            (TITLES[r["bench"]], r[sides[0]], r[sides[1]], f"{r['ratio']:.2f}x", f">= {r['target']}x", r["met"])
        )
    by_name = {r["bench"]: r for r in report["results"]}
    workers, size = by_name["train_loader_workers_speedup"], by_name["jpeg_store_size_ratio"]
    load = report["load_average_1min"]
    notes = (
        f"Real COCO photos (coco_tiny100) at {report['size']} px, batch {workers['batch_size']}. Store size: "
        f"{size['train_images']} train images, {size['kb_per_image']['raw']} KB (raw) vs "
        f"{size['kb_per_image']['jpeg_q90']} KB (JPEG) per image; decoding a stored item takes "
        f"{size['decode_us_per_image']['jpeg_q90']} us (JPEG) vs {size['decode_us_per_image']['raw']} us (raw). "
        f"Loader workers: {workers['rounds']} alternating rounds of an epoch of {workers['images_per_epoch']} images "
        f"per side (one loader per side, kept across epochs as in fit), medians compared; images/s per round: 2 "
        f"workers {workers['per_round']['workers_2']}, in-process {workers['per_round']['workers_0']}; the clock "
        f"starts at each epoch's first batch (the first epoch, which starts the workers, is not timed: its first batch "
        f"took {workers['first_epoch_first_batch_s']['workers_2']} s with workers and "
        f"{workers['first_epoch_first_batch_s']['workers_0']} s without). CPU time of the training process per "
        f"image: {workers['training_process_cpu_ms_per_image']['workers_2']} ms with workers, "
        f"{workers['training_process_cpu_ms_per_image']['workers_0']} ms in-process. "
        + (
            "By batch size (2 workers, in-process images/s, ratio): "
            + "; ".join(
                f"{size}: {row['workers_2']}, {row['workers_0']}, {row['ratio']:.2f}x"
                for size, row in workers["by_batch_size"].items()
            )
            + ". "
            if "by_batch_size" in workers
            else ""
        )
        + (
            f"This row was measured again at {workers['measured']} (load average {workers['load_average_1min']['before']}"
            f" before, {workers['load_average_1min']['after']} after), after a change to how workers read the store;"
            " the other rows and the load figures that follow are from an earlier full run. "
            if "measured" in workers
            else ""
        )
        + f"Load average (1 min) {load['before']} before and {load['after']} after the run on {report['cpus']} cores"
        + (
            ": other jobs shared the machine, which slows both sides; worker ratios need free cores."
            if load["before"] >= 1.0
            else " (the figure after counts the benchmark's own processes)."
        )
    )
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if autogroup.is_file() and autogroup.read_text().strip() == "1":
        notes += (
            " This kernel schedules by autogroup: the processes of one session share one fair slice of the CPU, so"
            " while other sessions keep the cores busy, the loader's two workers together get about the slice the"
            " training process alone would get, and the ratio shows their overhead rather than their parallelism."
        )
    write_section(
        "data",
        "Data path: store format, loader workers, preprocess, feature cache",
        report,
        rows,
        notes=notes,
        stamp=None if "measured" in workers else report.get("finished"),
    )


if __name__ == "__main__":
    sys.exit(main())
