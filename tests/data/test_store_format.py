"""Store formats: raw uint8 arrays or JPEG bytes, recorded in the manifest, read back the same way by every loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmtrain.data.store import ImageCoding, item_image, open_split
from mmtrain.errors import UserError
from tests.conftest import TINY_DATA, run_cli, run_in_process


def _manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.bin"))


def _images(store: Path) -> dict[int, np.ndarray]:
    stream = open_split(store / "train")
    return {int(item["image_id"]): item_image(item) for item in (stream[i] for i in range(len(stream)))}


def test_a_jpeg_store_is_smaller_records_its_format_and_decodes_close_to_the_raw_pixels(tiny_store, tiny_jpeg_store):
    raw, jpeg = _manifest(tiny_store), _manifest(tiny_jpeg_store)
    assert raw["image"] == {"format": "raw", "quality": None}  # data=shapes keeps exact pixels
    assert jpeg["image"] == {"format": "jpeg", "quality": 90}
    assert {s: i["images"] for s, i in raw["splits"].items()} == {s: i["images"] for s, i in jpeg["splits"].items()}
    assert (
        raw["config_hash"] != jpeg["config_hash"]
        and raw["splits"]["train"]["checksum"] != jpeg["splits"]["train"]["checksum"]
    )
    assert _bytes(tiny_store / "train") > 2 * _bytes(tiny_jpeg_store / "train")  # 32 px images: headers weigh more
    exact, lossy = _images(tiny_store), _images(tiny_jpeg_store)
    assert exact.keys() == lossy.keys() and len(exact) == 96
    ids = sorted(exact)
    raw_pixels = np.stack([exact[i] for i in ids]).astype(float)  # (96, 32, 32, 3)
    for row, image_id in enumerate(ids):
        assert lossy[image_id].shape == (32, 32, 3) and lossy[image_id].dtype == np.uint8
        error = np.abs(raw_pixels - lossy[image_id].astype(float)).mean(axis=(1, 2, 3))  # (96,)
        assert error[row] < 12, (image_id, error[row])  # quality 90 on sharp 32 px shapes: several levels
        assert int(error.argmin()) == row  # each decoded image is nearest to its own original


@pytest.mark.slow
def test_preprocessing_again_gives_the_same_jpeg_checksums(tiny_store, tiny_jpeg_store, tmp_path):
    args = [f"data.root={tiny_store.parent / 'raw'}", f"out={tmp_path / 'again'}", *TINY_DATA, "image_format=jpeg"]
    result = run_cli("preprocess", *args, "num_workers=0")
    assert result.returncode == 0, result.stderr[-2000:]
    again = _manifest(tmp_path / "again")
    assert again["config_hash"] == _manifest(tiny_jpeg_store)["config_hash"]
    assert {s: i["checksum"] for s, i in again["splits"].items()} == {
        s: i["checksum"] for s, i in _manifest(tiny_jpeg_store)["splits"].items()
    }


@pytest.mark.parametrize(
    "override,message",
    [
        ("image_format=png", "image_format: unknown format 'png' (use one of raw, jpeg)"),
        ("image_quality=120", "image_quality: must be a whole number from 1 to 95, got 120"),
    ],
)
def test_a_bad_image_format_is_one_line(tiny_store, tmp_path, override, message):
    result = run_in_process(
        "preprocess", f"data.root={tiny_store.parent / 'raw'}", f"out={tmp_path}", *TINY_DATA, override
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "manifest.json").exists()


def test_raw_arrays_are_read_as_stored():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    assert item_image({"image": ImageCoding(format="raw").encode(image)}) is image
    with pytest.raises(UserError, match="image_quality"):
        ImageCoding(format="jpeg", quality=0)
