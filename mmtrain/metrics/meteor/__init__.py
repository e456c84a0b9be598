"""METEOR 1.5: in Python (:class:`NativeMeteor`, no Java) or through the jar pycocoevalcap ships (:class:`Meteor`).

Both give the jar's numbers; see docs/evaluation.md for the images where they differ and why.
"""

from __future__ import annotations

from mmtrain.metrics.meteor.jar import Meteor, meteor_unavailable_reason
from mmtrain.metrics.meteor.resources import find_meteor_jar, resources_unavailable_reason

__all__ = ["Meteor", "NativeMeteor", "find_meteor_jar", "meteor_unavailable_reason", "resources_unavailable_reason"]


def __getattr__(name: str):
    if name == "NativeMeteor":
        from mmtrain.metrics.meteor.native import NativeMeteor

        return NativeMeteor
    raise AttributeError(f"module 'mmtrain.metrics.meteor' has no attribute {name!r}")
