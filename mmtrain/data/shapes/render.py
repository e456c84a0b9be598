"""Sample a scene, place its shapes so the relation is unambiguous, and draw it.

Everything is drawn at twice the output size and box-downsampled, which anti-aliases the edges. Per-image variation
(background shade, colour jitter, faint noise) is small enough that colour, size and kind stay obvious at 64 px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from mmtrain.data.shapes.scene import CANONICAL_RELATIONS, COLOURS, KINDS, SIZES, Scene, Shape

PALETTE = {
    "red": (215, 35, 35),
    "green": (30, 155, 50),
    "blue": (40, 80, 220),
    "yellow": (240, 200, 0),
    "purple": (145, 45, 185),
}
SIZE_FRACTION = {"small": 0.18, "large": 0.36}  # bounding-box side as a share of the image side
KIND_SCALE = {"circle": 1.0, "square": 0.9, "triangle": 1.08}  # evens out the area the three kinds cover
ONE_SHAPE_PROBABILITY = 0.35
MARGIN = 0.04  # empty border, as a share of the image side
GAP = 0.08  # least free space between two shapes along the relation axis
MAX_SLOPE = 0.2  # off-axis offset at most this share of the on-axis offset (about 11 degrees)
SUPERSAMPLE = 2


@dataclass(frozen=True)
class Box:
    """A shape's bounding box in output-image pixels (x grows right, y grows down)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a random scene: one shape (35%) or two different shapes with a relation."""
    first = _sample_shape(rng)
    if rng.random() < ONE_SHAPE_PROBABILITY:
        return Scene(objects=(first,))
    second = _sample_shape(rng)
    while second == first:
        second = _sample_shape(rng)
    relation = CANONICAL_RELATIONS[int(rng.integers(len(CANONICAL_RELATIONS)))]
    return Scene(objects=(first, second), relation=relation)


def _sample_shape(rng: np.random.Generator) -> Shape:
    return Shape(
        colour=COLOURS[int(rng.integers(len(COLOURS)))],
        size=SIZES[int(rng.integers(len(SIZES)))],
        kind=KINDS[int(rng.integers(len(KINDS)))],
    )


def place(scene: Scene, rng: np.random.Generator, image_size: int) -> list[Box]:
    """Choose a box per object of ``scene`` (same order) such that its relation holds without doubt."""
    sides = [_side(shape, rng, image_size) for shape in scene.objects]
    low = MARGIN * image_size
    if scene.relation is None:
        x, y = (rng.uniform(low + sides[0] / 2, image_size - low - sides[0] / 2) for _ in range(2))
        return [_box(x, y, sides[0])]
    ra, rb = sides[0] / 2, sides[1] / 2
    # Along the relation axis the first object comes first (left of / above): offset d > 0.
    d_min = ra + rb + GAP * image_size
    d = rng.uniform(d_min, max(d_min, image_size - 2 * low - ra - rb))
    a_on = rng.uniform(low + ra, max(low + ra, image_size - low - rb - d))
    # Across the axis: a small offset, then a start that keeps both shapes inside.
    offset = rng.uniform(-MAX_SLOPE * d, MAX_SLOPE * d)
    lo, hi = max(low + ra, low + rb - offset), min(image_size - low - ra, image_size - low - rb - offset)
    if lo > hi:  # the offset does not fit this pair: centre them on one line
        offset, lo, hi = 0.0, low + max(ra, rb), image_size - low - max(ra, rb)
    a_across = rng.uniform(lo, hi)
    points = [(a_on, a_across), (a_on + d, a_across + offset)]
    if scene.relation == "above":
        points = [(y, x) for x, y in points]
    return [_box(x, y, side) for (x, y), side in zip(points, sides, strict=True)]


def _side(shape: Shape, rng: np.random.Generator, image_size: int) -> float:
    jitter = rng.uniform(0.95, 1.05)
    return SIZE_FRACTION[shape.size] * KIND_SCALE[shape.kind] * jitter * image_size


def _box(x: float, y: float, side: float) -> Box:
    return Box(x - side / 2, y - side / 2, x + side / 2, y + side / 2)


def draw(scene: Scene, boxes: list[Box], rng: np.random.Generator, image_size: int) -> Image.Image:
    """Render the scene into an RGB image of ``image_size`` square pixels."""
    grey = rng.uniform(195, 245)
    background = tuple(int(round(grey + t)) for t in rng.uniform(-5, 5, size=3))
    canvas = Image.new("RGB", (image_size * SUPERSAMPLE,) * 2, background)
    pen = ImageDraw.Draw(canvas)
    for shape, box in zip(scene.objects, boxes, strict=True):
        jitter = rng.integers(-12, 13, 3).tolist()
        fill = tuple(min(255, max(0, c + t)) for c, t in zip(PALETTE[shape.colour], jitter, strict=True))
        _draw_shape(pen, shape.kind, box, fill)
    image = canvas.reduce(SUPERSAMPLE)
    return _add_noise(image, rng)


def _draw_shape(pen: ImageDraw.ImageDraw, kind: str, box: Box, fill: tuple[int, ...]) -> None:
    x0, y0, x1, y1 = (v * SUPERSAMPLE for v in (box.x0, box.y0, box.x1, box.y1))
    if kind == "circle":
        pen.ellipse((x0, y0, x1, y1), fill=fill)
    elif kind == "square":
        pen.rectangle((x0, y0, x1, y1), fill=fill)
    else:  # triangle pointing up
        pen.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)


def _add_noise(image: Image.Image, rng: np.random.Generator, amplitude: int = 4) -> Image.Image:
    """Add the same uniform integer noise in [-amplitude, amplitude] to all three channels of each pixel."""
    values = rng.integers(0, 2 * amplitude + 1, size=(image.height, image.width), dtype=np.uint8)
    noise = Image.fromarray(values)  # (H, W) uint8 -> mode "L"
    return ImageChops.add(image, Image.merge("RGB", (noise,) * 3), scale=1.0, offset=-amplitude)
