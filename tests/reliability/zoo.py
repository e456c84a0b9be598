"""The bad-input zoo, written by the tests themselves: images that must be rejected and odd ones that must be kept.

Every picture is two-coloured: red on the left (or top) half, blue on the other, so a test can tell that an image
was decoded the right way round and in the right colours.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

RED, BLUE = (220, 20, 20), (20, 20, 220)
MAX_PIXELS = 5000  # the zoo's pixel limit: good images are 48x40, the "huge" one 100x100
PREPROCESS_ARGS = [
    "data=coco2017",
    "data.resize.size=32",
    "data.resize.mode=squash",
    f"+data.resize.max_pixels={MAX_PIXELS}",
    "data.text.vocab_size=40",
    "num_workers=1",
]


def halves(width: int = 48, height: int = 40) -> np.ndarray:
    """RGB pixels: red left half, blue right half."""
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:, : width // 2], pixels[:, width // 2 :] = RED, BLUE
    return pixels


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    """A tall picture (red top, blue bottom) stored wide, with EXIF orientation 6 ("rotate 90 degrees clockwise")."""
    shown = np.empty((48, 40, 3), np.uint8)
    shown[:24], shown[24:] = RED, BLUE
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(shown, k=1)))  # turned left: red on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def _gray16() -> bytes:
    """16-bit grey: dark left half, bright right half."""
    values = np.full((40, 48), 60000, np.uint16)
    values[:, :24] = 2000
    return encode(Image.fromarray(values), "PNG")  # uint16 -> mode I;16


def _alpha() -> bytes:
    """Opaque red left half, fully transparent right half (composited on white)."""
    rgba = np.dstack([halves(), np.full((40, 48), 255, np.uint8)])
    rgba[:, 24:, 3] = 0
    return encode(Image.fromarray(rgba, mode="RGBA"), "PNG")


def _palette(transparent: bool) -> bytes:
    image = Image.fromarray(halves()).quantize(colors=4)
    if not transparent:
        return encode(image, "PNG")
    blue_index = int(np.asarray(image)[0, -1])
    return encode(image, "PNG", transparency=blue_index)


def _truncated() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG", quality=95)
    return data[: len(data) // 2]


# name -> (bytes, what a user sees after loading: "red-left", "red-top", "dark-left", "red-left-white-right")
GOOD: dict[str, tuple[bytes, str]] = {
    "cmyk.jpg": (encode(Image.fromarray(halves()).convert("CMYK"), "JPEG", quality=95), "red-left"),
    "gray16.png": (_gray16(), "dark-left"),
    "palette.png": (_palette(False), "red-left"),
    "palette_transparent.png": (_palette(True), "red-left-white-right"),
    "alpha.png": (_alpha(), "red-left-white-right"),
    "exif_rotated.jpg": (_exif_rotated(), "red-top"),
    "png_named.jpg": (encode(Image.fromarray(halves()), "PNG"), "red-left"),
}

# name -> (bytes or None for a file that is not there, the rejection reason)
BAD: dict[str, tuple[bytes | None, str]] = {
    "truncated.jpg": (_truncated(), "truncated"),
    "zero.jpg": (b"", "zero_bytes"),
    "text.jpg": (b"these are not the pixels you are looking for\n", "not_an_image"),
    "missing.jpg": (None, "missing"),
    "huge.png": (encode(Image.fromarray(np.zeros((100, 100, 3), np.uint8)), "PNG"), "too_many_pixels"),
}

# file names in the annotations that point outside the image root
ESCAPING = ["../outside.jpg", "/etc/hostname"]


def write_images(folder: Path, images: dict[str, tuple[bytes | None, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in images.items():
        if data is not None:
            (folder / name).write_bytes(data)


def write_coco_dataset(root: Path) -> Path:
    """A COCO 2017 layout: train holds every zoo image, escaping paths, an uncaptioned image and a caption for an
    image that is not listed; val holds two plain images. Returns ``root``."""
    write_images(root / "train2017", {**GOOD, **BAD})
    write_images(root / "train2017", {"uncaptioned.png": (encode(Image.fromarray(halves()), "PNG"), "")})
    (root / "outside.jpg").write_bytes(encode(Image.fromarray(halves()), "JPEG"))
    names = [*GOOD, *BAD, *ESCAPING, "uncaptioned.png"]
    words = ["red", "blue", "square", "field", "half", "left", "right", "picture", "colour", "two"]
    annotations = [
        {"id": i, "image_id": i, "caption": f"a {words[i % 10]} and {words[(3 * i) % 10]} picture number {i}"}
        for i, name in enumerate(names, start=1)
        if name != "uncaptioned.png"
    ]
    annotations.append({"id": 999, "image_id": 12345, "caption": "a caption for an image that is not listed"})
    train = {"images": [{"id": i, "file_name": n} for i, n in enumerate(names, start=1)], "annotations": annotations}
    val_names = {"v1.png": 101, "v2.png": 102}
    for offset, name in enumerate(val_names):
        pixels = np.roll(halves(), 7 * (offset + 1), axis=1)
        write_images(root / "val2017", {name: (encode(Image.fromarray(pixels), "PNG"), "")})
    val = {
        "images": [{"id": i, "file_name": n} for n, i in val_names.items()],
        "annotations": [{"id": i, "image_id": i, "caption": f"a red and blue picture {i}"} for i in val_names.values()],
    }
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(train))
    (root / "annotations" / "captions_val2017.json").write_text(json.dumps(val))
    return root
