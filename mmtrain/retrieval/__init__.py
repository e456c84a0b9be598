"""Image retrieval with a contrastive model: index a collection of images, search it by text or by image.

``Index.open(path).search(["a red circle left of a blue square"], k=10)`` returns the best files with scores.
Importing this package does not import torch; the model is loaded on the first text or image query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmtrain.retrieval.index import Hit, Index

__all__ = ["Hit", "Index"]


def __getattr__(name: str):
    if name in __all__:
        from mmtrain.retrieval import index

        return getattr(index, name)
    raise AttributeError(f"module 'mmtrain.retrieval' has no attribute {name!r}")
