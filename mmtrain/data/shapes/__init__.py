"""data=shapes: a built-in synthetic captioning dataset with a checkable ground truth.

``generate_shapes`` writes rendered scenes as a COCO captions download; ``parse_caption`` and ``scene_accuracy`` tell
whether a generated caption describes the drawn scene exactly.
"""

from mmtrain.data.shapes.generate import generate_shapes
from mmtrain.data.shapes.grammar import load_scenes, parse_caption, scene_accuracy, scene_matches
from mmtrain.data.shapes.scene import Scene, Shape

__all__ = ["Scene", "Shape", "generate_shapes", "load_scenes", "parse_caption", "scene_accuracy", "scene_matches"]
