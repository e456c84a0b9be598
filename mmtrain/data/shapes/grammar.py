"""The caption grammar of the shapes dataset: describe a scene, and check a caption against one.

The same templates generate captions and parse them back, so every generated caption is parseable by construction.
In two-shape templates ``{subj}`` sits ``{rel}`` of ``{obj}``; the relation is spelled three ways (``prep``: "to the
left of", ``pred``: "left of", ``its``: "to its left").
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

import numpy as np

from mmtrain.data.shapes.scene import COLOURS, INVERSE, KINDS, RELATIONS, SIZES, Scene, Shape
from mmtrain.errors import UserError

ONE_SHAPE_TEMPLATES = (
    "a {subj}",
    "there is a {subj}",
    "a picture of a {subj}",
    "one {subj} in the image",
    "an image of a {subj}",
    "a single {subj}",
    "a {subj} on a plain background",
    "a drawing of a {subj}",
)
TWO_SHAPE_TEMPLATES = (
    "a {subj} {prep} a {obj}",
    "a {subj} is {pred} a {obj}",
    "there is a {subj} {prep} a {obj}",
    "a picture of a {subj} {prep} a {obj}",
    "there is a {obj} and a {subj} {its}",
    "a {obj} with a {subj} {its}",
)
RELATION_WORDS = {
    "prep": {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"},
    "pred": {"left of": "left of", "right of": "right of", "above": "above", "below": "below"},
    "its": {"left of": "to its left", "right of": "to its right", "above": "above it", "below": "below it"},
}
MAX_CAPTIONS_PER_IMAGE = min(len(ONE_SHAPE_TEMPLATES), 2 * len(TWO_SHAPE_TEMPLATES))

_PHRASE = rf"(?:{'|'.join(SIZES)}) (?:{'|'.join(COLOURS)}) (?:{'|'.join(KINDS)})"


def describe(scene: Scene, count: int, rng: np.random.Generator) -> list[str]:
    """Return ``count`` differently phrased captions of ``scene``.

    For two shapes the captions alternate between both reading directions ("A left of B", "B right of A").
    """
    if not 1 <= count <= MAX_CAPTIONS_PER_IMAGE:
        raise UserError(f"captions_per_image must be between 1 and {MAX_CAPTIONS_PER_IMAGE}, got {count}")
    if scene.relation is None:
        order = rng.permutation(len(ONE_SHAPE_TEMPLATES))[:count]
        return [ONE_SHAPE_TEMPLATES[i].format(subj=scene.objects[0].phrase) for i in order]
    a, b = scene.objects
    readings = [(a, scene.relation, b), (b, INVERSE[scene.relation], a)]
    first = int(rng.integers(2))
    orders = [rng.permutation(len(TWO_SHAPE_TEMPLATES)) for _ in readings]
    captions = []
    for i in range(count):
        reading = (first + i) % 2
        subj, relation, obj = readings[reading]
        template = TWO_SHAPE_TEMPLATES[orders[reading][i // 2]]
        captions.append(_fill(template, subj, relation, obj))
    return captions


def _fill(template: str, subj: Shape, relation: str, obj: Shape) -> str:
    words = {key: spelling[relation] for key, spelling in RELATION_WORDS.items()}
    return template.format(subj=subj.phrase, obj=obj.phrase, **words)


def normalize(caption: str) -> str:
    """Lower-case, collapse whitespace and drop trailing periods."""
    return " ".join(caption.lower().split()).rstrip(". ").strip()


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], str | None], ...]:
    """One compiled pattern per (template, relation), with the relation it reads as (None for one shape)."""
    patterns = [(_compile(t, {}), None) for t in ONE_SHAPE_TEMPLATES]
    for template in TWO_SHAPE_TEMPLATES:
        for relation in RELATIONS:
            words = {key: spelling[relation] for key, spelling in RELATION_WORDS.items()}
            patterns.append((_compile(template, words), relation))
    return tuple(patterns)


def _compile(template: str, words: dict[str, str]) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\{\w+\})", template):
        name = piece[1:-1] if piece.startswith("{") else None
        if name in ("subj", "obj"):
            parts.append(f"(?P<{name}>{_PHRASE})")
        elif name is not None:
            parts.append(re.escape(words[name]))
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def parse_caption(caption: str) -> Scene | None:
    """Parse a caption of this grammar into its scene; None if it is not a sentence of the grammar.

    Case, extra whitespace and a trailing period are ignored.
    """
    text = normalize(caption)
    for pattern, relation in _patterns():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        subj = Shape.from_phrase(match["subj"])
        if relation is None:
            return Scene(objects=(subj,))
        return Scene(objects=(subj, Shape.from_phrase(match["obj"])), relation=relation)
    return None


def scene_matches(caption: str, scene: Scene) -> bool:
    """True when ``caption`` parses to exactly ``scene``: same shapes, same attributes, same relation."""
    return parse_caption(caption) == scene


def scene_accuracy(candidates: dict[int, str], scenes: dict[int, Scene]) -> float:
    """Share of captioned images whose caption describes the drawn scene exactly.

    Args:
        candidates: One generated caption per image id.
        scenes: The drawn scene per image id; must cover every id in ``candidates``.

    Raises:
        UserError: If ``candidates`` is empty or names an image without a scene.
    """
    if not candidates:
        raise UserError("scene_accuracy needs at least one candidate caption")
    missing = sorted(set(candidates) - set(scenes))
    if missing:
        raise UserError(f"{len(missing)} candidate image ids have no scene, e.g. {missing[:5]}")
    correct = sum(scene_matches(caption, scenes[image_id]) for image_id, caption in candidates.items())
    return correct / len(candidates)


def load_scenes(path: str | os.PathLike) -> dict[int, Scene]:
    """Read ``scenes_{split}{year}.json`` (``{image_id: scene}``) as written by ``generate_shapes``.

    Raises:
        UserError: If the file is missing or is not a scenes file.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(image_id): Scene.from_json(scene) for image_id, scene in raw.items()}
    except FileNotFoundError:
        raise UserError(f"scenes file not found: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UserError(f"{path} is not a shapes scenes file: {error}") from None
