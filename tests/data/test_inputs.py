"""Streaming caption inputs: images decoded in order by worker processes, unreadable ones reported and skipped, and
``caption``'s memory bounded whatever the number of images."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mmtrain.data.images import ResizeSpec
from mmtrain.data.inputs import stream_images
from tests.conftest import MMTRAIN, ROOT, run_in_process


def _write_images(folder: Path, count: int, size: int = 24) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"img{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (size, size + i % 7, 3), dtype=np.uint8)).save(path, quality=80)
        paths.append(path)
    return paths


def _mixed_inputs(tmp_path: Path) -> list[Path]:
    good = _write_images(tmp_path / "good", 7)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    return [good[0], tmp_path / "broken.jpg", *good[1:4], tmp_path / "missing.jpg", *good[4:]]


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_batches_keep_input_order_and_report_unreadable_images(tmp_path, workers):
    paths = _mixed_inputs(tmp_path)
    batches = list(stream_images(paths, ResizeSpec(size=16), batch_size=3, num_workers=workers))
    assert [len(b.positions) + len(b.failed) for b in batches] == [3, 3, 3]
    assert [p for b in batches for p in b.positions] == [0, 2, 3, 4, 6, 7, 8]
    assert [p for b in batches for p in b.paths] == [paths[i] for i in (0, 2, 3, 4, 6, 7, 8)]
    assert [f for b in batches for f in b.failed] == [(str(paths[1]), "not_an_image"), (str(paths[5]), "missing")]
    assert all(b.images.shape == (len(b.positions), 16, 16, 3) and b.images.dtype == torch.uint8 for b in batches)


def test_workers_decode_the_same_pixels_as_the_caption_process(tmp_path):
    paths = _mixed_inputs(tmp_path)
    here, workers = (list(stream_images(paths, ResizeSpec(size=16), batch_size=4, num_workers=w)) for w in (0, 2))
    assert all(torch.equal(a.images, b.images) for a, b in zip(here, workers, strict=True))


def test_caption_streams_rows_in_input_order_and_keeps_its_outputs(tiny_checkpoint, tmp_path):
    paths = _mixed_inputs(tmp_path)
    listing = tmp_path / "inputs.txt"
    listing.write_text("\n".join(map(str, paths)) + "\n")
    out = tmp_path / "out"
    args = ["caption", f"ckpt={tiny_checkpoint}", f"inputs=[{listing}]", "batch_size=2", "table=false"]
    result = run_in_process(*args, f"out={out}", "num_workers=2", f"html={out / 'gallery.html'}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [r["file"] for r in rows] == [str(paths[i]) for i in (0, 2, 3, 4, 6, 7, 8)]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [p["caption"] for p in printed] == [r["caption"] for r in rows]
    results = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in results] == [r["image_id"] for r in rows] and len(
        set(r["image_id"] for r in rows)
    ) == 7
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [s["reason"] for s in skipped] == ["not_an_image", "missing"]
    assert "broken.jpg: not_an_image" in result.stderr and (out / "gallery.html").is_file()


PEAK_RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB: the largest process, caption's own
"""


@pytest.mark.slow
def test_caption_memory_does_not_grow_with_the_number_of_images(tiny_checkpoint, tmp_path):
    paths = _write_images(tmp_path / "images", 11_000, size=32)
    peaks = {}
    for count in (1_000, 11_000):
        listing = tmp_path / f"first{count}.txt"
        listing.write_text("\n".join(map(str, paths[:count])) + "\n")
        command = [
            *MMTRAIN,
            "caption",
            f"ckpt={tiny_checkpoint}",
            f"inputs=[{listing}]",
            f"out={tmp_path / str(count)}",
        ]
        command += ["table=false", "batch_size=64", "num_workers=2"]
        peak = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], cwd=ROOT, capture_output=True, text=True)
        assert peak.returncode == 0, peak.stderr[-2000:]
        peaks[count] = int(peak.stdout.split()[-1]) / 1024  # MiB
        assert len((tmp_path / str(count) / "captions.jsonl").read_text().splitlines()) == count
    print(f"caption peak RSS: {peaks[1_000]:.1f} MiB for 1,000 images, {peaks[11_000]:.1f} MiB for 11,000")
    assert peaks[11_000] - peaks[1_000] < 60, peaks
