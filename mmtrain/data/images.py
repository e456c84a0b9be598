"""Image decoding for the store: any mode Pillow reads becomes RGB uint8 at the configured size.

Every failure is an :class:`ImageRejected` with a short, named reason; callers record it and go on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class ImageRejected(Exception):
    """An image that cannot be used; ``reason`` is one of the names listed in docs/data.md."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class ResizeSpec:
    """How stored images are sized.

    Attributes:
        size: output side in pixels.
        mode: ``center_crop`` (shorter side to ``size``, then a centred square crop) or ``squash`` (resize to a square
            ignoring aspect).
        max_pixels: images with more pixels are rejected (decompression-bomb guard).
    """

    size: int = 224
    mode: str = "center_crop"
    max_pixels: int = 89_478_485


def resolve_inside(root: Path, file: str) -> Path:
    """Join ``file`` to ``root``, refusing absolute names and names that climb out with ``..``."""
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise ImageRejected("path_escapes_root", file)
    return root / file


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white, 16-bit is scaled to 8-bit."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def resize(image: Image.Image, spec: ResizeSpec) -> Image.Image:
    """Resize to a ``spec.size`` square by ``spec.mode``."""
    if spec.mode == "squash":
        return image.resize((spec.size, spec.size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if spec.mode != "center_crop":
        raise ValueError(f"resize mode must be 'center_crop' or 'squash', got {spec.mode!r}")
    w, h = image.size
    scale = spec.size / min(w, h)
    new_w, new_h = max(spec.size, round(w * scale)), max(spec.size, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - spec.size) // 2, (new_h - spec.size) // 2
    return image.crop((left, top, left + spec.size, top + spec.size))


def read_archive_member(archive: str, member: str) -> bytes:
    """The bytes of ``member`` in the tar file ``archive`` (a WebDataset shard)."""
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            handle = tar.extractfile(member)
            if handle is None:
                raise ImageRejected("missing", f"{archive}:{member}")
            return handle.read()
    except KeyError:
        raise ImageRejected("missing", f"{archive}:{member}") from None
    except (tarfile.TarError, OSError) as err:
        raise ImageRejected("decode_error", f"{archive}: {err}") from None


def load_image(path: Path | bytes, spec: ResizeSpec) -> np.ndarray:
    """Decode ``path`` (a file, or the image's bytes) fully into RGB uint8 (size, size, 3), or raise ImageRejected."""
    if isinstance(path, bytes):
        if not path:
            raise ImageRejected("zero_bytes", "empty archive member")
        import io

        source = io.BytesIO(path)
    else:
        if not path.is_file():
            raise ImageRejected("missing", str(path))
        if path.stat().st_size == 0:
            raise ImageRejected("zero_bytes", str(path))
        source = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                if image.width * image.height > spec.max_pixels:
                    raise ImageRejected("too_many_pixels", f"{image.width}x{image.height} > {spec.max_pixels}")
                image.load()  # raises on truncated data
                image = ImageOps.exif_transpose(image)
                rgb = to_rgb(image)
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "" if isinstance(path, bytes) else str(path)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageRejected("too_many_pixels", str(err)) from None
    except (OSError, SyntaxError, ValueError) as err:
        reason = "truncated" if "truncated" in str(err).lower() else "decode_error"
        raise ImageRejected(reason, str(err)) from None
    return np.asarray(resize(rgb, spec), dtype=np.uint8)
