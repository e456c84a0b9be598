"""What a shapes image shows: one or two shapes and, for two, how they sit relative to each other.

A :class:`Scene` is stored in canonical form, so two descriptions of the same picture compare equal:
"A right of B" is kept as "B left of A" and "A below B" as "B above A".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIZES = ("small", "large")
COLOURS = ("red", "green", "blue", "yellow", "purple")
KINDS = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
INVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
CANONICAL_RELATIONS = ("left of", "above")


@dataclass(frozen=True)
class Shape:
    """One drawn shape; adjectives always read size, then colour, then kind."""

    colour: str
    size: str
    kind: str

    def __post_init__(self) -> None:
        if self.colour not in COLOURS or self.size not in SIZES or self.kind not in KINDS:
            raise ValueError(f"unknown shape: {self.size!r} {self.colour!r} {self.kind!r}")

    @property
    def phrase(self) -> str:
        """The noun phrase without article, e.g. ``"small red circle"``."""
        return f"{self.size} {self.colour} {self.kind}"

    @classmethod
    def from_phrase(cls, phrase: str) -> Shape:
        """Inverse of :attr:`phrase`."""
        size, colour, kind = phrase.split()
        return cls(colour=colour, size=size, kind=kind)


@dataclass(frozen=True)
class Scene:
    """One or two shapes; with two, ``relation`` says where ``objects[0]`` is relative to ``objects[1]``.

    The constructor canonicalises: ``Scene((a, b), "right of") == Scene((b, a), "left of")``.
    """

    objects: tuple[Shape, ...]
    relation: str | None = None

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        if len(objects) == 1:
            if self.relation is not None:
                raise ValueError("a scene with one shape has no relation")
        elif len(objects) == 2:
            if self.relation not in RELATIONS:
                raise ValueError(f"unknown relation {self.relation!r}; expected one of {RELATIONS}")
            if self.relation not in CANONICAL_RELATIONS:
                objects = (objects[1], objects[0])
                object.__setattr__(self, "relation", INVERSE[self.relation])
        else:
            raise ValueError(f"a scene has 1 or 2 shapes, not {len(objects)}")
        object.__setattr__(self, "objects", objects)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"objects": [{colour, size, kind}, ...], "relation": str | None}``."""
        objects = [{"colour": o.colour, "size": o.size, "kind": o.kind} for o in self.objects]
        return {"objects": objects, "relation": self.relation}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Scene:
        """Inverse of :meth:`to_json`; extra keys (such as drawn boxes) are ignored."""
        objects = tuple(Shape(colour=o["colour"], size=o["size"], kind=o["kind"]) for o in obj["objects"])
        return cls(objects=objects, relation=obj.get("relation"))

    def __str__(self) -> str:
        if self.relation is None:
            return f"a {self.objects[0].phrase}"
        return f"a {self.objects[0].phrase} {self.relation} a {self.objects[1].phrase}"
