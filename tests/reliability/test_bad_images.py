"""Images: broken ones are rejected with a named reason and recorded; unusual but valid ones are kept, and look right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmtrain.data.images import ImageRejected, ResizeSpec, load_image
from tests.reliability import zoo

SPEC = ResizeSpec(size=32, mode="squash", max_pixels=zoo.MAX_PIXELS)


def _close(pixel: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= 30)


@pytest.mark.parametrize("name", zoo.BAD)
def test_a_broken_image_is_rejected_with_its_reason(tmp_path: Path, name: str) -> None:
    zoo.write_images(tmp_path, {name: zoo.BAD[name]})
    with pytest.raises(ImageRejected) as caught:
        load_image(tmp_path / name, SPEC)
    assert caught.value.reason == zoo.BAD[name][1]


@pytest.mark.parametrize("name", zoo.GOOD)
def test_an_unusual_image_is_decoded_upright_in_rgb(tmp_path: Path, name: str) -> None:
    zoo.write_images(tmp_path, {name: zoo.GOOD[name]})
    pixels = load_image(tmp_path / name, SPEC)  # (32, 32, 3) uint8
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
    left, right, top, bottom = pixels[16, 3], pixels[16, 28], pixels[3, 16], pixels[28, 16]
    look = zoo.GOOD[name][1]
    if look == "red-left":
        assert _close(left, zoo.RED) and _close(right, zoo.BLUE)
    elif look == "red-left-white-right":  # transparency composited on white
        assert _close(left, zoo.RED) and _close(right, (255, 255, 255))
    elif look == "red-top":  # EXIF orientation applied
        assert _close(top, zoo.RED) and _close(bottom, zoo.BLUE)
    else:  # 16-bit grey scaled to 8 bits, not clipped
        assert left.max() < 30 and right.min() > 200 and len(set(left)) == 1


def test_preprocess_records_each_rejection_and_keeps_every_good_image(zoo_store) -> None:
    _, store, result = zoo_store
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    manifest = json.loads((store / "manifest.json").read_text())
    rejected = {
        row["file"]: row["reason"] for row in map(json.loads, (store / "rejected.jsonl").read_text().splitlines())
    }
    expected = {name: reason for name, (_, reason) in zoo.BAD.items()}
    expected.update({name: "path_escapes_root" for name in zoo.ESCAPING} | {"uncaptioned.png": "no_captions"})
    assert {file: reason.split(":")[0] for file, reason in rejected.items()} == expected
    train = manifest["splits"]["train"]
    assert train["images"] == len(zoo.GOOD), "a good image was lost"
    assert train["rejected"] == len(expected)
    assert train["rejected_by_reason"]["path_escapes_root"] == 2
    assert manifest["splits"]["val"] == {**manifest["splits"]["val"], "images": 2, "rejected": 0}
    kept = json.loads((store / "references_train.json").read_text())
    assert sorted(image["file_name"] for image in kept["images"]) == sorted(zoo.GOOD)
    assert json.loads(result.stdout.strip().splitlines()[-1])["train"] == {"images": 7, "rejected": len(expected)}
